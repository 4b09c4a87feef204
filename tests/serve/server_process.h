// A real `mlxd serve` process for the tests, on a port it picks itself, serving a tiny model made by
// `mlxd init` with the tiny byte-level tokenizer of tests/apps/data; killed when the handle goes.
#pragma once

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mlxd::serve::testing {

// A folder for this test process, removed at exit: the model made once by `mlxd init`.
inline const std::filesystem::path& model_dir() {
  // Never destroyed, so the exit handler that removes the folder can still read it.
  static const std::filesystem::path* dir = [] {
    const auto root =
        std::filesystem::temp_directory_path() /
        ("mlxd_serve_test_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
    const auto model = root / "tiny";
    const std::string cmd = std::string(MLXD_BIN) + " init --config " + MLXD_SERVE_DATA +
                            "/tiny_serve.json --seed 7 --out " + model.string() + " > /dev/null";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("mlxd init failed: " + cmd);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      std::filesystem::copy_file(std::filesystem::path(MLXD_TINY_TOKENIZER) / f, model / f);
    return new std::filesystem::path(model);
  }();
  static const bool cleanup = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(model_dir().parent_path(), ec);
    });
    return true;
  }();
  (void)cleanup;
  return *dir;
}

class server_process {
 public:
  // Starts `mlxd serve --model <model> --port 0` with `extra` flags and waits until it listens and, with
  // `wait_healthy`, until /health answers 200. An empty `model` leaves --model out; a non-empty
  // `default_model` is then set as MLXD_DEFAULT_MODEL in the server's environment.
  explicit server_process(std::vector<std::string> extra = {},
                          const std::filesystem::path& model = model_dir(), bool wait_healthy = true,
                          const std::string& default_model = {}) {
    const auto port_file = model_dir().parent_path() / ("port" + std::to_string(counter()++));
    std::vector<std::string> args = {MLXD_BIN, "--threads", "1",           "serve",
                                     "--port", "0",         "--port-file", port_file.string()};
    if (!model.empty()) args.insert(args.end(), {"--model", model.string()});
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      if (!default_model.empty()) setenv("MLXD_DEFAULT_MODEL", default_model.c_str(), 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(port_file)) {
      if (!alive()) throw std::runtime_error("mlxd serve exited at start");
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("mlxd serve did not start");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::ifstream(port_file) >> port_;
    httplib::Client c = client();
    while (wait_healthy) {
      auto r = c.Get("/health");
      if (r && r->status == 200) break;
      if (!alive() || std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("mlxd serve never became healthy");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~server_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }
  // Whether the process is still running.
  bool alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  // Stops it (SIGSTOP) and returns once it is stopped: it does nothing, accepts nothing, until resume().
  void pause() {
    ::kill(pid_, SIGSTOP);
    int status = 0;
    waitpid(pid_, &status, WUNTRACED);
  }
  void resume() { ::kill(pid_, SIGCONT); }
  // Stops it with SIGTERM; returns its exit status.
  int terminate() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  pid_t pid_ = -1;
  int port_ = 0;
};

// A POST with a JSON body; the status and the parsed body (null when it is not JSON).
struct reply {
  int status = 0;
  nlohmann::json body;
  std::string raw;
  std::string content_type;
};
inline reply post(httplib::Client& c, const std::string& path, const std::string& body,
                  const httplib::Headers& headers = {}) {
  auto r = c.Post(path.c_str(), headers, body, "application/json");
  if (!r) throw std::runtime_error("no reply from POST " + path + ": " + httplib::to_string(r.error()));
  reply out{r->status, nlohmann::json::parse(r->body, nullptr, false), r->body,
            r->get_header_value("Content-Type")};
  if (out.body.is_discarded()) out.body = nullptr;
  return out;
}
inline reply get(httplib::Client& c, const std::string& path, const httplib::Headers& headers = {}) {
  auto r = c.Get(path.c_str(), headers);
  if (!r) throw std::runtime_error("no reply from GET " + path);
  reply out{r->status, nlohmann::json::parse(r->body, nullptr, false), r->body,
            r->get_header_value("Content-Type")};
  if (out.body.is_discarded()) out.body = nullptr;
  return out;
}

// A streaming POST: the data of each SSE event ("[DONE]" included), in order. `stop_after`: close the
// connection after that many events (0: read to the end).
inline std::vector<std::string> post_stream(httplib::Client& c, const std::string& path,
                                            const std::string& body, size_t stop_after = 0,
                                            int* status = nullptr) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "application/json");  // as the openai client sends even when streaming
  std::string buffer;
  std::vector<std::string> events;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    buffer.append(data, len);
    for (size_t cut; (cut = buffer.find("\n\n")) != std::string::npos;) {
      const std::string event = buffer.substr(0, cut);
      buffer.erase(0, cut + 2);
      if (event.rfind("data: ", 0) == 0) events.push_back(event.substr(6));
    }
    return stop_after == 0 || events.size() < stop_after;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  c.send(req, res, err);
  if (status) *status = res.status;
  // An error answered before the stream began (a JSON body, not events), or no answer at all: returned as the
  // only event, so that collect() reads its message.
  if (events.empty()) {
    const std::string& answer = buffer.empty() ? res.body : buffer;
    if (answer.rfind("{", 0) == 0)
      events.push_back(answer);
    else if (err != httplib::Error::Success)
      events.push_back(
          nlohmann::json{{"error", {{"message", "no answer: " + httplib::to_string(err)}}}}.dump());
  }
  return events;
}

// A figure of /metrics, e.g. "mlxd_running_sequences"; -1 when it is missing.
inline double metric(server_process& server, const std::string& line_start) {
  auto c = server.client();
  const std::string text = get(c, "/metrics").raw;
  const size_t at = text.find("\n" + line_start + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + line_start.size() + 2));
}

}  // namespace mlxd::serve::testing
