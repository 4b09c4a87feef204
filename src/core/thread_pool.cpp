#include "mlxd/core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mlxd/core/thread_name.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace mlxd {
namespace {

thread_local bool inside_parallel_region = false;

int default_threads() {
  if (const char* env = std::getenv("MLXD_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// How long an idle worker, or a caller waiting for the workers, polls before it sleeps. A decode step makes
// hundreds of parallel_for calls, and waking a sleeping thread costs tens of microseconds here (a VM): at
// 20 us a 110M decode step (one node) still switched threads about 60 times. A pipeline stage that waits for
// its next step stops the polling at once (expect_serial_work), so it keeps no core from the busy stage.
constexpr std::chrono::microseconds spin_time{200};

// How long workers woken by expect_parallel_work poll for the job it announces: a pipeline stage's serial
// work between a step's arrival and its first product takes about 0.1-0.15 ms here.
constexpr std::chrono::microseconds heads_up_time{250};

// parallel_for_owned's chunks: a thread slowed by another process leaves at most a sixteenth of its run to
// the others (an even split left the LM head of a 1B model 2-5 ms of one thread's work at the end). A 1B
// decode was slower with 8 a thread and with chunks capped at 1 or 4 MB.
constexpr int64_t owned_chunks_per_thread = 16;

// Polls `ready` for up to `time`, pausing between polls and yielding the core now and then; returns
// whether it became true.
template <class Ready>
bool spin_until(Ready ready, std::chrono::microseconds time = spin_time) {
  const auto end = std::chrono::steady_clock::now() + time;
  for (unsigned i = 1;; ++i) {
    if (ready()) return true;
    if (i % 64 == 0) {
      if (std::chrono::steady_clock::now() >= end) return false;
      std::this_thread::yield();
    }
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

// One job at a time: workers and the caller pull chunk indices from an atomic counter.
class pool {
 public:
  explicit pool(int n_threads) { resize(n_threads); }
  ~pool() { stop(); }

  int size() const { return n_threads_; }

  void resize(int n_threads) {
    std::lock_guard job_lock(job_mu_);
    stop();
    n_threads_ = n_threads;
    quit_ = false;
    runs_ = std::make_unique<owned_run[]>(std::min(n_threads, max_owned));
    // New workers must wait for the next job, not mistake the last one for new.
    const uint64_t current = generation_;
    for (int i = 1; i < n_threads; ++i)
      workers_.emplace_back([this, current, i] {
        name_this_thread("mlxd-pool-" + std::to_string(i));
        work_loop(current, i);
      });
  }

  void heads_up() {
    {
      std::lock_guard lock(mu_);  // as for a job: sleeping workers check heads_up_ under it
      heads_up_.fetch_add(1);
    }
    wake_.notify_all();
  }

  void rest() { rests_.fetch_add(1); }

  // `owned`: thread t first takes the chunks of its own contiguous run, in order, then the others' from
  // their far ends (see parallel_for_owned).
  void run(int64_t n_chunks, const std::function<void(int64_t)>& chunk_fn, bool owned) {
    std::lock_guard job_lock(job_mu_);
    {
      std::lock_guard lock(mu_);  // sleeping workers check generation_ under it
      job_ = &chunk_fn;
      n_chunks_ = n_chunks;
      next_chunk_.store(0);
      n_runs_ = owned ? std::min(n_threads_, max_owned) : 0;
      for (int t = 0; t < n_runs_; ++t)
        runs_[t].span.store(pack(n_chunks * t / n_runs_, n_chunks * (t + 1) / n_runs_));
      error_ = nullptr;
      const uint64_t generation = generation_.fetch_add(1) + 1;
      job_state_.store(generation << 32);
    }
    wake_.notify_all();
    drain(0);
    // Workers that have not joined by now never will: the caller does not wait for a sleeping one to wake
    // (on a VM, waking one that slept for milliseconds costs hundreds of microseconds).
    job_state_.fetch_or(closed_bit);
    auto done = [this] { return (job_state_.load() & joined_mask) == 0; };
    if (!spin_until(done)) {
      std::unique_lock lock(mu_);
      done_.wait(lock, done);
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static uint64_t pack(int64_t front, int64_t back) {
    return static_cast<uint64_t>(front) << 32 | static_cast<uint64_t>(back);
  }

  // The next chunk for thread `self`, or -1 when none is left.
  int64_t next_chunk(int self) {
    if (n_runs_ == 0) {
      const int64_t c = next_chunk_.fetch_add(1);
      return c < n_chunks_ ? c : -1;
    }
    for (int i = 0; i < n_runs_; ++i) {
      const int t = (self + i) % n_runs_;
      std::atomic<uint64_t>& run = runs_[t].span;
      for (uint64_t r = run.load();;) {
        const int64_t front = static_cast<int64_t>(r >> 32), back = static_cast<int64_t>(r & 0xffffffff);
        if (front >= back) break;
        const bool own = t == self;  // threads past max_owned only help
        if (run.compare_exchange_weak(r, own ? pack(front + 1, back) : pack(front, back - 1)))
          return own ? front : back - 1;
      }
    }
    return -1;
  }

  void drain(int self) {
    inside_parallel_region = true;
    for (int64_t c = next_chunk(self); c >= 0; c = next_chunk(self)) {
      try {
        (*job_)(c);
      } catch (...) {
        std::lock_guard lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    inside_parallel_region = false;
  }

  void work_loop(uint64_t seen, int index) {
    uint64_t told = heads_up_.load(), rested = rests_.load();
    for (;;) {
      auto job = [&] { return quit_.load() || generation_.load() != seen; };
      auto woken = [&] { return job() || heads_up_.load() != told; };
      // A rest asked since this worker's last job ends its polling.
      if (!spin_until([&] { return woken() || rests_.load() != rested; }) || !woken()) {
        std::unique_lock lock(mu_);
        wake_.wait(lock, woken);
      }
      if (!job()) {  // told of a job to come: poll for it, so that it does not wait for this thread to wake
        told = heads_up_.load();
        if (!spin_until(job, heads_up_time)) continue;
      }
      if (quit_) return;
      seen = generation_.load();
      told = heads_up_.load();    // heads-ups so far told of this job
      if (!join(seen)) continue;  // the caller finished that job alone
      rested = rests_.load();     // a rest asked before this job was for an idle time now past
      drain(index);
      const uint64_t left = job_state_.fetch_sub(1) - 1;
      if ((left & joined_mask) == 0 && (left & closed_bit)) {
        std::lock_guard lock(mu_);  // the caller checks job_state_ under it before it sleeps
        done_.notify_one();
      }
    }
  }

  // Counts this worker in job `generation` unless the caller has closed it (or begun a later one).
  bool join(uint64_t generation) {
    uint64_t state = job_state_.load();
    while ((state >> 32) == (generation & 0xffffffff) && !(state & closed_bit))
      if (job_state_.compare_exchange_weak(state, state + 1)) return true;
    return false;
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::mutex job_mu_;  // serialises callers from different threads
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t n_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  // An owned job's chunks by thread: thread t's run [front, back) packed in one word, so that its owner
  // (taking the front) and a helper (taking the back) cannot both take the last chunk; one cache line each,
  // since every chunk its owner takes writes it.
  static constexpr int max_owned = 64;
  struct alignas(64) owned_run {
    std::atomic<uint64_t> span{0};
  };
  std::unique_ptr<owned_run[]> runs_;
  int n_runs_ = 0;  // threads with a run of their own in the current job; 0 when chunks go in order
  // The current job: its generation's low 32 bits, closed_bit once the caller has drained it, and the number
  // of workers that joined it and have not finished.
  static constexpr uint64_t closed_bit = uint64_t{1} << 31;
  static constexpr uint64_t joined_mask = closed_bit - 1;
  std::atomic<uint64_t> job_state_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> heads_up_{0};  // counts expect_parallel_work calls
  std::atomic<uint64_t> rests_{0};     // counts expect_serial_work calls
  std::atomic<bool> quit_{false};
  int n_threads_ = 1;
  std::exception_ptr error_;
};

pool& the_pool() {
  static pool* p = [] {
    openblas_set_num_threads(1);         // products are split over this pool instead (sgemm.h says why)
    return new pool(default_threads());  // leaked on purpose: kernels may run during static destruction
  }();
  return *p;
}

}  // namespace

int num_threads() {
  return the_pool().size();
}

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("[set_num_threads] need at least 1 thread, got " + std::to_string(n));
  if (n != the_pool().size()) the_pool().resize(n);
}

void expect_parallel_work() {
  the_pool().heads_up();
}

void expect_serial_work() {
  the_pool().rest();
}

int64_t owned_grain(int64_t n, int64_t multiple) {
  const int64_t chunks = int64_t{num_threads()} * owned_chunks_per_thread;
  const int64_t grain = (n + chunks - 1) / chunks;
  return std::max<int64_t>(multiple, (grain + multiple - 1) / multiple * multiple);
}

namespace {

void split(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn, bool owned) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t n_chunks = (n + grain - 1) / grain;
  if (n_chunks == 1 || inside_parallel_region || the_pool().size() == 1) {
    for (int64_t c = 0; c < n_chunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
    return;
  }
  // Runs are packed in 32-bit halves.
  owned = owned && n_chunks < (int64_t{1} << 31);
  the_pool().run(
      n_chunks, [&](int64_t c) { fn(c * grain, std::min(n, (c + 1) * grain)); }, owned);
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  split(n, grain, fn, false);
}

void parallel_for_owned(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  split(n, grain, fn, true);
}

}  // namespace mlxd
