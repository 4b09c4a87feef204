// `mlxd launch`: the ranks of a job as local processes.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "comm_flags.h"
#include "commands.h"
#include "mlxd/comm/launch.h"

namespace mlxd::app {

void add_launch_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("launch", "run N local ranks of a command with the MLXD_* rendezvous environment");
  auto opts = std::make_shared<comm::launch_options>();
  auto security = std::make_shared<comm_security_flags>();
  cmd->add_option("-n,--ranks", opts->n_ranks, "number of processes")->required()->check(CLI::Range(1, 1024));
  cmd->add_option("--port", opts->master_port, "rank 0's port (default: a free one)")
      ->check(CLI::Range(0, 65535));
  cmd->add_flag("!--no-prefix", opts->prefix, "do not prefix output lines with [rank i]");
  add_comm_security_flags(cmd, *security);
  cmd->prefix_command();  // everything from the command on is the command's own
  cmd->fallthrough(false);
  cmd->footer(
      "Usage: mlxd launch -n N [--port P] [--no-prefix] [--cluster-token T] [--tls-cert C --tls-key K] "
      "[--tls-ca A] [--] CMD [ARGS...]\nThe security flags reach the ranks as MLXD_CLUSTER_TOKEN and "
      "MLXD_TLS_*.");
  cmd->callback([opts, security, cmd] {
    std::vector<std::string> command = cmd->remaining();
    if (command.empty()) throw CLI::ValidationError("launch", "give the command to run (after --)");
    opts->env = comm_security_env(*security);
    const int status = comm::launch_local(command, *opts);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

std::vector<std::string> command_line(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto launch = std::find(args.begin(), args.end(), "launch");
  if (launch != args.end()) {
    auto dashes = std::find(launch, args.end(), "--");
    if (dashes != args.end()) args.erase(dashes);
  }
  std::reverse(args.begin(), args.end());
  return args;
}

}  // namespace mlxd::app
