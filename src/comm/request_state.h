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

  // Both return false when the state was already completed (the later outcome is dropped).
  bool complete(array result);
  // Completes a receive whose message went into `sink` (wait() then returns an empty array).
  bool complete_in_sink();
  bool fail(const std::string& message);
  // True once complete_in_sink() has run.
  bool landed_in_sink();
  array wait();
  bool ready();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool in_sink_ = false;
  array result_;
  std::string error_;
};

// A state already completed with `result`.
std::shared_ptr<request::state> completed_state(array result);

}  // namespace mlxd::comm
