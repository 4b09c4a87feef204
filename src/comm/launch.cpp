#include "mlxd/comm/launch.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>

namespace mlxd::comm {
namespace {

// Binds a TCP socket to 127.0.0.1:port (0: any) and releases it; the port bound, or -1.
int bind_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof a;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  const int saved = errno;
  close(fd);
  errno = saved;
  return ok ? ntohs(a.sin_port) : -1;
}

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int sig) {
  g_signal = sig;
}

struct child {
  pid_t pid = -1;
  int out = -1, err = -1;  // read ends; -1 once closed
  std::string out_buf, err_buf;
  bool exited = false;
  int status = 0;
};

void emit(const std::string& prefix, std::string& buf, FILE* to, bool flush_all) {
  size_t start = 0;
  for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
    std::fprintf(to, "%s%.*s\n", prefix.c_str(), static_cast<int>(nl - start), buf.data() + start);
  buf.erase(0, start);
  if (flush_all && !buf.empty()) {
    std::fprintf(to, "%s%s\n", prefix.c_str(), buf.c_str());
    buf.clear();
  }
  std::fflush(to);
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// Says which rank ended the run and how, before the others are stopped (their own messages may not say).
void describe_failure(size_t rank, int status, size_t n_ranks) {
  const std::string how = WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                              : "exited with status " + std::to_string(exit_code(status));
  if (n_ranks > 1)
    std::fprintf(stderr, "mlxd launch: rank %zu %s; ending the other ranks\n", rank, how.c_str());
  else
    std::fprintf(stderr, "mlxd launch: rank %zu %s\n", rank, how.c_str());
}

}  // namespace

int pick_free_port() {
  // Below the kernel's ephemeral range (32768-60999 by default) no outgoing connection and no other bind to
  // port 0 can take the port between this check and the master's bind; a port handed out by binding 0 was
  // sometimes taken in that gap under a parallel test run, and the ranks then waited out their connect
  // timeout for a master that could not listen.
  int ephemeral_low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
  constexpr int lowest = 10000;
  if (ephemeral_low - lowest >= 1000) {
    std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(getpid()));
    for (int attempt = 0; attempt < 200; ++attempt) {
      const int port = lowest + static_cast<int>(rng() % static_cast<unsigned>(ephemeral_low - lowest));
      if (bind_loopback(port) == port) return port;
    }
  }
  const int port = bind_loopback(0);
  if (port < 0) throw std::system_error(errno, std::generic_category(), "launch: cannot find a free port");
  return port;
}

int launch_local(const std::vector<std::string>& command, const launch_options& o) {
  if (command.empty()) throw std::invalid_argument("[launch] no command to run");
  if (o.n_ranks < 1) throw std::invalid_argument("[launch] -n must be at least 1");
  const int port = o.master_port > 0 ? o.master_port : pick_free_port();
  std::vector<child> children(static_cast<size_t>(o.n_ranks));
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  g_signal = 0;

  for (int r = 0; r < o.n_ranks; ++r) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "launch: pipe");
    const pid_t pid = fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "launch: fork");
    if (pid == 0) {
      setpgid(0, 0);  // its own process group, so ending a rank ends what it started too
      dup2(out[1], 1);
      dup2(err[1], 2);
      setenv("MLXD_RANK", std::to_string(r).c_str(), 1);
      setenv("MLXD_LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("MLXD_WORLD_SIZE", std::to_string(o.n_ranks).c_str(), 1);
      setenv("MLXD_MASTER_ADDR", "127.0.0.1", 1);
      setenv("MLXD_MASTER_PORT", std::to_string(port).c_str(), 1);
      for (const auto& [name, value] : o.env) setenv(name.c_str(), value.c_str(), 1);
      std::vector<char*> argv;
      for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      std::fprintf(stderr, "mlxd launch: cannot run %s: %s\n", argv[0], std::strerror(errno));
      _exit(127);
    }
    setpgid(pid, pid);
    close(out[1]);
    close(err[1]);
    children[r] = {pid, out[0], err[0], "", "", false, 0};
  }

  int first_failure = 0;
  auto kill_all = [&](int sig) {
    for (auto& c : children) kill(-c.pid, sig);
  };
  auto failed_at = std::chrono::steady_clock::time_point::max();
  bool killed = false;
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::pair<int, bool>> who;  // rank, is stderr
    for (int r = 0; r < o.n_ranks; ++r) {
      if (children[r].out >= 0) fds.push_back({children[r].out, POLLIN, 0}), who.emplace_back(r, false);
      if (children[r].err >= 0) fds.push_back({children[r].err, POLLIN, 0}), who.emplace_back(r, true);
    }
    if (!fds.empty()) poll(fds.data(), fds.size(), 100);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      auto& c = children[who[i].first];
      const bool is_err = who[i].second;
      char buf[65536];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      std::string& text = is_err ? c.err_buf : c.out_buf;
      const bool drop = !is_err && o.only_rank0_stdout && who[i].first != 0;
      const std::string prefix = o.prefix ? "[rank " + std::to_string(who[i].first) + "] " : "";
      if (n > 0) {
        if (!drop) text.append(buf, static_cast<size_t>(n));
        emit(prefix, text, is_err ? stderr : stdout, false);
      } else {
        emit(prefix, text, is_err ? stderr : stdout, true);
        close(fds[i].fd);
        (is_err ? c.err : c.out) = -1;
      }
    }
    for (size_t rank = 0; rank < children.size(); ++rank) {
      child& c = children[rank];
      if (c.exited) continue;
      if (waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
        c.exited = true;
        if (exit_code(c.status) != 0 && first_failure == 0) {
          first_failure = exit_code(c.status);
          describe_failure(rank, c.status, children.size());
          failed_at = std::chrono::steady_clock::now();
          kill_all(SIGTERM);
        }
      }
    }
    if (g_signal != 0 && first_failure == 0) {
      first_failure = 128 + g_signal;
      failed_at = std::chrono::steady_clock::now();
      kill_all(g_signal);
    }
    if (!killed && std::chrono::steady_clock::now() - failed_at > std::chrono::milliseconds(o.grace_ms)) {
      kill_all(SIGKILL);
      killed = true;
    }
    bool done = true;
    for (auto& c : children) done = done && c.exited && c.out < 0 && c.err < 0;
    if (done) break;
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return first_failure;
}

}  // namespace mlxd::comm
