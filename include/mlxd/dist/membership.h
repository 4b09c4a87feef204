// Joining a running cluster: a worker started with `mlxd worker --join` announces itself to the Cluster
// service of a coordinator (`mlxd serve --cluster-port`), which adds it to its node set and plans it in; and
// `mlxd cluster status --coordinator` asks that service who the workers are.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlxd/dist/coordinator.h"

namespace mlxd::dist {

// The coordinator refused the join (wrong cluster token, another protocol major, an address it cannot reach
// the worker at): asking again will not help.
class join_refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct join_options {
  std::string coordinator;  // host:port of the coordinator's Cluster service
  int port = 0;             // this worker's port
  // host:port the coordinator reaches this worker at; empty: the IP the coordinator sees the call come from,
  // with `port`.
  std::string advertise;
  std::string node_id;  // this worker's; the coordinator checks that the address answers as it
  std::string cluster_token;
  std::string tls_cert, tls_key, tls_ca;     // PEM files, as for the worker's calls to the next stage
  std::chrono::milliseconds timeout{10000};  // the whole call, the coordinator's Hello back included
};

struct join_result {
  std::string address;  // the worker as the coordinator names it
  bool already_member = false;
  uint32_t n_workers = 0;  // in the coordinator's node set now
};

// One Join call. Throws join_refused when the coordinator refuses, std::runtime_error when it cannot be
// reached (not started yet, gone), std::invalid_argument for bad options.
join_result join_cluster(const join_options& o);

struct cluster_members {
  std::vector<std::string> workers;  // in pipeline order: --workers, then those that joined
  std::string plan;                  // the plan in force
  uint64_t replans = 0;
};

// Asks the Cluster service at `coordinator` for its workers, with the token and TLS of `access`. Throws
// std::runtime_error naming the coordinator when the call fails.
cluster_members query_members(const std::string& coordinator, const cluster_access& access);

}  // namespace mlxd::dist
