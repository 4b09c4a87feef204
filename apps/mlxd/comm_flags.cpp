#include "comm_flags.h"

#include <filesystem>
#include <stdexcept>

namespace mlxd::app {

void add_comm_security_flags(CLI::App* cmd, comm_security_flags& f) {
  cmd->add_option("--cluster-token", f.cluster_token,
                  "secret every rank presents on every call (default: MLXD_CLUSTER_TOKEN)");
  cmd->add_option("--tls-cert", f.tls_cert, "this node's TLS certificate, PEM (default: MLXD_TLS_CERT)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tls-key", f.tls_key, "the private key of --tls-cert, PEM (default: MLXD_TLS_KEY)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tls-ca", f.tls_ca,
                  "CA that peers' certificates must chain to; asks peers for one (mutual TLS)")
      ->check(CLI::ExistingFile);
}

void check_comm_security_flags(const comm_security_flags& f) {
  if (f.tls_cert.empty() != f.tls_key.empty())
    throw std::invalid_argument("--tls-cert and --tls-key go together");
}

void apply_comm_security_flags(const comm_security_flags& f, comm::group_options& o) {
  check_comm_security_flags(f);
  if (!f.cluster_token.empty()) o.cluster_token = f.cluster_token;
  if (!f.tls_cert.empty()) o.tls_cert = f.tls_cert;
  if (!f.tls_key.empty()) o.tls_key = f.tls_key;
  if (!f.tls_ca.empty()) o.tls_ca = f.tls_ca;
}

std::vector<std::pair<std::string, std::string>> comm_security_env(const comm_security_flags& f) {
  check_comm_security_flags(f);
  std::vector<std::pair<std::string, std::string>> env;
  if (!f.cluster_token.empty()) env.emplace_back("MLXD_CLUSTER_TOKEN", f.cluster_token);
  // Absolute, so a rank that changes its directory still finds them.
  auto path = [](const std::string& p) { return std::filesystem::absolute(p).string(); };
  if (!f.tls_cert.empty()) env.emplace_back("MLXD_TLS_CERT", path(f.tls_cert));
  if (!f.tls_key.empty()) env.emplace_back("MLXD_TLS_KEY", path(f.tls_key));
  if (!f.tls_ca.empty()) env.emplace_back("MLXD_TLS_CA", path(f.tls_ca));
  return env;
}

}  // namespace mlxd::app
