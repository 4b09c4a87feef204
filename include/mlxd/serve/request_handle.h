// What an HTTP thread holds while the engine loop works on its request: the events of the request's
// sequences (new text, tokens with logprobs, finish reasons), a way to wait for them, and cancellation.
// Thread-safe: the engine loop pushes, one HTTP thread waits and takes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "mlxd/engine/sampler.h"

namespace mlxd::serve {

struct sequence_event {
  int index = 0;                                    // the sequence of the request (choice)
  std::string text;                                 // new text, whole UTF-8 characters (may be empty)
  std::vector<mlxd::engine::sample_result> tokens;  // the tokens this event adds (with their logprobs)
  std::string finish_reason;  // "stop" or "length" on the last event of a sequence; else empty
};

class request_handle {
 public:
  explicit request_handle(int n_sequences);

  // Waits up to `timeout` for events and takes those that arrived (possibly none).
  std::vector<sequence_event> wait(std::chrono::milliseconds timeout);
  // True when every sequence has finished (or the request failed) and wait() has taken every event.
  bool done();
  // Why the engine failed the request (empty: it did not), and the HTTP status that says so.
  std::string error();
  int error_status();
  // Asks the engine to drop the request's sequences and free their caches (a client that went away).
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // Engine side.
  void push(sequence_event e);
  // The first failure wins. `status`: 500 for a fault of the server, 503 when the cluster cannot serve.
  void fail(const std::string& message, int status = 500);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<sequence_event> events_;
  int unfinished_;
  std::string error_;
  int error_status_ = 500;
  std::atomic<bool> cancelled_{false};
};

}  // namespace mlxd::serve
