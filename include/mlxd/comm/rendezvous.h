// Where ranks learn who they are: an explicit peer list, or the environment that launchers set.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mlxd/comm/options.h"

namespace mlxd::comm {

// Reads MLXD_RANK, MLXD_WORLD_SIZE, MLXD_MASTER_ADDR, MLXD_MASTER_PORT, else Slurm's SLURM_PROCID,
// SLURM_NTASKS and the first host of SLURM_JOB_NODELIST (MLXD_MASTER_PORT still needed, default 8101);
// also MLXD_PEERS (comma-separated host:port), MLXD_CLUSTER_TOKEN, MLXD_COMM_TIMEOUT_MS and MLXD_TLS_CERT,
// MLXD_TLS_KEY, MLXD_TLS_CA (PEM paths). `env` stands in
// for the process environment (tests); std::nullopt reads the real one. Returns nullopt when neither set
// of variables is present. Throws std::invalid_argument for malformed or inconsistent values.
std::optional<group_options> options_from_env(const std::map<std::string, std::string>* env = nullptr);
// "a:1,b:2" -> {"a:1", "b:2"}; each entry must be host:port with a port in 1..65535.
std::vector<std::string> parse_peer_list(const std::string& list);
// The first host of a Slurm node list: "gpu[01-04,7],cpu1" -> "gpu01".
std::string first_slurm_host(const std::string& nodelist);
// Splits "host:port" ("[v6::addr]:port" too); throws std::invalid_argument when malformed.
std::pair<std::string, int> split_host_port(const std::string& address);
// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

}  // namespace mlxd::comm
