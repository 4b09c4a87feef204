#include "comm/grpc/credentials.h"

#include <stdexcept>

#include "mlxd/io/file_text.h"

namespace mlxd::comm::rpc {
namespace {

std::string read_pem(const std::string& path, const char* what) {
  if (path.empty()) return "";
  auto text = io::read_file(path);
  if (!text || text->empty())
    throw std::invalid_argument(std::string("[tls] cannot read the ") + what + " file " + path);
  return std::move(*text);
}

void check_pair(const tls_files& tls) {
  if (tls.cert.empty() != tls.key.empty())
    throw std::invalid_argument("[tls] --tls-cert and --tls-key go together");
}

}  // namespace

std::shared_ptr<grpc::ServerCredentials> server_credentials(const tls_files& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  check_pair(tls);
  if (tls.cert.empty()) throw std::invalid_argument("[tls] a TLS server needs --tls-cert and --tls-key");
  grpc::SslServerCredentialsOptions options(tls.ca.empty()
                                                ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = read_pem(tls.ca, "CA");
  options.pem_key_cert_pairs.push_back({read_pem(tls.key, "key"), read_pem(tls.cert, "certificate")});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const tls_files& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  check_pair(tls);
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = read_pem(tls.ca, "CA");
  options.pem_private_key = read_pem(tls.key, "key");
  options.pem_cert_chain = read_pem(tls.cert, "certificate");
  return grpc::SslCredentials(options);
}

}  // namespace mlxd::comm::rpc
