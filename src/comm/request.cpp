#include "comm/request_state.h"

namespace mlxd::comm {

const char* reduce_op_name(reduce_op op) {
  switch (op) {
    case reduce_op::sum:
      return "sum";
    case reduce_op::mean:
      return "mean";
    case reduce_op::max:
      return "max";
    case reduce_op::min:
      return "min";
    case reduce_op::count:
      break;
  }
  return "?";
}

bool request::state::complete(array result) {
  {
    std::lock_guard lock(mu_);
    if (done_) return false;
    done_ = true;
    result_ = std::move(result);
  }
  cv_.notify_all();
  return true;
}

bool request::state::complete_in_sink() {
  {
    std::lock_guard lock(mu_);
    if (done_) return false;
    done_ = true;
    in_sink_ = true;
  }
  cv_.notify_all();
  return true;
}

bool request::state::landed_in_sink() {
  std::lock_guard lock(mu_);
  return in_sink_;
}

bool request::state::fail(const std::string& message) {
  {
    std::lock_guard lock(mu_);
    if (done_) return false;
    done_ = true;
    error_ = message;
  }
  cv_.notify_all();
  if (on_error) on_error(message);
  return true;
}

array request::state::wait() {
  std::unique_lock lock(mu_);
  if (!cv_.wait_until(lock, deadline, [&] { return done_; })) {
    lock.unlock();
    fail(what + " timed out after " + std::to_string(timeout.count()) + " ms");
    lock.lock();
  }
  if (!error_.empty()) throw comm_error(error_);
  return result_;
}

bool request::state::ready() {
  std::lock_guard lock(mu_);
  return done_;
}

std::shared_ptr<request::state> completed_state(array result) {
  auto s = std::make_shared<request::state>();
  s->complete(std::move(result));
  return s;
}

array request::wait() {
  if (!state_) throw std::invalid_argument("[request::wait] the request is empty");
  auto s = std::move(state_);
  return s->wait();
}

bool request::ready() const {
  return state_ && state_->ready();
}

}  // namespace mlxd::comm
