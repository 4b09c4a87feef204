// The gRPC backend's group: the p2p collectives over a node's links and mailbox.
#include <cstring>
#include <numeric>

#include "comm/builtin_backends.h"
#include "comm/grpc/node.h"
#include "comm/p2p_group.h"

namespace mlxd::comm {
namespace {

array copy_of(const array& x) {
  array out = array::empty(x.shape(), x.type());
  if (x.nbytes() > 0) std::memcpy(out.mutable_data<uint8_t>(), x.raw_data(), x.nbytes());
  return out;
}

class grpc_group final : public p2p_group {
 public:
  // `members` are the world ranks of this group in group order.
  grpc_group(std::shared_ptr<rpc::node> node, std::vector<int> members, int rank, uint64_t id)
      : p2p_group(rank, static_cast<int>(members.size()), id, settings_of(node->options())),
        node_(std::move(node)),
        members_(std::make_shared<const std::vector<int>>(std::move(members))) {}

  std::string backend() const override { return "grpc"; }

 protected:
  void send_message(const array& x, int dst, uint64_t tag, const char* op) override {
    const int w = (*members_)[dst];
    if (w == node_->rank()) return node_->box().deliver(id(), w, tag, copy_of(x), 0);
    node_->link(w)->send(id(), tag, x, op);
  }

  request start_send(const array& x, int dst, uint64_t tag, const char* op) override {
    auto r = new_request(std::string(op) + " to " + peer_name(dst) + ", tag " + std::to_string(tag));
    const int w = (*members_)[dst];
    if (w == node_->rank()) {
      node_->box().deliver(id(), w, tag, copy_of(x), 0);
      r->complete(array::empty({0}, dtype::u8));
    } else {
      node_->link(w)->isend(id(), tag, x, op, r);
    }
    return request(r);
  }

  void post_recv(int src, uint64_t tag, std::shared_ptr<request::state> r) override {
    r->progress = node_->progress();
    node_->box().post(id(), (*members_)[src], tag, members_, std::move(r));
  }

  std::string peer_name(int rank) const override {
    const int w = (*members_)[rank];
    if (id() == 0) return node_->peer_name(w);
    return "rank " + std::to_string(rank) + " of a sub-group, world " + node_->peer_name(w);
  }

  std::shared_ptr<group> make_subgroup(const std::vector<int>& ranks, uint64_t sub_id) override {
    std::vector<int> world(ranks.size());
    int me = -1;
    for (size_t i = 0; i < ranks.size(); ++i) {
      world[i] = (*members_)[ranks[i]];
      if (ranks[i] == rank()) me = static_cast<int>(i);
    }
    return std::make_shared<grpc_group>(node_, std::move(world), me, sub_id);
  }

 private:
  static p2p_settings settings_of(const group_options& o) {
    return {o.timeout, o.small_all_reduce_bytes, o.pipeline_bytes};
  }

  std::shared_ptr<rpc::node> node_;
  std::shared_ptr<const std::vector<int>> members_;
};

}  // namespace

std::shared_ptr<group> make_grpc_group(const group_options& options) {
  auto node = std::make_shared<rpc::node>(options);
  std::vector<int> members(options.world_size);
  std::iota(members.begin(), members.end(), 0);
  return std::make_shared<grpc_group>(std::move(node), std::move(members), options.rank, 0);
}

}  // namespace mlxd::comm
