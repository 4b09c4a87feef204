// Runs a program with bytes on its stdin and collects its stdout and stderr, with a deadline: the plumbing of
// the command reward.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace mlxd::rlhf::detail {

struct command_result {
  int exit_code = -1;      // the exit status when it exited, else -1
  int signal = 0;          // the signal that ended it, else 0
  bool timed_out = false;  // it outran the deadline and its process group was killed
  std::string out;         // all of stdout (up to max_output bytes)
  std::string err_tail;    // the last 2000 bytes of stderr
};

// Starts argv (argv[0] looked up in PATH, no shell) in a new process group, writes `input` to its stdin and
// closes it, reads stdout and stderr until both close, and waits for it to exit, all within timeout_s. On
// the deadline, or when stdout passes max_output bytes, kills the process group and reaps the process.
// SIGPIPE from a program that stops reading is blocked in the calling thread, not delivered. Throws
// std::runtime_error naming argv[0] when it cannot be started or max_output is passed.
command_result run_command(const std::vector<std::string>& argv, const std::string& input, double timeout_s,
                           size_t max_output);

}  // namespace mlxd::rlhf::detail
