#include "comm/mailbox.h"

#include <algorithm>

namespace mlxd::comm {

mailbox::mailbox(int world_size) : lost_(world_size), left_(world_size, false) {}

void mailbox::deliver(uint64_t group, int src, uint64_t tag, array message) {
  std::shared_ptr<request::state> ready;
  {
    std::lock_guard lock(mu_);
    auto it = slots_.try_emplace({group, src, tag}).first;
    if (it->second.waiting.empty()) {
      it->second.arrived.push_back(std::move(message));
      return;
    }
    ready = std::move(it->second.waiting.front().req);
    it->second.waiting.pop_front();
    if (it->second.waiting.empty() && it->second.arrived.empty()) slots_.erase(it);
  }
  ready->complete(std::move(message));  // outside the lock: it wakes the receiver
}

void mailbox::post(uint64_t group, int src, uint64_t tag, std::shared_ptr<const std::vector<int>> members,
                   std::shared_ptr<request::state> request) {
  std::unique_lock lock(mu_);
  auto it = slots_.find({group, src, tag});
  if (it != slots_.end() && !it->second.arrived.empty()) {
    array message = std::move(it->second.arrived.front());
    it->second.arrived.pop_front();
    if (it->second.waiting.empty() && it->second.arrived.empty()) slots_.erase(it);
    lock.unlock();
    request->complete(std::move(message));
    return;
  }
  std::string lost = lost_reason_locked(*members);
  if (lost.empty() && src >= 0 && src < static_cast<int>(left_.size()) && left_[src])
    lost = "rank " + std::to_string(src) + " has left the group";
  if (!lost.empty()) {
    lock.unlock();
    request->fail(request->what + " failed: " + lost);
    return;
  }
  slots_[{group, src, tag}].waiting.push_back({std::move(members), std::move(request)});
}

void mailbox::mark_lost(int rank, const std::string& reason) {
  std::vector<std::shared_ptr<request::state>> failed;
  {
    std::lock_guard lock(mu_);
    if (rank < 0 || rank >= static_cast<int>(lost_.size()) || !lost_[rank].empty()) return;
    lost_[rank] = reason;
    for (auto it = slots_.begin(); it != slots_.end();) {
      auto& waiting = it->second.waiting;
      for (auto w = waiting.begin(); w != waiting.end();) {
        if (std::find(w->members->begin(), w->members->end(), rank) != w->members->end()) {
          failed.push_back(std::move(w->req));
          w = waiting.erase(w);
        } else {
          ++w;
        }
      }
      it = (waiting.empty() && it->second.arrived.empty()) ? slots_.erase(it) : std::next(it);
    }
  }
  for (auto& r : failed) r->fail(r->what + " failed: " + reason);
}

void mailbox::mark_left(int rank) {
  std::vector<std::shared_ptr<request::state>> failed;
  {
    std::lock_guard lock(mu_);
    if (rank < 0 || rank >= static_cast<int>(left_.size())) return;
    left_[rank] = true;
    for (auto it = slots_.begin(); it != slots_.end();) {
      if (std::get<1>(it->first) == rank) {
        for (auto& w : it->second.waiting) failed.push_back(std::move(w.req));
        it->second.waiting.clear();
      }
      it = (it->second.waiting.empty() && it->second.arrived.empty()) ? slots_.erase(it) : std::next(it);
    }
  }
  for (auto& r : failed) r->fail(r->what + " failed: rank " + std::to_string(rank) + " has left the group");
}

void mailbox::mark_alive(int rank) {
  std::lock_guard lock(mu_);
  if (rank < 0 || rank >= static_cast<int>(lost_.size())) return;
  lost_[rank].clear();
  left_[rank] = false;
}

std::string mailbox::lost_reason(const std::vector<int>& members) const {
  std::lock_guard lock(mu_);
  return lost_reason_locked(members);
}

std::string mailbox::lost_reason_locked(const std::vector<int>& members) const {
  for (int m : members)
    if (m >= 0 && m < static_cast<int>(lost_.size()) && !lost_[m].empty()) return lost_[m];
  return "";
}

bool mailbox::has_left(int rank) const {
  std::lock_guard lock(mu_);
  return rank >= 0 && rank < static_cast<int>(left_.size()) && left_[rank];
}

}  // namespace mlxd::comm
