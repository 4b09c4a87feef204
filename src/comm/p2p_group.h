// The collectives written once over point-to-point messages; a backend supplies send and receive.
//
// Algorithms (n ranks, B bytes): all_reduce and reduce_scatter use a one-round direct exchange (each rank
// sends its data to every other rank and reduces the n contributions in rank order) up to
// small_all_reduce_bytes, and above it a ring (reduce-scatter then all-gather, each segment moved in pieces
// of pipeline_bytes so receiving, reducing and forwarding overlap). all_gather is a direct exchange up to
// small_all_reduce_bytes per rank and a pipelined ring above; broadcast is direct for small tensors and a
// pipelined chain from the root for large ones. The rings send without blocking, so a rank keeps receiving
// while its sends wait, and each peer buffers only a few pieces (see max_buffered_bytes). Each collective
// call takes the next tag of a private tag space, so collectives never match user messages. Before any data
// moves every rank sends every other its descriptor of the call (collective_desc), so arguments that differ
// between ranks fail on all of them at once instead of leaving one waiting for the timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/collective_desc.h"
#include "comm/request_state.h"

namespace mlxd::comm {

// Tags at and above this are reserved for collectives.
inline constexpr uint64_t first_reserved_tag = uint64_t{1} << 62;

struct p2p_settings {
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  size_t small_all_reduce_bytes = 64 << 10;
  size_t pipeline_bytes = 1 << 20;
};

class p2p_group : public group {
 public:
  p2p_group(int rank, int size, uint64_t id, p2p_settings settings);

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  request isend(const array& x, int dst, uint64_t tag) override;
  request irecv(int src, uint64_t tag) override;
  void send(const array& x, int dst, uint64_t tag) override;
  array recv(int src, uint64_t tag) override;
  array all_reduce(const array& x, reduce_op op) override;
  array all_gather(const array& x) override;
  array reduce_scatter(const array& x, reduce_op op) override;
  array broadcast(const array& x, int root) override;
  void barrier() override;
  std::shared_ptr<group> split(int color, int key) override;

 protected:
  // Backend hooks; ranks are ranks of this group and `x` is contiguous. send_message returns once the bytes
  // are handed to the transport (x may then change); start_send may return earlier and keeps x alive.
  virtual void send_message(const array& x, int dst, uint64_t tag, const char* op) = 0;
  virtual request start_send(const array& x, int dst, uint64_t tag, const char* op) = 0;
  // Arranges for `r` to complete with the next message from `src` with `tag`, or to fail.
  virtual void post_recv(int src, uint64_t tag, std::shared_ptr<request::state> r) = 0;
  // "rank 2 (10.0.0.3:8101)", for error messages.
  virtual std::string peer_name(int rank) const = 0;
  // The sub-group of these ranks of this group (in their new order), with the agreed id.
  virtual std::shared_ptr<group> make_subgroup(const std::vector<int>& ranks, uint64_t id) = 0;

  uint64_t id() const { return id_; }
  const p2p_settings& settings() const { return settings_; }
  // A receive request whose failure or timeout breaks the group.
  std::shared_ptr<request::state> new_request(std::string what);

 private:
  struct broken_flag {
    std::mutex mu;
    std::string reason;
  };
  template <class F>
  auto run(const char* op, F&& body);
  void check_peer(const char* where, int peer) const;
  array recv_now(int src, uint64_t tag, const char* op);
  // A receive of the next message from `src` into `dst` (its dtype and size; reduced into it when `reduce`):
  // posted early, the transport writes each message into its place as it arrives (see recv_sink).
  // With `base`, dst becomes base (op) message.
  struct posted_recv {
    std::shared_ptr<request::state> r;
    array dst, base;
    bool reduce;
    reduce_op op;
    int src;
  };
  posted_recv post_into(int src, uint64_t tag, const char* op, const array& dst, bool reduce, reduce_op rop,
                        const array& base = array());
  // Waits for it; a message the transport could not place is checked against dst and copied or reduced.
  void finish_into(posted_recv& p, const char* op);
  // Bits 0..60 count collective calls; bit 61 marks a collective's descriptors (its data has the plain tag).
  static constexpr uint64_t desc_tag_bit = uint64_t{1} << 61;
  uint64_t next_tag() { return first_reserved_tag | (n_collectives_++ & (desc_tag_bit - 1)); }
  void send_to_all(const array& x, uint64_t tag, const char* where);
  // Sends this rank's descriptor of the collective with `tag` to every other rank.
  void announce(const collective_desc& mine, uint64_t tag, const char* where);
  // Receives every other rank's descriptor and returns all, by rank. When they disagree, takes what the
  // direct algorithms sent ahead out of the mailbox and throws std::invalid_argument naming the difference
  // (the group stays usable: every rank stops at the same point).
  std::vector<collective_desc> agree(const collective_desc& mine, uint64_t tag, const char* where);
  // Reduces the inputs the other ranks sent directly on `tag`.
  void direct_reduce(const array& in, array& out, reduce_op op, uint64_t tag, const char* where);
  // `in` and `out` are flat and of one size; out's old contents do not matter.
  void ring_reduce_scatter(const array& in, array& out, reduce_op op, uint64_t tag, bool then_all_gather,
                           const char* where);
  void ring_all_gather(const array& in, array& out, uint64_t tag);
  void check_piece(const array& got, const array& expected_like, int64_t n, int src, const char* where) const;

  int rank_, size_;
  uint64_t id_;
  p2p_settings settings_;
  uint64_t n_collectives_ = 0;
  uint64_t n_splits_ = 0;
  std::shared_ptr<broken_flag> broken_ = std::make_shared<broken_flag>();
};

}  // namespace mlxd::comm
