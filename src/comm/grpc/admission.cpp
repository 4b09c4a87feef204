#include "comm/grpc/admission.h"

#include <cstdio>

namespace mlxd::comm::rpc {
namespace {

// The token is a secret: the time taken must not depend on how many leading bytes match.
bool equal_constant_time(grpc::string_ref a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < b.size(); ++i) diff |= static_cast<unsigned char>(a.data()[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

std::string version_string(uint32_t major, uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

grpc::Status check_token(const grpc::ServerContextBase& ctx, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end() || !equal_constant_time(it->second, "Bearer " + token))
    return {grpc::StatusCode::UNAUTHENTICATED, "missing or wrong cluster token"};
  return grpc::Status::OK;
}

grpc::Status check_version(const grpc::ServerContextBase& ctx, const protocol_id& protocol,
                           const std::string& who) {
  const std::string ours =
      who + " speaks " + protocol.name + " " + version_string(protocol.major, protocol.minor);
  const auto& md = ctx.client_metadata();
  auto v = md.find(protocol.metadata_key);
  if (v == md.end())
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the call carries no " + protocol.metadata_key + " metadata; " + ours};
  const std::string text(v->second.data(), v->second.size());
  unsigned major = 0, minor = 0;
  char extra = 0;
  if (std::sscanf(text.c_str(), "%u.%u%c", &major, &minor, &extra) != 2)
    return {grpc::StatusCode::FAILED_PRECONDITION, "malformed protocol version \"" + text + "\"; " + ours};
  if (major != protocol.major)
    return {grpc::StatusCode::FAILED_PRECONDITION, "the caller speaks " + protocol.name + " " + text +
                                                       " and " + ours + " (major versions must match)"};
  return grpc::Status::OK;
}

}  // namespace mlxd::comm::rpc
