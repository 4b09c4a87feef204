// The security flags of the commands that form or launch a comm group (`mlxd launch`, `mlxd bench comm`):
// --cluster-token, --tls-cert, --tls-key, --tls-ca. (`mlxd worker` has its own: there they describe a
// server.)
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "mlxd/comm/options.h"

namespace mlxd::app {

struct comm_security_flags {
  std::string cluster_token;
  std::string tls_cert, tls_key, tls_ca;  // PEM file paths
};

// Registers the four flags on `cmd`, writing into `flags` (which must outlive parsing).
void add_comm_security_flags(CLI::App* cmd, comm_security_flags& flags);
// Throws std::invalid_argument when --tls-cert and --tls-key are not given together.
void check_comm_security_flags(const comm_security_flags& flags);
// Sets the options the flags give; flags not given leave `options` (e.g. from the environment) as they are.
void apply_comm_security_flags(const comm_security_flags& flags, comm::group_options& options);
// The MLXD_CLUSTER_TOKEN / MLXD_TLS_* variables that hand the given flags to launched ranks.
std::vector<std::pair<std::string, std::string>> comm_security_env(const comm_security_flags& flags);

}  // namespace mlxd::app
