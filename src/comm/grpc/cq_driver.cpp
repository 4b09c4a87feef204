#include "comm/grpc/cq_driver.h"

#include <algorithm>

#include "mlxd/core/thread_name.h"

namespace mlxd::comm::rpc {
namespace {

std::chrono::system_clock::time_point system_deadline(std::chrono::steady_clock::time_point d) {
  if (d == std::chrono::steady_clock::time_point::max()) return std::chrono::system_clock::time_point::max();
  return std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                                d - std::chrono::steady_clock::now());
}

}  // namespace

cq_driver::cq_driver(std::unique_ptr<grpc::ServerCompletionQueue> cq, std::function<void()> arm,
                     std::chrono::milliseconds background_after)
    : cq_driver(std::unique_ptr<grpc::CompletionQueue>(), std::move(arm), background_after) {
  server_cq_ = cq.get();
  cq_ = std::move(cq);
}

cq_driver::cq_driver(std::unique_ptr<grpc::CompletionQueue> cq, std::function<void()> arm,
                     std::chrono::milliseconds background_after)
    : cq_(std::move(cq)),
      server_cq_(nullptr),
      arm_(std::move(arm)),
      background_after_(background_after),
      kick_tag_{[this](bool) {
        std::lock_guard lock(kick_mu_);
        alarm_.reset();
      }} {}

void cq_driver::start() {
  background_ = std::thread([this] {
    name_this_thread("mlxd-cq-driver");
    background_loop();
  });
}

cq_driver::~cq_driver() {
  stop();
}

void cq_driver::stop() {
  if (closing_.exchange(true)) return;
  {
    std::lock_guard lock(kick_mu_);
    queue_shut_ = true;
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cq_->Shutdown();
  background_cv_.notify_all();
  if (background_.joinable()) return background_.join();
  void* t = nullptr;  // never started: drain here
  bool ok = false;
  while (cq_->Next(&t, &ok)) handle(t, ok);
  std::lock_guard lock(mu_);
  stopped_ = true;
}

void cq_driver::wait(request::state& s) {
  std::unique_lock lock(mu_);
  ++waiting_;
  while (!stopped_ && !s.ready() && clock::now() < s.deadline) {
    if (!driving_) {
      driving_ = true;
      --waiting_;
      lock.unlock();
      drive_for(s);
      lock.lock();
      driving_ = false;
      last_release_ = clock::now();
      hand_on_locked();
      return;
    }
    if (background_driving_) kick();
    line_.push_back(&s);
    lock.unlock();
    const bool in_time = s.wait_turn();
    lock.lock();
    line_.erase(std::find(line_.begin(), line_.end(), &s));
    if (!in_time) break;
  }
  --waiting_;
  // The turn may have come to this waiter as it finished: it goes on, or the next one sleeps undriven.
  if (!driving_) hand_on_locked();
}

void cq_driver::hold_background(bool on) {
  {
    std::lock_guard lock(mu_);
    held_ += on ? 1 : -1;
  }
  background_cv_.notify_all();
}

void cq_driver::completed(request::state&) {
  if (driver_thread_.load() != std::this_thread::get_id()) kick();
}

void cq_driver::drive_for(request::state& s) {
  if (!s.begin_driving(this)) return;
  driver_thread_ = std::this_thread::get_id();
  const auto deadline = system_deadline(s.deadline);
  arm_();
  while (!s.ready()) {
    void* t = nullptr;
    bool ok = false;
    const auto got = cq_->AsyncNext(&t, &ok, deadline);
    if (got == grpc::CompletionQueue::SHUTDOWN) {
      std::lock_guard lock(mu_);
      stopped_ = true;
      break;
    }
    if (got == grpc::CompletionQueue::TIMEOUT) break;
    handle(t, ok);
    if (!s.ready()) arm_();
  }
  driver_thread_ = std::thread::id();
  s.end_driving();
}

void cq_driver::background_loop() {
  std::unique_lock lock(mu_);
  while (!stopped_) {
    const auto now = clock::now();
    const bool busy = driving_ || waiting_ > 0;
    if (busy || (!stopping_ && held_ == 0 && now - last_release_ < background_after_)) {
      background_cv_.wait_until(lock, busy ? now + background_after_ : last_release_ + background_after_);
      continue;
    }
    driving_ = background_driving_ = true;
    lock.unlock();
    driver_thread_ = std::this_thread::get_id();
    bool open = true;
    arm_();
    for (;;) {
      void* t = nullptr;
      bool ok = false;
      if (!cq_->Next(&t, &ok)) {
        open = false;
        break;
      }
      handle(t, ok);
      lock.lock();
      const bool give_way = waiting_ > 0 && !stopping_;
      lock.unlock();
      if (give_way) break;
      arm_();
    }
    driver_thread_ = std::thread::id();
    lock.lock();
    driving_ = background_driving_ = false;
    if (!open) stopped_ = true;
    hand_on_locked();
  }
  for (auto* s : line_) s->poke();
}

void cq_driver::handle(void* t, bool ok) {
  tsan_acquire(t);
  static_cast<tag*>(t)->done(ok);
}

void cq_driver::kick() {
  std::lock_guard lock(kick_mu_);
  if (alarm_ || queue_shut_) return;
  alarm_ = std::make_unique<grpc::Alarm>();
  alarm_->Set(cq_.get(), std::chrono::system_clock::now(), op(kick_tag_));
}

void cq_driver::hand_on_locked() {
  if (stopped_)
    for (auto* s : line_) s->poke();
  else if (!line_.empty())
    line_.front()->poke();
}

}  // namespace mlxd::comm::rpc
