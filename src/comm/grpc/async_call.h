// A server call on gRPC's asynchronous API that owns itself: it is deleted once it has ended and the last
// operation it started has completed. Every completion runs on the thread that drives the queue
// (cq_driver), one at a time; operations may start on any thread.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "comm/grpc/cq_driver.h"

namespace mlxd::comm::rpc {

class async_call {
 public:
  // Calls whose acceptance failed (the server stopping) wait there until the queue is drained: gRPC may
  // still deliver their done-notification (gRPC issue 10136).
  using parking = std::vector<std::unique_ptr<async_call>>;

  virtual ~async_call() = default;
  async_call(const async_call&) = delete;
  async_call& operator=(const async_call&) = delete;

 protected:
  async_call(cq_driver& driver, parking& parked) : driver_(driver), parked_(parked) {}
  cq_driver& driver() { return driver_; }
  grpc::ServerCompletionQueue* cq() { return driver_.server_cq(); }
  // The tag for an operation about to start.
  void* start(cq_driver::tag& t) {
    hold();
    return op(t);
  }
  // Keeps the call alive until the matching settle(): an operation's, or a thread's that works for it.
  void hold() { pending_.fetch_add(1); }
  // The queue is shutting down: no operation may start any more.
  bool closing() const { return driver_.closing(); }
  // After every completion (then() sees to it) and at the end of a hold().
  void settle() {
    if (pending_.fetch_sub(1) == 1 && ended_ && !is_parked_) delete this;
  }
  // gRPC refused to give this handler a call: kept until the queue is drained. On the driving thread.
  void park() {
    is_parked_ = true;
    parked_.emplace_back(this);
  }
  // The tag of an operation whose completion runs `handler`, then settles.
  template <class Call>
  static cq_driver::tag then(Call* c, void (Call::*handler)(bool)) {
    return {[c, handler](bool ok) {
      (c->*handler)(ok);
      c->settle();
    }};
  }
  void ignore(bool) {}  // a Finish's completion needs nothing but the settling
  // Ends a call of one reply (unary, or client streaming) with `reply`, or with the error in `s`.
  template <class Responder, class Reply>
  void answer(Responder& responder, const Reply& reply, const grpc::Status& s) {
    ended_ = true;
    if (s.ok())
      responder.Finish(reply, s, start(finished_));
    else
      responder.FinishWithError(s, start(finished_));
  }

  std::atomic<bool> ended_ = false;                            // no operation will start any more
  cq_driver::tag finished_ = then(this, &async_call::ignore);  // the call's Finish

 private:
  cq_driver& driver_;
  parking& parked_;
  std::atomic<int> pending_{0};
  bool is_parked_ = false;
};

}  // namespace mlxd::comm::rpc
