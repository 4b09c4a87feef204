#include "mlxd/core/thread_pool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
    // New workers must wait for the next job, not mistake the last one for new.
    const uint64_t current = generation_;
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, current] { work_loop(current); });
  }

  void run(int64_t n_chunks, const std::function<void(int64_t)>& chunk_fn) {
    std::lock_guard job_lock(job_mu_);
    {
      std::lock_guard lock(mu_);
      job_ = &chunk_fn;
      n_chunks_ = n_chunks;
      next_chunk_.store(0);
      pending_workers_ = static_cast<int>(workers_.size());
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    drain();
    std::unique_lock lock(mu_);
    done_.wait(lock, [this] { return pending_workers_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void drain() {
    inside_parallel_region = true;
    for (int64_t c = next_chunk_.fetch_add(1); c < n_chunks_; c = next_chunk_.fetch_add(1)) {
      try {
        (*job_)(c);
      } catch (...) {
        std::lock_guard lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    inside_parallel_region = false;
  }

  void work_loop(uint64_t seen) {
    for (;;) {
      {
        std::unique_lock lock(mu_);
        wake_.wait(lock, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
      }
      drain();
      std::lock_guard lock(mu_);
      if (--pending_workers_ == 0) done_.notify_one();
    }
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
  int pending_workers_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
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

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t n_chunks = (n + grain - 1) / grain;
  if (n_chunks == 1 || inside_parallel_region || the_pool().size() == 1) {
    for (int64_t c = 0; c < n_chunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
    return;
  }
  the_pool().run(n_chunks, [&](int64_t c) { fn(c * grain, std::min(n, (c + 1) * grain)); });
}

}  // namespace mlxd
