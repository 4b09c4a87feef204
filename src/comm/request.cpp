#include "comm/request_state.h"

#include "comm/progress.h"

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
  notify_done();
  return true;
}

bool request::state::complete_in_sink() {
  {
    std::lock_guard lock(mu_);
    if (done_) return false;
    done_ = true;
    in_sink_ = true;
  }
  notify_done();
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
  notify_done();
  if (on_error) on_error(message);
  return true;
}

void request::state::notify_done() {
  progress_engine* engine = nullptr;
  {
    std::lock_guard lock(mu_);
    engine = driving_;
  }
  cv_.notify_all();
  if (engine) engine->completed(*this);
}

bool request::state::begin_driving(progress_engine* engine) {
  std::lock_guard lock(mu_);
  if (done_) return false;
  driving_ = engine;
  return true;
}

void request::state::end_driving() {
  std::lock_guard lock(mu_);
  driving_ = nullptr;
}

void request::state::poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

bool request::state::wait_turn() {
  std::unique_lock lock(mu_);
  const bool woke = cv_.wait_until(lock, deadline, [&] { return done_ || poked_; });
  poked_ = false;
  return woke;
}

array request::state::wait() {
  if (progress) progress->wait(*this);
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
