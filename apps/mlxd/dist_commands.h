// Flags shared by the commands that reach worker nodes (`generate --workers`, `cluster status`).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "mlxd/dist/coordinator.h"

namespace mlxd::app {

struct cluster_flags {
  std::string workers;  // host:port,...
  std::string layers, coordinator_layers;
  bool ship_weights = false;
  int ring_tokens = dist::coordinator_options{}.ring_tokens;
  bool local_links = dist::coordinator_options{}.local_links;
  dist::cluster_access access;
};

// --workers, --cluster-token (default MLXD_CLUSTER_TOKEN), --tls-cert/key/ca, and
// with `planning` also --layers, --coordinator-layers, --ship-weights and --ring-tokens.
void add_cluster_flags(CLI::App* cmd, cluster_flags& f, bool planning);
// The access and coordinator options the flags describe; throws std::invalid_argument for bad values.
dist::cluster_access cluster_access_of(const cluster_flags& f);
dist::coordinator_options coordinator_options_of(const cluster_flags& f);

}  // namespace mlxd::app
