#include "mlxd/dist/membership.h"

#include "comm/grpc/credentials.h"
#include "dist/stage_rpc.h"

namespace mlxd::dist {
namespace {

// A refusal is a status the coordinator chose; the others mean it was not reached or went away.
bool is_refusal(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED ||
         code == grpc::StatusCode::FAILED_PRECONDITION || code == grpc::StatusCode::INVALID_ARGUMENT ||
         code == grpc::StatusCode::UNIMPLEMENTED;
}

}  // namespace

join_result join_cluster(const join_options& o) {
  if (o.coordinator.empty()) throw std::invalid_argument("[join] no coordinator address");
  if (o.advertise.empty() && (o.port < 1 || o.port > 65535))
    throw std::invalid_argument("[join] the worker's port " + std::to_string(o.port) + " is not in 1..65535");
  auto stub = v1::Cluster::NewStub(
      rpc::make_channel(o.coordinator, comm::rpc::channel_credentials({o.tls_cert, o.tls_key, o.tls_ca})));
  grpc::ClientContext ctx;
  rpc::prepare(ctx, o.cluster_token, o.timeout);
  v1::ClusterJoinRequest req;
  req.set_protocol_major(rpc::protocol_major);
  req.set_protocol_minor(rpc::protocol_minor);
  req.set_node_id(o.node_id);
  req.set_address(o.advertise);
  req.set_port(o.port);
  v1::ClusterJoinReply reply;
  const grpc::Status s = stub->Join(&ctx, req, &reply);
  if (!s.ok()) {
    const std::string what = "the coordinator " + o.coordinator + " " +
                             (is_refusal(s.error_code()) ? "refused the join: " : "cannot be reached: ") +
                             s.error_message();
    if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED)
      throw join_refused(what +
                         " (is it a coordinator of protocol 1.2 or later, started with --cluster-port?)");
    if (is_refusal(s.error_code())) throw join_refused(what);
    throw std::runtime_error(what);
  }
  return {reply.address(), reply.already_member(), reply.n_workers()};
}

cluster_members query_members(const std::string& coordinator, const cluster_access& access) {
  auto stub = v1::Cluster::NewStub(rpc::make_channel(
      coordinator, comm::rpc::channel_credentials({access.tls_cert, access.tls_key, access.tls_ca})));
  grpc::ClientContext ctx;
  rpc::prepare(ctx, access.cluster_token, access.hello_timeout);
  v1::ClusterMembersReply reply;
  const grpc::Status s = stub->Members(&ctx, v1::ClusterMembersRequest{}, &reply);
  if (!s.ok())
    throw std::runtime_error("the coordinator " + coordinator +
                             " did not say who its workers are: " + s.error_message());
  cluster_members out;
  out.workers.assign(reply.workers().begin(), reply.workers().end());
  out.plan = reply.plan();
  out.replans = reply.replans();
  return out;
}

}  // namespace mlxd::dist
