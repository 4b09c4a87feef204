#include "run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace mlxd::rlhf::detail {
namespace {

using clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct fd {
  int value = -1;
  fd() = default;
  explicit fd(int v) : value(v) {}
  fd(const fd&) = delete;
  fd& operator=(const fd&) = delete;
  ~fd() { close(); }
  void close() {
    if (value >= 0) ::close(value);
    value = -1;
  }
};

struct pipe_pair {
  fd read, write;
  pipe_pair() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) fail("[run_command] pipe");
    read.value = p[0];
    write.value = p[1];
  }
};

// Blocks SIGPIPE in this thread while alive; a SIGPIPE our writes raised is consumed before unblocking.
struct sigpipe_blocker {
  sigset_t pipe_set, old;
  sigpipe_blocker() {
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  }
  ~sigpipe_blocker() {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
};

// Kills the process group and reaps the child unless it was reaped already.
struct child_guard {
  pid_t pid = -1;
  ~child_guard() {
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  }
};

}  // namespace

command_result run_command(const std::vector<std::string>& argv, const std::string& input, double timeout_s,
                           size_t max_output) {
  if (argv.empty()) throw std::invalid_argument("[run_command] no command");
  const auto deadline =
      clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s));
  const sigpipe_blocker blocker;
  pipe_pair in, out, err;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.read.value, 0);
  posix_spawn_file_actions_adddup2(&actions, out.write.value, 1);
  posix_spawn_file_actions_adddup2(&actions, err.write.value, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, pipe_default;
  sigemptyset(&none);
  sigemptyset(&pipe_default);
  sigaddset(&pipe_default, SIGPIPE);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe_default);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  child_guard child;
  const int rc = posix_spawnp(&child.pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    child.pid = -1;
    errno = rc;
    fail("cannot run " + argv[0]);
  }
  in.read.close();
  out.write.close();
  err.write.close();
  for (int f : {in.write.value, out.read.value, err.read.value})
    ::fcntl(f, F_SETFL, ::fcntl(f, F_GETFL) | O_NONBLOCK);

  command_result r;
  size_t written = 0;
  if (input.empty()) in.write.close();
  auto remaining_ms = [&] {
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count()));
  };
  while (out.read.value >= 0 || err.read.value >= 0) {
    pollfd fds[3] = {{in.write.value, POLLOUT, 0}, {out.read.value, POLLIN, 0}, {err.read.value, POLLIN, 0}};
    const int ms = remaining_ms();
    if (ms == 0) {
      r.timed_out = true;
      return r;  // the guard kills and reaps
    }
    if (::poll(fds, 3, ms) < 0 && errno != EINTR) fail("[run_command] poll");
    if (fds[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
      const ssize_t n = ::write(in.write.value, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) in.write.close();
    }
    char buffer[65536];
    for (auto [which, target] : {std::pair{1, &r.out}, std::pair{2, &r.err_tail}}) {
      fd& f = which == 1 ? out.read : err.read;
      if (!(fds[which].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      const ssize_t n = ::read(f.value, buffer, sizeof buffer);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        f.close();
        continue;
      }
      if (n < 0) continue;
      target->append(buffer, static_cast<size_t>(n));
      if (which == 2 && r.err_tail.size() > 2000) r.err_tail.erase(0, r.err_tail.size() - 2000);
      if (which == 1 && r.out.size() > max_output) {
        throw std::runtime_error(argv[0] + " printed more than " + std::to_string(max_output) + " bytes");
      }
    }
  }
  in.write.close();
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(child.pid, &status, WNOHANG);
    if (done == child.pid) break;
    if (done < 0 && errno != EINTR) fail("[run_command] waitpid");
    if (remaining_ms() == 0) {
      r.timed_out = true;
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  child.pid = -1;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

}  // namespace mlxd::rlhf::detail
