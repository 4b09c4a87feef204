#include "comm/mailbox.h"

#include <algorithm>

namespace mlxd::comm {

mailbox::mailbox(int world_size, size_t max_buffered_bytes)
    : max_buffered_(max_buffered_bytes), sources_(world_size), lost_(world_size), left_(world_size) {}

void mailbox::reserve(int src, size_t bytes) {
  std::lock_guard lock(mu_);
  if (valid(src)) sources_[src].buffered += bytes;
}

void mailbox::release(int src, size_t bytes) {
  std::function<void()> resume;
  {
    std::lock_guard lock(mu_);
    if (!valid(src)) return;
    sources_[src].buffered -= std::min(bytes, sources_[src].buffered);
    resume = take_resume_locked(src);
  }
  if (resume) resume();
}

void mailbox::deliver(uint64_t group, int src, uint64_t tag, array data, size_t reserved) {
  std::shared_ptr<request::state> ready;
  std::vector<std::shared_ptr<request::state>> failed;
  std::string why;
  {
    std::lock_guard lock(mu_);
    auto it = slots_.try_emplace({group, src, tag}).first;
    if (it->second.waiting.empty()) {
      it->second.arrived.push_back({std::move(data), reserved});
      if (valid(src) && sources_[src].buffered > max_buffered_ && sources_[src].n_waiting > 0) {
        why =
            "rank " + std::to_string(src) + " has sent " + std::to_string(sources_[src].buffered) +
            " bytes of messages that this rank has not received (other tags or groups), over the limit of " +
            std::to_string(max_buffered_) + " (max_buffered_bytes); receive them first or raise the limit";
        take_waiters_locked(src, failed);
      }
    } else {
      ready = std::move(it->second.waiting.front().req);
      it->second.waiting.pop_front();
      if (it->second.waiting.empty() && it->second.arrived.empty()) slots_.erase(it);
      if (valid(src)) {
        sources_[src].buffered -= std::min(reserved, sources_[src].buffered);
        --sources_[src].n_waiting;
      }
    }
  }
  if (ready) ready->complete(std::move(data));  // outside the lock: it wakes the receiver
  for (auto& r : failed) r->fail(r->what + " failed: " + why);
}

std::shared_ptr<request::state> mailbox::claim_sink(uint64_t group, int src, uint64_t tag, dtype t,
                                                    size_t bytes) {
  std::lock_guard lock(mu_);
  auto it = slots_.find({group, src, tag});
  if (it == slots_.end() || !it->second.arrived.empty() || it->second.waiting.empty()) return nullptr;
  const auto& sink = it->second.waiting.front().req->sink;
  if (!sink || sink->dst().type() != t || sink->dst().nbytes() != bytes) return nullptr;
  auto r = std::move(it->second.waiting.front().req);
  it->second.waiting.pop_front();
  if (it->second.waiting.empty()) slots_.erase(it);
  if (valid(src)) --sources_[src].n_waiting;
  return r;
}

void mailbox::post(uint64_t group, int src, uint64_t tag, std::shared_ptr<const std::vector<int>> members,
                   std::shared_ptr<request::state> request) {
  std::unique_lock lock(mu_);
  std::function<void()> resume;
  auto it = slots_.find({group, src, tag});
  if (it != slots_.end() && !it->second.arrived.empty()) {
    message m = std::move(it->second.arrived.front());
    it->second.arrived.pop_front();
    if (it->second.waiting.empty() && it->second.arrived.empty()) slots_.erase(it);
    if (valid(src)) {
      sources_[src].buffered -= std::min(m.reserved, sources_[src].buffered);
      resume = take_resume_locked(src);
    }
    lock.unlock();
    request->complete(std::move(m.data));
    if (resume) resume();
    return;
  }
  std::string lost = lost_reason_locked(*members);
  if (lost.empty() && valid(src)) lost = left_[src];
  if (!lost.empty()) {
    lock.unlock();
    request->fail(request->what + " failed: " + lost);
    return;
  }
  slots_[{group, src, tag}].waiting.push_back({std::move(members), std::move(request)});
  if (valid(src)) {
    ++sources_[src].n_waiting;
    resume = take_resume_locked(src);
  }
  lock.unlock();
  if (resume) resume();
}

std::function<void()> mailbox::take_resume_locked(int src) {
  source& s = sources_[src];
  if (!s.resume || (s.buffered > max_buffered_ && s.n_waiting == 0)) return {};
  s.paused_by = nullptr;
  return std::move(s.resume);
}

bool mailbox::pause(int src, const void* owner, std::function<void()> resume) {
  std::lock_guard lock(mu_);
  if (!valid(src)) return false;
  source& s = sources_[src];
  if (s.buffered <= max_buffered_ || s.n_waiting > 0) return false;
  s.paused_by = owner;
  s.resume = std::move(resume);
  return true;
}

bool mailbox::cancel_pause(int src, const void* owner) {
  std::lock_guard lock(mu_);
  if (!valid(src) || sources_[src].paused_by != owner || !sources_[src].resume) return false;
  sources_[src].paused_by = nullptr;
  sources_[src].resume = nullptr;
  return true;
}

size_t mailbox::buffered_bytes(int src) const {
  std::lock_guard lock(mu_);
  return valid(src) ? sources_[src].buffered : 0;
}

void mailbox::take_waiters_locked(int src, std::vector<std::shared_ptr<request::state>>& out) {
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (std::get<1>(it->first) == src) {
      for (auto& w : it->second.waiting) out.push_back(std::move(w.req));
      it->second.waiting.clear();
    }
    it = (it->second.waiting.empty() && it->second.arrived.empty()) ? slots_.erase(it) : std::next(it);
  }
  if (valid(src)) sources_[src].n_waiting = 0;
}

