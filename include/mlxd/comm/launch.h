// Starting the ranks of a job as local processes, the way `mlxd launch -n N -- CMD...` does.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace mlxd::comm {

struct launch_options {
  int n_ranks = 1;
  int master_port = 0;             // 0: a free port on 127.0.0.1 chosen now
  bool prefix = true;              // prefix every output line with "[rank i] "
  bool only_rank0_stdout = false;  // drop the standard output of ranks above 0 (their stderr still shows)
  int grace_ms = 2000;             // after a failure, how long the others get between SIGTERM and SIGKILL
  // More variables for every rank's environment (e.g. MLXD_CLUSTER_TOKEN), set after the launcher's own.
  std::vector<std::pair<std::string, std::string>> env;
};

// Runs `command` (argv, looked up in PATH) as n_ranks processes with MLXD_RANK, MLXD_WORLD_SIZE,
// MLXD_MASTER_ADDR=127.0.0.1, MLXD_MASTER_PORT and MLXD_LOCAL_RANK set, forwarding their output line by
// line. When one exits unsuccessfully, the others are ended (SIGTERM, then SIGKILL). Returns 0 when all
// succeed, else the exit status of the first that failed (128 + signal for a signal). SIGINT and SIGTERM
// sent to the launcher are passed on. Throws std::invalid_argument for an empty command or n_ranks < 1.
int launch_local(const std::vector<std::string>& command, const launch_options& options);

// A TCP port on 127.0.0.1 that was free when asked, chosen below the kernel's ephemeral port range when
// there is room, so that no outgoing connection takes it before it is bound.
int pick_free_port();

}  // namespace mlxd::comm
