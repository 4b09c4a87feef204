// What an asynchronous gRPC server of the dist module keeps of its calls: how many are live, and the threads
// that do their blocking work (server_calls), and the base its calls share (server_call). Shutdown waits for
// both, so that no call starts an operation on a queue that is shutting down.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/grpc/async_call.h"

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
  // Runs `work` on a thread of its own, named `name`; threads that have finished are joined at the next
  // spawn.
  void spawn(const char* name, std::function<void()> work);
  // Returns once no call is live, having joined every thread.
  void drain();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int live_ = 0;
  std::map<std::thread::id, std::thread> threads_;
  std::vector<std::thread::id> finished_;
};

// A call of `Server`, which has driver_, parked_ and calls_ and befriends this class: counted in calls_
// from begin() until deleted.
template <class Server>
class server_call : public comm::rpc::async_call {
 public:
  ~server_call() override {
    if (began_) srv_->calls_.ended();
  }

 protected:
  explicit server_call(Server* srv) : async_call(*srv->driver_, srv->parked_), srv_(srv) {}
  // gRPC gave this handler its call (on the driving thread, once): counts it and asks for the next call of
  // the method (`next` is the handler's accept).
  void begin(void (*next)(Server*)) {
    began_ = true;
    srv_->calls_.began();
    next(srv_);
  }
  // The call's blocking work, on a thread of its own (named `name`) that keeps the call until it returns.
  void run_on_thread(const char* name, std::function<void()> work) {
    hold();
    srv_->calls_.spawn(name, [this, work = std::move(work)] {
      work();
      settle();
    });
  }

  Server* srv_;

 private:
  bool began_ = false;
};

}  // namespace mlxd::dist