void mailbox::mark_lost(int rank, const std::string& reason) {
  std::vector<std::shared_ptr<request::state>> failed;
  {
    std::lock_guard lock(mu_);
    if (!valid(rank) || !lost_[rank].empty()) return;
    lost_[rank] = reason;
    if (first_loss_.empty()) first_loss_ = reason;
    for (auto it = slots_.begin(); it != slots_.end();) {
      auto& waiting = it->second.waiting;
      const int src = std::get<1>(it->first);
      for (auto w = waiting.begin(); w != waiting.end();) {
        if (std::find(w->members->begin(), w->members->end(), rank) != w->members->end()) {
          failed.push_back(std::move(w->req));
          w = waiting.erase(w);
          if (valid(src)) --sources_[src].n_waiting;
        } else {
          ++w;
        }
      }
      it = (waiting.empty() && it->second.arrived.empty()) ? slots_.erase(it) : std::next(it);
    }
  }
  for (auto& r : failed) r->fail(r->what + " failed: " + reason);
}

void mailbox::mark_left(int rank, const std::string& why) {
  std::vector<std::shared_ptr<request::state>> failed;
  const std::string left =
      "rank " + std::to_string(rank) + " has left the group" + (why.empty() ? "" : " after an error: " + why);
  {
    std::lock_guard lock(mu_);
    if (!valid(rank)) return;
    left_[rank] = left;
    take_waiters_locked(rank, failed);
  }
  for (auto& r : failed) r->fail(r->what + " failed: " + left);
}

void mailbox::mark_alive(int rank) {
  std::lock_guard lock(mu_);
  if (!valid(rank)) return;
  lost_[rank].clear();
  left_[rank].clear();
}

std::string mailbox::lost_reason(const std::vector<int>& members) const {
  std::lock_guard lock(mu_);
  return lost_reason_locked(members);
}

std::string mailbox::lost_reason_locked(const std::vector<int>& members) const {
  for (int m : members)
    if (valid(m) && !lost_[m].empty()) return lost_[m];
  return "";
}

std::string mailbox::first_loss() const {
  std::lock_guard lock(mu_);
  return first_loss_;
}

bool mailbox::has_left(int rank) const {
  std::lock_guard lock(mu_);
  return valid(rank) && !left_[rank].empty();
}

}  // namespace mlxd::comm
