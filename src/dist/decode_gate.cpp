#include "decode_gate.h"

#include <algorithm>

namespace mlxd::dist {

decode_gate::decode_gate(send_fn send, int max_groups, std::chrono::microseconds patience, wait_fn wait)
    : send_(std::move(send)),
      wait_(std::move(wait)),
      max_groups_(std::max(1, max_groups)),
      patience_(patience) {}

void decode_gate::use_rings(ring_fn send, abandon_fn abandon, uint32_t tokens) {
  ring_ = std::move(send);
  abandon_ = std::move(abandon);
  ring_tokens_ = tokens >= 2 ? tokens : 0;
}

decode_gate::arrival::arrival(decode_gate& gate) : gate_(gate) {
  std::lock_guard lock(gate_.mu_);
  ++gate_.arriving_;
}

decode_gate::arrival::~arrival() {
  std::lock_guard lock(gate_.mu_);
  --gate_.arriving_;
}

decode_gate::member::member(decode_gate& gate, std::vector<int32_t> stop_ids)
    : gate_(gate), stop_ids_(std::move(stop_ids)) {
  std::lock_guard lock(gate_.mu_);
  ++gate_.members_;
}

decode_gate::member::~member() {
  std::lock_guard lock(gate_.mu_);
  if (in_ring_) end_ring();
  --gate_.members_;
  gate_.flush_if_ready(true);  // the others no longer wait for this one
}

void decode_gate::member::end_ring() {
  if (!ring_.empty()) gate_.abandon_(sequence_, ring_next_, static_cast<uint32_t>(ring_.size()));
  ring_.clear();
  in_ring_ = false;
  --gate_.in_flight_;
  if (--gate_.outstanding_[ring_group_] == 0) gate_.outstanding_.erase(ring_group_);
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
  const bool ring = ring_ && members_ == 1 && arriving_ == 0 && waiting_.size() == 1 && waiting_[0]->ring > 1;
  try {
    if (ring) {
      const std::vector<int32_t>& stops = *waiting_[0]->stop_ids;
      *steps[0].mutable_stop_ids() = {stops.begin(), stops.end()};
      std::vector<std::future<v1::StepReply>> replies = ring_(steps[0], waiting_[0]->ring);
      waiting_[0]->reply = std::move(replies[0]);
      waiting_[0]->rest.assign(std::make_move_iterator(replies.begin() + 1),
                               std::make_move_iterator(replies.end()));
    } else {
      std::vector<std::future<v1::StepReply>> replies = send_(steps);
      for (size_t i = 0; i < waiting_.size(); ++i) waiting_[i]->reply = std::move(replies[i]);
    }
    for (size_t i = 0; i < waiting_.size(); ++i) waiting_[i]->step_id = steps[i].step_id();
    in_flight_ += static_cast<int>(waiting_.size());
    outstanding_[group] += static_cast<int>(waiting_.size());
  } catch (...) {
    for (waiting* w : waiting_) w->error = std::current_exception();
  }
  for (waiting* w : waiting_) w->sent = true;
  waiting_.clear();
  sent_.notify_all();
}

v1::StepReply decode_gate::member::run(v1::StepRequest step, int wanted) {
  decode_gate& g = gate_;
  const auto ends_ring = [&](const std::exception_ptr& error, const v1::StepReply& r) {
    return error || !r.error().empty() || !r.sampled() ||
           std::find(stop_ids_.begin(), stop_ids_.end(), r.token()) != stop_ids_.end();
  };
  std::exception_ptr error;
  v1::StepReply reply;
  if (in_ring_) {  // the pipeline runs this step by itself
    std::future<v1::StepReply> f = std::move(ring_.front());
    ring_.pop_front();
    ++ring_next_;
    try {
      if (g.wait_) g.wait_(f);
      reply = f.get();
      ++looped_;
    } catch (...) {
      error = std::current_exception();
    }
    if (ring_.empty() || ends_ring(error, reply)) {
      std::lock_guard lock(g.mu_);
      end_ring();
      g.flush_if_ready(true);
    }
    if (error) std::rethrow_exception(error);
    return reply;
  }
  waiting w;
  sequence_ = step.sequence_id();
  w.step = std::move(step);
  w.ring = g.ring_tokens_ > 0 && wanted > 1 ? std::min<uint32_t>(g.ring_tokens_, wanted) : 0;
  w.stop_ids = &stop_ids_;
  {
    std::unique_lock lock(g.mu_);
    g.waiting_.push_back(&w);
    g.flush_if_ready(true);
    // Past the patience, a busy member is not waited for any longer (only the groups in the pipeline are).
    while (!w.sent)
      if (!g.sent_.wait_for(lock, g.patience_, [&] { return w.sent; })) g.flush_if_ready(false);
  }
  if (w.error) std::rethrow_exception(w.error);
  try {
    if (g.wait_) g.wait_(w.reply);
    reply = w.reply.get();
  } catch (...) {
    error = std::current_exception();
  }
  std::lock_guard lock(g.mu_);
  ring_.assign(std::make_move_iterator(w.rest.begin()), std::make_move_iterator(w.rest.end()));
  ring_group_ = w.group;
  ring_next_ = w.step_id + 1;
  in_ring_ = true;  // until end_ring: the ring's group stays in the pipeline
  if (ring_.empty() || ends_ring(error, reply)) end_ring();
  g.flush_if_ready(true);
  if (error) std::rethrow_exception(error);
  return reply;
}

}  // namespace mlxd::dist
