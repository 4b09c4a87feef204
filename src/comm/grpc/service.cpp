#include "comm/grpc/service.h"

#include <algorithm>

#include "comm/grpc/admission.h"
#include "comm/grpc/capabilities.h"

namespace mlxd::comm::rpc {
namespace {

const protocol_id& comm_protocol() {
  static const protocol_id id{"mlxd protocol", wire::protocol_key, wire::protocol_major,
                              wire::protocol_minor};
  return id;
}

std::string ours() {
  return "this node speaks mlxd protocol " + version_string(wire::protocol_major, wire::protocol_minor);
}

}  // namespace

comm_service::comm_service(identity id, mailbox* box)
    : id_(std::move(id)),
      box_(box),
      opened_(id_.world_size, false),
      closed_(id_.world_size, false),
      addresses_(id_.world_size) {}

grpc::Status comm_service::admit(const grpc::ServerContextBase& ctx) const {
  grpc::Status s = check_token(ctx, id_.token);
  return s.ok() ? check_version(ctx, comm_protocol(), "this node") : s;
}

grpc::Status comm_service::hello(const v1::HelloRequest& request, v1::HelloReply* reply) const {
  if (request.protocol_major() != wire::protocol_major)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the caller speaks mlxd protocol " +
                version_string(request.protocol_major(), request.protocol_minor()) + " and " + ours() +
                " (major versions must match)"};
  if (request.rank() >= 0 && (request.world_size() != id_.world_size || request.rank() >= id_.world_size ||
                              request.rank() == id_.rank))
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the caller claims rank " + std::to_string(request.rank()) + " of " +
                std::to_string(request.world_size()) + ", but this node is rank " + std::to_string(id_.rank) +
                " of " + std::to_string(id_.world_size)};
  reply->set_protocol_major(wire::protocol_major);
  reply->set_protocol_minor(wire::protocol_minor);
  reply->set_node_id(id_.node_id);
  reply->set_rank(id_.rank);
  reply->set_world_size(id_.world_size);
  fill_capabilities(reply->mutable_capabilities());
  return grpc::Status::OK;
}

grpc::Status comm_service::join(const v1::JoinRequest& request, join_call* joiner, v1::JoinReply* reply,
                                std::vector<join_call*>* ready) {
  std::lock_guard lock(mu_);
  const int r = request.rank();
  if (!join_enabled_)
    return {grpc::StatusCode::FAILED_PRECONDITION, "this node is not the rendezvous master"};
  if (join_complete_)  // ABORTED: the joiner retries, as this may be a group on its way out
    return {grpc::StatusCode::ABORTED, "the group is already formed"};
  if (request.world_size() != id_.world_size || r <= 0 || r >= id_.world_size)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "rank " + std::to_string(r) + " of " + std::to_string(request.world_size()) +
                " does not fit a group of " + std::to_string(id_.world_size)};
  if (!addresses_[r].empty())
    return {grpc::StatusCode::ALREADY_EXISTS,
            "rank " + std::to_string(r) + " already joined from " + addresses_[r]};
  if (request.address().empty())
    return {grpc::StatusCode::INVALID_ARGUMENT, "a joining rank must give its address"};
  addresses_[r] = request.address();
  pending_joins_.emplace_back(joiner, reply);
  if (std::all_of(addresses_.begin(), addresses_.end(), [](const std::string& a) { return !a.empty(); })) {
    join_complete_ = true;
    for (auto& [c, rep] : pending_joins_) {
      for (const auto& a : addresses_) rep->add_addresses(a);
      ready->push_back(c);
    }
    pending_joins_.clear();
    cv_.notify_all();
  }
  return grpc::Status::OK;
}

bool comm_service::cancel_join(join_call* joiner) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(pending_joins_.begin(), pending_joins_.end(),
                         [&](const auto& p) { return p.first == joiner; });
  if (it == pending_joins_.end()) return false;  // already answered
  pending_joins_.erase(it);
  return true;
}

void comm_service::enable_join(const std::string& own_address) {
  std::lock_guard lock(mu_);
  join_enabled_ = true;
  addresses_[id_.rank] = own_address;
  join_complete_ = id_.world_size == 1;
}

std::vector<std::string> comm_service::wait_for_joins(clock::time_point deadline) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_until(lock, deadline, [&] { return join_complete_; })) {
    std::string missing;
    for (int r = 0; r < id_.world_size; ++r)
      if (addresses_[r].empty()) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    throw comm_error("rendezvous: ranks " + missing + " did not join within the connect timeout");
  }
  return addresses_;
}

void comm_service::wait_for_streams(clock::time_point deadline) {
  std::unique_lock lock(mu_);
  auto all_open = [&] {
    for (int r = 0; r < id_.world_size; ++r)
      if (r != id_.rank && !opened_[r]) return false;
    return true;
  };
  if (!cv_.wait_until(lock, deadline, all_open)) {
    std::string missing;
    for (int r = 0; r < id_.world_size; ++r)
      if (r != id_.rank && !opened_[r]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    throw comm_error("rendezvous: ranks " + missing + " did not connect to rank " + std::to_string(id_.rank) +
                     " within the connect timeout");
  }
}

void comm_service::wait_for_goodbyes(clock::time_point deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] {
    for (int r = 0; r < id_.world_size; ++r)
      if (r != id_.rank && opened_[r] && !closed_[r]) return false;
    return true;
  });
}

void comm_service::set_peer_names(std::vector<std::string> names) {
  std::lock_guard lock(mu_);
  names_ = std::move(names);
}

std::string comm_service::peer_name(int rank) {
  std::lock_guard lock(mu_);
  if (rank >= 0 && rank < static_cast<int>(names_.size())) return names_[rank];
  return "rank " + std::to_string(rank);
}

void comm_service::stream_opened(int rank) {
  box_->mark_alive(rank);
  std::lock_guard lock(mu_);
  opened_[rank] = true;
  closed_[rank] = false;
  cv_.notify_all();
}

void comm_service::stream_closed(int rank, bool goodbye, const std::string& reason) {
  if (goodbye)
    box_->mark_left(rank, reason);
  else
    box_->mark_lost(rank, reason);
  std::lock_guard lock(mu_);
  closed_[rank] = true;
  cv_.notify_all();
}

}  // namespace mlxd::comm::rpc
