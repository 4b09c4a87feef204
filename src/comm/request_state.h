// The shared state behind a comm::request: completed once, by the transport or by a timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <string>

#include "comm/recv_sink.h"
#include "mlxd/comm/group.h"

namespace mlxd::comm {

class progress_engine;

struct request::state {
  using clock = std::chrono::steady_clock;

  // What the operation is, for the timeout message: "recv from rank 2 (127.0.0.1:4000), tag 7".
  std::string what;
  clock::time_point deadline = clock::time_point::max();
  std::chrono::milliseconds timeout{0};
  // Called with the error when the operation fails (the group uses it to mark itself broken).
  std::function<void(const std::string&)> on_error;
  // A receive may offer memory to land in; the transport that uses it completes with complete_in_sink().
  std::shared_ptr<recv_sink> sink;
  // Set by a transport whose completions need a thread to drive them: wait() lends it the caller's thread.
  std::shared_ptr<progress_engine> progress;

  // Both return false when the state was already completed (the later outcome is dropped).
  bool complete(array result);
  // Completes a receive whose message went into `sink` (wait() then returns an empty array).
  bool complete_in_sink();
  bool fail(const std::string& message);
  // True once complete_in_sink() has run.
  bool landed_in_sink();
  array wait();
  bool ready();

  // For a progress engine. While it drives for this state, a completion on another thread tells it
  // (begin_driving is false when the state is already done). A waiter whose turn to drive may have come
  // sleeps in wait_turn until done, poked or past the deadline (then false).
  bool begin_driving(progress_engine* engine);
  void end_driving();
  void poke();
  bool wait_turn();

 private:
  // Wakes waiters and the driving engine after a completion.
  void notify_done();

  std::mutex mu_;
  std::condition_variable cv_;
  progress_engine* driving_ = nullptr;
  bool done_ = false;
  bool in_sink_ = false;
  bool poked_ = false;
  array result_;
  std::string error_;
};

// A state already completed with `result`.
std::shared_ptr<request::state> completed_state(array result);

}  // namespace mlxd::comm
