// The writes of one gRPC stream, in order and one at a time as gRPC allows: a push starts its write at once
// when none is in flight, else the completion of the one before starts it. Nobody waits for the transport,
// so a thread that computed a result hands it over and goes on.
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace mlxd::comm::rpc {

template <class Message>
class write_queue {
 public:
  // `write` starts the write of a message with the tag whose completion calls completed().
  explicit write_queue(std::function<void(const Message&)> write) : write_(std::move(write)) {}

  // False, and the message dropped, once a write has failed or the queue is closed.
  bool push(Message m) {
    std::lock_guard lock(mu_);
    if (broken_ || closed_) return false;
    queue_.push_back(std::move(m));
    if (queue_.size() == 1) write_(queue_.front());  // the front is the one in flight, kept until it is out
    return true;
  }
  // The write in flight is out (`ok`) or failed, which drops the rest.
  void completed(bool ok) {
    std::vector<std::function<void()>> flushed;
    {
      std::lock_guard lock(mu_);
      queue_.pop_front();
      if (!ok) {
        broken_ = true;
        queue_.clear();
      }
      if (!queue_.empty()) {
        write_(queue_.front());
        return;
      }
      flushed.swap(flushed_);
    }
    for (auto& f : flushed) f();
  }
  // Runs `then` once the queue is empty, its writes out or failed (at once when it is empty now): a stream
  // cancelled right after its last message was queued could lose that message.
  void when_flushed(std::function<void()> then) {
    {
      std::lock_guard lock(mu_);
      if (!queue_.empty()) {
        flushed_.push_back(std::move(then));
        return;
      }
    }
    then();
  }
  // No more pushes; `then` (the stream's half-close or Finish) runs once the queued writes are out.
  void close(std::function<void()> then) {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    when_flushed(std::move(then));
  }

 private:
  std::function<void(const Message&)> write_;
  std::mutex mu_;
  std::deque<Message> queue_;
  bool broken_ = false, closed_ = false;
  std::vector<std::function<void()>> flushed_;
};

}  // namespace mlxd::comm::rpc
