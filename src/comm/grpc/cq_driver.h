// The completion queue of a node's server and who drives it. A thread waiting for a message drives the
// queue itself, so the message is read by the thread that wants it: with gRPC's callback API a message
// passed through two of gRPC's threads and then to the waiter, and those hand-overs made a 16 KB round trip
// 110-150 us against 45-55 us when the waiter reads (bench comm, this VM). When no waiter has driven the
// queue for a while, a background thread does, so calls progress and lost peers are noticed while nobody
// waits. Only one thread drives at a time, so the calls' handlers never run concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include "comm/grpc/tsan_sync.h"
#include "comm/progress.h"

namespace mlxd::comm::rpc {

class cq_driver final : public progress_engine {
 public:
  // What an operation started on the queue calls when it completes (`ok` as gRPC reports it).
  struct tag {
    std::function<void(bool)> done;
  };

  // `arm` starts the reads of idle streams: it runs whenever a thread begins to drive and after each event
  // while it goes on (a read left pending while nobody waits cost about 10 us a message). The background
  // thread takes the queue once no waiter has driven it for `background_after`: long enough that a program
  // waiting again within it (a ping-pong, a collective's next step) never meets the background thread.
  cq_driver(std::unique_ptr<grpc::ServerCompletionQueue> cq, std::function<void()> arm,
            std::chrono::milliseconds background_after = std::chrono::milliseconds(5));
  // A queue of client calls only.
  cq_driver(std::unique_ptr<grpc::CompletionQueue> cq, std::function<void()> arm,
            std::chrono::milliseconds background_after = std::chrono::milliseconds(5));
  ~cq_driver() override;
  cq_driver(const cq_driver&) = delete;
  cq_driver& operator=(const cq_driver&) = delete;

  grpc::CompletionQueue* cq() { return cq_.get(); }
  // The queue where a server announces calls: null for a queue of client calls.
  grpc::ServerCompletionQueue* server_cq() { return server_cq_; }
  // Starts the background thread. Operations started before it happen before everything that thread runs.
  void start();
  // Call after the server's Shutdown: shuts the queue down, lets every pending operation complete and joins
  // the background thread. From then on no operation may start (closing() is true) and wait() returns at
  // once. The destructor does it when nobody has.
  void stop();
  bool closing() const { return closing_.load(); }
  // While some thread waits for messages that come another way (a stage's local link) and not in wait(),
  // the background thread drives at once instead of after `background_after`. Calls nest.
  void hold_background(bool on);
  void wait(request::state& s) override;
  void completed(request::state& s) override;

 private:
  using clock = std::chrono::steady_clock;
  void background_loop();
  // Drives until `s` is done or its deadline passes (or the queue shuts down).
  void drive_for(request::state& s);
  void handle(void* t, bool ok);
  // Wakes the thread blocked in the queue with an alarm's event (at most one pending).
  void kick();
  // The driving thread has let go: the first waiter in line may take over.
  void hand_on_locked();

  std::unique_ptr<grpc::CompletionQueue> cq_;
  grpc::ServerCompletionQueue* server_cq_;
  std::function<void()> arm_;
  std::chrono::milliseconds background_after_;

  std::mutex mu_;
  std::condition_variable background_cv_;
  bool driving_ = false;             // some thread drives
  bool background_driving_ = false;  // ... and it is the background thread
  bool stopping_ = false, stopped_ = false;
  int waiting_ = 0;                   // threads in wait() that do not drive
  int held_ = 0;                      // hold_background(true) not yet undone
  std::deque<request::state*> line_;  // waiters asleep until their turn
  clock::time_point last_release_ = clock::now();
  std::atomic<std::thread::id> driver_thread_{};
  std::atomic<bool> closing_{false};

  std::mutex kick_mu_;
  std::unique_ptr<grpc::Alarm> alarm_;  // the pending kick, if any
  bool queue_shut_ = false;             // no kick may start once the queue is shutting down
  tag kick_tag_;
  std::thread background_;
};

// The tag to start an operation with: `t.done` runs on the driving thread when it completes.
inline void* op(cq_driver::tag& t) {
  tsan_release(&t);  // the completion, on whichever thread drives, sees what the starting thread did
  return &t;
}

}  // namespace mlxd::comm::rpc
