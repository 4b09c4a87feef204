// What an asynchronous gRPC server of the dist module keeps of its calls: how many are live, and the threads
// that do their blocking work. Shutdown waits for both, so that no call starts an operation on a queue that
// is shutting down.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace mlxd::dist {

class server_calls {
 public:
  server_calls() = default;
  ~server_calls() { drain(); }
  server_calls(const server_calls&) = delete;
  server_calls& operator=(const server_calls&) = delete;

  // An accepted call counts from began() until its ended().
  void began();
  void ended();
  // Runs `work` on a thread of its own; threads that have finished are joined at the next spawn.
  void spawn(std::function<void()> work);
  // Returns once no call is live, having joined every thread.
  void drain();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int live_ = 0;
  std::map<std::thread::id, std::thread> threads_;
  std::vector<std::thread::id> finished_;
};

}  // namespace mlxd::dist
