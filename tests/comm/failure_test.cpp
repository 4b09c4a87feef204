// Real processes: a rank killed (or frozen) in the middle of an all-reduce; the others must fail within the
// deadline with an error that names it, never hang.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "mlxd/comm/launch.h"

namespace {

using clock_type = std::chrono::steady_clock;

struct proc {
  pid_t pid = -1;
  int out = -1, err = -1;
  std::string out_text, err_text;
  int status = -1;
};

proc spawn_rank(int rank, int world, int port) {
  int out[2], err[2];
  if (pipe(out) != 0 || pipe(err) != 0) throw std::runtime_error("pipe");
  proc p;
  p.pid = fork();
  if (p.pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    setenv("MLXD_RANK", std::to_string(rank).c_str(), 1);
    setenv("MLXD_WORLD_SIZE", std::to_string(world).c_str(), 1);
    setenv("MLXD_MASTER_ADDR", "127.0.0.1", 1);
    setenv("MLXD_MASTER_PORT", std::to_string(port).c_str(), 1);
    execl(MLXD_COMM_WORKER, MLXD_COMM_WORKER, "loop", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  p.out = out[0];
  p.err = err[0];
  fcntl(p.out, F_SETFL, O_NONBLOCK);
  fcntl(p.err, F_SETFL, O_NONBLOCK);
  return p;
}

void drain(proc& p) {
  char buf[4096];
  for (ssize_t n; p.out >= 0 && (n = read(p.out, buf, sizeof buf)) > 0;)
    p.out_text.append(buf, static_cast<size_t>(n));
  for (ssize_t n; p.err >= 0 && (n = read(p.err, buf, sizeof buf)) > 0;)
    p.err_text.append(buf, static_cast<size_t>(n));
}

// Starts 3 ranks, waits until all loop, stops rank 1 with `sig`, and checks that ranks 0 and 2 fail naming
// rank 1 within `limit`.
void check_peer_loss(int sig, std::chrono::milliseconds limit) {
  const int world = 3, port = mlxd::comm::pick_free_port();
  std::vector<proc> ranks;
  for (int r = 0; r < world; ++r) ranks.push_back(spawn_rank(r, world, port));
  const auto start = clock_type::now();
  for (bool all = false; !all;) {
    all = true;
    for (auto& p : ranks) {
      drain(p);
      all = all && p.out_text.find("looping") != std::string::npos;
    }
    ASSERT_LT(clock_type::now() - start, std::chrono::seconds(30)) << "the ranks did not start";
    usleep(10000);
  }
  usleep(200000);  // well inside the loop of all-reduces
  kill(ranks[1].pid, sig);
  const auto stopped = clock_type::now();
  for (int r : {0, 2}) {
    auto& p = ranks[r];
    while (waitpid(p.pid, &p.status, WNOHANG) == 0) {
      drain(p);
      if (clock_type::now() - stopped > limit + std::chrono::seconds(10)) {
        kill(p.pid, SIGKILL);
        waitpid(p.pid, &p.status, 0);
        break;
      }
      usleep(5000);
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - stopped);
    drain(p);
    EXPECT_LT(took, limit) << "rank " << r << " noticed after " << took.count() << " ms";
    EXPECT_TRUE(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 3) << "rank " << r << ": " << p.err_text;
    EXPECT_NE(p.err_text.find("rank 1 ("), std::string::npos) << "rank " << r << ": " << p.err_text;
    std::printf("rank %d after %lld ms: %s", r, static_cast<long long>(took.count()), p.err_text.c_str());
  }
  kill(ranks[1].pid, SIGKILL);
  waitpid(ranks[1].pid, nullptr, 0);
  for (auto& p : ranks) close(p.out), close(p.err);
}

TEST(comm_failure, a_killed_rank_is_named_by_the_others_at_once) {
  check_peer_loss(SIGKILL, std::chrono::seconds(3));
}

// A frozen process keeps its sockets open: only keepalive (1 s pings, 2 s timeout) can tell.
TEST(comm_failure, a_frozen_rank_is_named_after_the_keepalive_timeout) {
  check_peer_loss(SIGSTOP, std::chrono::seconds(6));
}

}  // namespace
