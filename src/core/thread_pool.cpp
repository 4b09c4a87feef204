#include "mlxd/core/thread_pool.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

// The CPUs this thread may run on, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// Best effort: a CPU taken from this process since pin_threads leaves the thread where it may run.
void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
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
    {
      std::lock_guard lock(sleep_mu_);
      sleepers_ = std::make_unique<sleeper[]>(static_cast<size_t>(n_threads));
      n_sleepers_ = n_threads;
      for (int i = 1; i < n_threads; ++i) {
        sleepers_[i].fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (sleepers_[i].fd < 0)
          throw std::runtime_error(std::string("[thread_pool] cannot make an eventfd: ") +
                                   std::strerror(errno));
      }
    }
    // New workers must wait for the next job, not mistake the last one for new.
    const uint64_t current = generation_;
    for (int i = 1; i < n_threads; ++i)
      workers_.emplace_back([this, current, i, cpu = cpu_of(i)] {
        name_this_thread("mlxd-pool-" + std::to_string(i));
        if (cpu >= 0) pin_this_thread(cpu);
        work_loop(current, i);
      });
  }

  // Pins the workers (restarted) and, at their next job, the callers.
  void pin(std::vector<int> cpus) {
    if (cpus.empty()) throw std::runtime_error("[pin_threads] this thread may run on no CPU");
    {
      std::lock_guard job_lock(job_mu_);
      cpus_ = std::move(cpus);
    }
    resize(n_threads_);
  }

  void heads_up() {
    heads_up_.fetch_add(1);
    wake_sleepers();
  }

  void rest(std::span<const int> wake_fds) {
    if (wake_fds.size() > max_watched)
      throw std::invalid_argument("[expect_serial_work] at most " + std::to_string(max_watched) +
                                  " descriptors to watch, got " + std::to_string(wake_fds.size()));
    std::lock_guard lock(sleep_mu_);
    std::array<int, max_watched> fds;
    fds.fill(-1);
    std::copy(wake_fds.begin(), wake_fds.end(), fds.begin());
    if (fds != watched_) {
      watched_ = fds;
      ++watch_set_;
    }
    rests_.fetch_add(1);
    // A sleeping worker polls what the last rest before its sleep named; it sleeps on only if that is this
    // rest's set (a closed socket it still polled would stay open).
    const uint64_t want = wake_fds.empty() ? 0 : watch_set_;
    for (int i = 1; i < n_sleepers_; ++i)
      if (sleepers_[i].asleep.load() && sleepers_[i].watching.load() != want) sleepers_[i].wake();
  }

  // `owned`: thread t first takes the chunks of its own contiguous run, in order, then the others' from
  // their far ends (see parallel_for_owned).
  void run(int64_t n_chunks, const std::function<void(int64_t)>& chunk_fn, bool owned) {
    std::lock_guard job_lock(job_mu_);
    thread_local bool caller_pinned = false;
    if (!caller_pinned && !cpus_.empty()) {
      pin_this_thread(cpu_of(0));
      caller_pinned = true;
    }
    {
      std::lock_guard lock(mu_);  // error_ is written under it
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
    wake_sleepers();
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
  // The CPU of thread `i` (0: the callers) once pinned, else -1. Under job_mu_.
  int cpu_of(int i) const { return cpus_.empty() ? -1 : cpus_[static_cast<size_t>(i) % cpus_.size()]; }

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
    uint64_t watch_spent = ~uint64_t{0};  // the last rest when descriptors woke this worker
    for (;;) {
      auto job = [&] { return quit_.load() || generation_.load() != seen; };
      auto woken = [&] { return job() || heads_up_.load() != told; };
      // A rest asked since this worker's last job ends its polling.
      if (!spin_until([&] { return woken() || rests_.load() != rested; }) || !woken())
        sleep(index, woken, watch_spent);
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

  // Sleeps until `woken` holds or, once per rest, one of the rest's descriptors turns readable (which wakes
  // the worker as a heads-up does).
  template <class Woken>
  void sleep(int index, Woken woken, uint64_t& watch_spent) {
    sleeper& me = sleepers_[index];
    for (;;) {
      pollfd fds[1 + max_watched];
      fds[0] = {me.fd, POLLIN, 0};
      nfds_t n = 1;
      uint64_t rest = 0;
      {
        std::lock_guard lock(sleep_mu_);
        rest = rests_.load();
        if (rest != watch_spent)
          for (int fd : watched_)
            if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
        me.watching.store(n > 1 ? watch_set_ : 0);
      }
      // Either this sees the news (a job, a heads-up, a rest) or its sender sees this sleeper and writes its
      // eventfd (wake_sleepers, rest).
      me.asleep.store(true);
      if (woken() || rests_.load() != rest) {
        me.asleep.store(false);
        if (woken()) return;
        continue;
      }
      const int r = ::poll(fds, n, -1);
      me.asleep.store(false);
      if (r < 0) continue;  // EINTR
      if (fds[0].revents != 0) {
        uint64_t count = 0;
        [[maybe_unused]] const ssize_t got = ::read(me.fd, &count, sizeof count);
      }
      for (nfds_t i = 1; i < n; ++i)
        if (fds[i].revents != 0) {
          watch_spent = rests_.load();  // level-triggered: until the next rest, the same bytes would wake it
          return;
        }
      if (woken()) return;
    }
  }

  // After news a sleeping worker waits for (a job, a heads-up, quitting) is published.
  void wake_sleepers() {
    std::lock_guard lock(sleep_mu_);
    for (int i = 1; i < n_sleepers_; ++i)
      if (sleepers_[i].asleep.load()) sleepers_[i].wake();
  }

  void stop() {
    quit_ = true;
    wake_sleepers();
    for (auto& t : workers_) t.join();
    workers_.clear();
    std::lock_guard lock(sleep_mu_);
    for (int i = 1; i < n_sleepers_; ++i) ::close(sleepers_[i].fd);
    sleepers_.reset();
    n_sleepers_ = 0;
  }

  std::mutex job_mu_;  // serialises callers from different threads
  std::mutex mu_;
  std::condition_variable done_;
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
  // A worker sleeps in poll() on its eventfd (and the last rest's descriptors): one cache line each.
  struct alignas(64) sleeper {
    int fd = -1;
    std::atomic<bool> asleep{false};
    std::atomic<uint64_t> watching{0};  // the watch_set_ its poll includes, 0 for none
    void wake() const {
      const uint64_t one = 1;
      [[maybe_unused]] const ssize_t w = ::write(fd, &one, sizeof one);
    }
  };
  std::mutex sleep_mu_;  // guards the sleepers (replaced by resize) and the watched descriptors
  std::unique_ptr<sleeper[]> sleepers_;
  int n_sleepers_ = 0;
  static constexpr size_t max_watched = 4;
  std::array<int, max_watched> watched_{-1, -1, -1, -1};  // the last rest's descriptors, -1 where none
  uint64_t watch_set_ = 0;                                // counts changes of watched_
  std::atomic<bool> quit_{false};
  int n_threads_ = 1;
  std::vector<int> cpus_;  // with pin_threads: worker i runs on cpus_[i % size], callers on cpus_[0]
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

void pin_threads() {
  the_pool().pin(allowed_cpus());
}

void expect_parallel_work() {
  the_pool().heads_up();
}

void expect_serial_work(std::span<const int> wake_fds) {
  the_pool().rest(wake_fds);
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
