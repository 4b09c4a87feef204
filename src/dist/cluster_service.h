// The coordinator's side of joins: the logic of the Cluster service of proto/mlxd/v1/inference.proto, which
// cluster_server serves. It admits a call (cluster token, protocol major), checks the request and works out
// the joiner's address; the coordinator decides the rest through the handlers.
#pragma once

#include <functional>
#include <string>

#include "mlxd/v1/inference.grpc.pb.h"

namespace mlxd::dist {

class cluster_service {
 public:
  struct handlers {
    // Adds the worker at `address` that says it is `node_id`: OK with the reply filled, or why not.
    std::function<grpc::Status(const std::string& address, const std::string& node_id, v1::ClusterJoinReply&)>
        join;
    std::function<void(v1::ClusterMembersReply&)> members;
  };
  cluster_service(std::string cluster_token, handlers h);

  grpc::Status join(grpc::ServerContext& ctx, const v1::ClusterJoinRequest& request,
                    v1::ClusterJoinReply* reply);
  grpc::Status members(grpc::ServerContext& ctx, v1::ClusterMembersReply* reply);

 private:
  std::string token_;
  handlers handlers_;
};

// The host of a gRPC peer string as an address needs it: "ipv4:10.0.0.5:41234" -> "10.0.0.5",
// "ipv6:[::1]:5" (or "ipv6:%5B::1%5D:5") -> "[::1]"; "" for anything else (a unix socket).
std::string peer_host(const std::string& peer);

// "" when `address` is host:port with a port in 1..65535 and nothing odd in it, else why not.
std::string check_worker_address(const std::string& address);

}  // namespace mlxd::dist
