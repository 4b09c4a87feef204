// Admission of incoming gRPC calls, shared by the comm service and the stage protocol's workers: the cluster
// token (compared in constant time) and the protocol version carried in call metadata.
#pragma once

#include <cstdint>
#include <string>

#include <grpcpp/grpcpp.h>

namespace mlxd::comm::rpc {

struct protocol_id {
  std::string name;          // "mlxd protocol", "mlxd stage protocol"
  std::string metadata_key;  // where the caller puts "major.minor"
  uint32_t major = 0, minor = 0;
};

// "1.0".
std::string version_string(uint32_t major, uint32_t minor);

// OK when `token` is empty or the call carries "authorization: Bearer <token>"; else UNAUTHENTICATED.
grpc::Status check_token(const grpc::ServerContextBase& ctx, const std::string& token);
// OK when the call's metadata names a version of `protocol` with the same major; else FAILED_PRECONDITION
// saying what the caller sent and what `who` ("this worker") speaks.
grpc::Status check_version(const grpc::ServerContextBase& ctx, const protocol_id& protocol,
                           const std::string& who);

}  // namespace mlxd::comm::rpc
