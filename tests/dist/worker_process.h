// Real `mlxd worker` processes for the tests: each listens on 127.0.0.1 on a port it picks itself (written
// to a port file), and is killed when the handle goes.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mlxd::dist::testing {

class worker_process {
 public:
  // Starts `mlxd worker` with `extra` flags; `port` 0 picks a free one. Waits until it listens. With a
  // `log`, the worker's output goes to that file instead of the test's.
  explicit worker_process(const std::filesystem::path& dir, std::vector<std::string> extra = {}, int port = 0,
                          const std::filesystem::path& log = {}) {
    static int counter = 0;
    const auto port_file = dir / ("worker" + std::to_string(counter++) + ".port");
    std::filesystem::remove(port_file);
    std::vector<std::string> args = {MLXD_BIN,      "worker",          "--host",
                                     "127.0.0.1",   "--port",          std::to_string(port),
                                     "--port-file", port_file.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      setenv("MLXD_NUM_THREADS", "1", 1);
      if (!log.empty()) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
          dup2(fd, 1);
          dup2(fd, 2);
          ::close(fd);
        }
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(port_file)) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("mlxd worker exited at start");
      }
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("mlxd worker did not start");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::ifstream(port_file) >> port_;
    address_ = "127.0.0.1:" + std::to_string(port_);
  }
  ~worker_process() { kill_now(); }
  worker_process(const worker_process&) = delete;
  worker_process& operator=(const worker_process&) = delete;

  void kill_now(int sig = SIGKILL) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (sig == SIGKILL) {
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // Waits up to `limit` for the worker to exit by itself: its exit code, or -1 when it is still running
  // (or died of a signal).
  int wait_exit(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (pid_ > 0) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  const std::string& address() const { return address_; }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string address_;
};

}  // namespace mlxd::dist::testing
