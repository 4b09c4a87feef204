// Transport security from PEM files: plaintext, TLS, or mutual TLS.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

namespace mlxd::comm::rpc {

struct tls_files {
  std::string cert, key, ca;  // PEM file paths; all empty for plaintext
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// Server: plaintext, or TLS with cert+key; with ca, clients must present a certificate signed by it.
// Throws std::invalid_argument for a missing half of a pair or an unreadable file.
std::shared_ptr<grpc::ServerCredentials> server_credentials(const tls_files& tls);
// Client: plaintext, or TLS trusting ca (the system roots when empty) and presenting cert+key when given.
std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const tls_files& tls);

}  // namespace mlxd::comm::rpc
