#include "mlxd/serve/request_handle.h"

namespace mlxd::serve {

request_handle::request_handle(int n_sequences) : unfinished_(n_sequences) {}

std::vector<sequence_event> request_handle::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty() || unfinished_ == 0 || !error_.empty(); });
  std::vector<sequence_event> out(std::make_move_iterator(events_.begin()),
                                  std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

bool request_handle::done() {
  std::lock_guard lock(mu_);
  return events_.empty() && (unfinished_ == 0 || !error_.empty());
}

std::string request_handle::error() {
  std::lock_guard lock(mu_);
  return error_;
}

int request_handle::error_status() {
  std::lock_guard lock(mu_);
  return error_status_;
}

void request_handle::push(sequence_event e) {
  {
    std::lock_guard lock(mu_);
    if (!e.finish_reason.empty()) --unfinished_;
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void request_handle::fail(const std::string& message, int status) {
  {
    std::lock_guard lock(mu_);
    if (error_.empty()) {
      error_ = message.empty() ? "generation failed" : message;
      error_status_ = status;
    }
  }
  cv_.notify_all();
}

}  // namespace mlxd::serve
