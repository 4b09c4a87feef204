#include "dist/server_calls.h"

#include "mlxd/core/thread_name.h"

namespace mlxd::dist {

void server_calls::began() {
  std::lock_guard lock(mu_);
  ++live_;
}

void server_calls::ended() {
  std::lock_guard lock(mu_);
  if (--live_ == 0) cv_.notify_all();
}

void server_calls::spawn(const char* name, std::function<void()> work) {
  std::lock_guard lock(mu_);
  for (const auto& id : finished_) {
    auto it = threads_.find(id);
    it->second.join();  // it has said it is finished: returns at once
    threads_.erase(it);
  }
  finished_.clear();
  std::thread t([this, name, work = std::move(work)]() mutable {
    name_this_thread(name);  // else it keeps the name of the thread that drove the queue
    work();
    work = nullptr;
    std::lock_guard done(mu_);
    finished_.push_back(std::this_thread::get_id());
  });
  const auto id = t.get_id();
  threads_.emplace(id, std::move(t));
}

void server_calls::drain() {
  std::map<std::thread::id, std::thread> threads;
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return live_ == 0; });
    threads.swap(threads_);
    finished_.clear();
  }
  for (auto& [id, t] : threads) t.join();
}

}  // namespace mlxd::dist
