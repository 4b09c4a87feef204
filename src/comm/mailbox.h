// Where received messages wait for their recv: keyed by (group, source rank, tag), first in first out.
//
// Transports deliver complete messages from their own threads; receivers post requests. A message and a
// request meet whichever comes first. Ranks here are world ranks. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "comm/request_state.h"

namespace mlxd::comm {

class mailbox {
 public:
  explicit mailbox(int world_size);

  void deliver(uint64_t group, int src, uint64_t tag, array message);
  // Completes `request` with the next message for (group, src, tag), now or when it arrives. `members`
  // are the world ranks of the requesting group: if any of them is lost, the request fails.
  void post(uint64_t group, int src, uint64_t tag, std::shared_ptr<const std::vector<int>> members,
            std::shared_ptr<request::state> request);

  // A peer is gone (its stream broke, it sent garbage, keepalive failed): every pending and later request of
  // a group containing it fails with `reason`. The first reason for a rank wins.
  void mark_lost(int rank, const std::string& reason);
  // A peer left in order: requests for messages from it that never came fail; queued messages stay readable.
  void mark_left(int rank);
  // A new stream from `rank` opened (the peer reconnected): clears its lost and left marks.
  void mark_alive(int rank);
  // The reason a member of `members` was lost, or "" when none was.
  std::string lost_reason(const std::vector<int>& members) const;
  bool has_left(int rank) const;

 private:
  using key = std::tuple<uint64_t, int, uint64_t>;
  struct waiter {
    std::shared_ptr<const std::vector<int>> members;
    std::shared_ptr<request::state> req;
  };
  struct slot {
    std::deque<array> arrived;
    std::deque<waiter> waiting;
  };
  std::string lost_reason_locked(const std::vector<int>& members) const;

  mutable std::mutex mu_;
  std::map<key, slot> slots_;
  std::vector<std::string> lost_;  // by rank; "" while alive
  std::vector<bool> left_;
};

}  // namespace mlxd::comm
