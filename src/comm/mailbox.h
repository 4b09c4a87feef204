// Where received messages wait for their recv: keyed by (group, source rank, tag), first in first out.
//
// Transports deliver complete messages from their own threads; receivers post requests. A message and a
// request meet whichever comes first. Ranks here are world ranks. Thread-safe.
//
// Flow control: the bytes of messages from one source that arrived (counted from their first chunk) and wait
// for a recv are that source's buffered bytes. Above `max_buffered_bytes` the transport pauses reading from
// that source until a recv takes a message or waits for one from it (backpressure: the sender's writes wait).
// When a recv waits for a message from a source whose other, unreceived messages exceed the limit, that recv
// fails: the program would need unbounded buffering to go on.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
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
  explicit mailbox(int world_size, size_t max_buffered_bytes = SIZE_MAX);

  // A message of `bytes` bytes from `src` has started to arrive.
  void reserve(int src, size_t bytes);
  // A message that started to arrive never will (its stream broke).
  void release(int src, size_t bytes);
  // A complete message; `reserved` is what reserve() counted for it (0 for a message to oneself).
  void deliver(uint64_t group, int src, uint64_t tag, array message, size_t reserved = 0);
  // The transport starts a message for (group, src, tag) of `bytes` bytes of `t`: when the receive waiting
  // first for it offers a sink of that dtype and size, it leaves the queue and is returned, and the transport
  // writes the message into the sink and completes it (or fails it). Else null.
  std::shared_ptr<request::state> claim_sink(uint64_t group, int src, uint64_t tag, dtype t, size_t bytes);
  // Completes `request` with the next message for (group, src, tag), now or when it arrives. `members`
  // are the world ranks of the requesting group: if any of them is lost, the request fails.
  void post(uint64_t group, int src, uint64_t tag, std::shared_ptr<const std::vector<int>> members,
            std::shared_ptr<request::state> request);

  // Asked by the transport of `src` between chunks. Returns false when it may read on. Else it should stop
  // reading: `resume` is kept and called once, outside the lock, by the thread that makes room or posts a
  // recv for `src`. `owner` identifies the stream for cancel_pause.
  bool pause(int src, const void* owner, std::function<void()> resume);
  // The paused stream `owner` ended: drops its resume. False when resume already ran (or is running).
  bool cancel_pause(int src, const void* owner);
  size_t buffered_bytes(int src) const;
  size_t max_buffered_bytes() const { return max_buffered_; }

  // A peer is gone (its stream broke, it sent garbage, keepalive failed): every pending and later request of
  // a group containing it fails with `reason`. The first reason for a rank wins.
  void mark_lost(int rank, const std::string& reason);
  // A peer left in order: requests for messages from it that never came fail, naming `why` it left when it
  // said (a peer it had lost); queued messages stay readable.
  void mark_left(int rank, const std::string& why);
  // A new stream from `rank` opened (the peer reconnected): clears its lost and left marks.
  void mark_alive(int rank);
  // The reason a member of `members` was lost, or "" when none was.
  std::string lost_reason(const std::vector<int>& members) const;
  // The reason of the first peer marked lost, or "": why this process leaves, told to the others.
  std::string first_loss() const;
  bool has_left(int rank) const;

 private:
  using key = std::tuple<uint64_t, int, uint64_t>;
  struct waiter {
    std::shared_ptr<const std::vector<int>> members;
    std::shared_ptr<request::state> req;
  };
  struct message {
    array data;
    size_t reserved;
  };
  struct slot {
    std::deque<message> arrived;
    std::deque<waiter> waiting;
  };
  struct source {
    size_t buffered = 0;
    size_t n_waiting = 0;  // recvs posted for this source and not yet matched
    const void* paused_by = nullptr;
    std::function<void()> resume;
  };
  std::string lost_reason_locked(const std::vector<int>& members) const;
  bool valid(int rank) const { return rank >= 0 && rank < static_cast<int>(sources_.size()); }
  // Takes the resume of a paused `src` when reading may go on.
  std::function<void()> take_resume_locked(int src);
  // Removes the waiters of `src` (for every group and tag) into `out`.
  void take_waiters_locked(int src, std::vector<std::shared_ptr<request::state>>& out);

  mutable std::mutex mu_;
  size_t max_buffered_;
  std::map<key, slot> slots_;
  std::vector<source> sources_;    // by rank
  std::vector<std::string> lost_;  // by rank; "" while alive
  std::vector<std::string> left_;  // by rank; why it left ("has left the group..."), "" while in the group
  std::string first_loss_;
};

}  // namespace mlxd::comm
