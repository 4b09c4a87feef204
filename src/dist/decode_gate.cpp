#include "decode_gate.h"

namespace mlxd::dist {

decode_gate::decode_gate(send_fn send, int max_groups, std::chrono::microseconds patience, wait_fn wait)
    : send_(std::move(send)),
      wait_(std::move(wait)),
      max_groups_(std::max(1, max_groups)),
      patience_(patience) {}

decode_gate::member::member(decode_gate& gate) : gate_(gate) {
  std::lock_guard lock(gate_.mu_);
  ++gate_.members_;
}

decode_gate::member::~member() {
  std::lock_guard lock(gate_.mu_);
  --gate_.members_;
  gate_.flush_if_ready(true);  // the others no longer wait for this one
}

void decode_gate::flush_if_ready(bool patient) {
  if (waiting_.empty() || static_cast<int>(outstanding_.size()) >= max_groups_) return;
  const int busy = members_ - static_cast<int>(waiting_.size()) - in_flight_;
  if (patient && busy > 0) return;
  const uint64_t group = next_group_++;
  std::vector<v1::StepRequest> steps(waiting_.size());
  for (size_t i = 0; i < waiting_.size(); ++i) {
    waiting_[i]->group = group;
    steps[i].Swap(&waiting_[i]->step);
    steps[i].set_group_id(group);
    steps[i].set_group_size(static_cast<uint32_t>(waiting_.size()));
  }
  try {
    std::vector<std::future<v1::StepReply>> replies = send_(steps);
    for (size_t i = 0; i < waiting_.size(); ++i) waiting_[i]->reply = std::move(replies[i]);
    in_flight_ += static_cast<int>(waiting_.size());
    outstanding_[group] += static_cast<int>(waiting_.size());
  } catch (...) {
    for (waiting* w : waiting_) w->error = std::current_exception();
  }
  for (waiting* w : waiting_) w->sent = true;
  waiting_.clear();
  sent_.notify_all();
}

v1::StepReply decode_gate::member::run(v1::StepRequest step) {
  decode_gate& g = gate_;
  waiting w;
  w.step = std::move(step);
  {
    std::unique_lock lock(g.mu_);
    g.waiting_.push_back(&w);
    g.flush_if_ready(true);
    // Past the patience, a busy member is not waited for any longer (only the groups in the pipeline are).
    while (!w.sent)
      if (!g.sent_.wait_for(lock, g.patience_, [&] { return w.sent; })) g.flush_if_ready(false);
  }
  if (w.error) std::rethrow_exception(w.error);
  std::exception_ptr error;
  v1::StepReply reply;
  try {
    if (g.wait_) g.wait_(w.reply);
    reply = w.reply.get();
  } catch (...) {
    error = std::current_exception();
  }
  std::lock_guard lock(g.mu_);
  --g.in_flight_;
  if (--g.outstanding_[w.group] == 0) g.outstanding_.erase(w.group);
  g.flush_if_ready(true);
  if (error) std::rethrow_exception(error);
  return reply;
}

}  // namespace mlxd::dist
