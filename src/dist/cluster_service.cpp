#include "dist/cluster_service.h"

#include "dist/stage_rpc.h"

namespace mlxd::dist {

cluster_service::cluster_service(std::string cluster_token, handlers h)
    : token_(std::move(cluster_token)), handlers_(std::move(h)) {}

std::string peer_host(const std::string& peer) {
  const auto decode = [](std::string s) {  // newer gRPC escapes the brackets of an IPv6 address
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"%5B", "["}, {"%5D", "]"}})
      for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
    return s;
  };
  std::string rest;
  if (peer.rfind("ipv4:", 0) == 0) {
    rest = peer.substr(5);
    const size_t colon = rest.rfind(':');
    return colon == std::string::npos || colon == 0 ? "" : rest.substr(0, colon);
  }
  if (peer.rfind("ipv6:", 0) == 0) {
    rest = decode(peer.substr(5));
    const size_t close = rest.find(']');
    return rest.empty() || rest[0] != '[' || close == std::string::npos || close < 2
               ? ""
               : rest.substr(0, close + 1);
  }
  return "";
}

std::string check_worker_address(const std::string& address) {
  if (address.empty() || address.size() > 255) return "an address of 1 to 255 characters is needed";
  for (char ch : address)
    if (static_cast<unsigned char>(ch) <= ' ' || ch == '/' || ch == '@' || ch == ',')
      return "\"" + address + "\" is not host:port";
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    return "\"" + address + "\" is not host:port";
  const std::string port = address.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535)
    return "\"" + address + "\" has no port in 1..65535";
  return "";
}

grpc::Status cluster_service::join(grpc::ServerContext& ctx, const v1::ClusterJoinRequest& request,
                                   v1::ClusterJoinReply* reply) {
  grpc::Status s = rpc::admit(ctx, token_, "this coordinator");
  if (!s.ok()) return s;
  if (request.protocol_major() != rpc::protocol_major)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the worker speaks mlxd stage protocol " +
                rpc::version_string(request.protocol_major(), request.protocol_minor()) +
                " and this coordinator " + rpc::version_string(rpc::protocol_major, rpc::protocol_minor) +
                " (major versions must match)"};
  if (request.node_id().size() > 255)
    return {grpc::StatusCode::INVALID_ARGUMENT, "a node id of at most 255 characters is needed"};
  std::string address = request.address();
  if (address.empty()) {
    if (request.port() < 1 || request.port() > 65535)
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "a join without an address needs the worker's port (1..65535), not " +
                  std::to_string(request.port())};
    const std::string host = peer_host(ctx.peer());
    if (host.empty())
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "the call comes from " + ctx.peer() + ", which has no IP address: give the worker's address"};
    address = host + ":" + std::to_string(request.port());
  }
  const std::string why = check_worker_address(address);
  if (!why.empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "the worker's address: " + why};
  try {
    return handlers_.join(address, request.node_id(), *reply);
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INTERNAL, std::string("the join failed: ") + e.what()};
  }
}

grpc::Status cluster_service::members(grpc::ServerContext& ctx, v1::ClusterMembersReply* reply) {
  grpc::Status s = rpc::admit(ctx, token_, "this coordinator");
  if (!s.ok()) return s;
  try {
    handlers_.members(*reply);
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INTERNAL, e.what()};
  }
}

}  // namespace mlxd::dist
