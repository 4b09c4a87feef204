// `mlxd serve`'s limits: a generation that outlives --request-timeout ends with a 504 (or, when streaming, an
// error event and [DONE]) and frees its place, a client that hangs up on a non-streaming request cancels its
// generation, and a burst of connections waits for the server in its listening socket's queue.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "server_process.h"

namespace mlxd::serve::testing {
namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

// 16 choices of 2000 tokens each, the end-of-text token (262) banned: 32000 tokens, seconds of work even for
// the tiny model, so every test below ends it early.
constexpr int n_choices = 16, n_tokens = 2000;
std::string long_request(bool stream) {
  return json{{"prompt", "x"},
              {"max_tokens", n_tokens},
              {"n", n_choices},
              {"logit_bias", {{"262", -100}}},
              {"stream", stream}}
      .dump();
}

// Waits up to 5 s for the running batch to empty; true when it did.
bool batch_empties(server_process& server) {
  const auto deadline = clock_type::now() + std::chrono::seconds(5);
  while (metric(server, "mlxd_running_sequences") != 0) {
    if (clock_type::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void expect_cut_short_and_alive(server_process& server) {
  EXPECT_TRUE(batch_empties(server));
  EXPECT_EQ(metric(server, "mlxd_kv_cache_positions"), 0);
  EXPECT_LT(metric(server, "mlxd_generation_tokens_total"), n_choices * n_tokens);
  auto c = server.client();
  const reply ok = post(c, "/v1/completions", R"({"prompt": "hello", "max_tokens": 3})");
  EXPECT_EQ(ok.status, 200) << ok.raw;
}

TEST(ServerLimits, RequestTimeoutIs504AndFreesItsPlace) {
  server_process server({"--request-timeout", "0.3"});
  auto c = server.client();
  const auto start = clock_type::now();
  const reply r = post(c, "/v1/completions", long_request(false));
  const double took = std::chrono::duration<double>(clock_type::now() - start).count();
  EXPECT_EQ(r.status, 504) << r.raw;
  ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "request_timeout");
  EXPECT_EQ(r.body["error"]["type"], "server_error");
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("0.3 seconds"), std::string::npos);
  EXPECT_GE(took, 0.3);
  EXPECT_LT(took, 3.0);
  expect_cut_short_and_alive(server);
}

TEST(ServerLimits, StreamingTimeoutEndsWithAnErrorEventThenDone) {
  server_process server({"--request-timeout", "0.3"});
  auto c = server.client();
  int status = 0;
  const auto events = post_stream(c, "/v1/completions", long_request(true), 0, &status);
  EXPECT_EQ(status, 200);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  const json error = json::parse(events[events.size() - 2], nullptr, false);
  ASSERT_TRUE(error.is_object() && error.contains("error")) << events[events.size() - 2];
  EXPECT_EQ(error["error"]["code"], "request_timeout");
  expect_cut_short_and_alive(server);
}

TEST(ServerLimits, WithoutTimeoutARequestRunsToItsEnd) {
  server_process server({"--request-timeout", "0"});
  auto c = server.client();
  const reply r =
      post(c, "/v1/completions", R"({"prompt": "x", "max_tokens": 40, "logit_bias": {"262": -100}, "n": 2})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 80);
}

TEST(ServerLimits, NonStreamingClientThatHangsUpCancelsItsGeneration) {
  server_process server;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string body = long_request(false);
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
      "application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  // Hang up once the generation is under way.
  const auto deadline = clock_type::now() + std::chrono::seconds(10);
  while (metric(server, "mlxd_running_sequences") <= 0 && clock_type::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(metric(server, "mlxd_running_sequences"), n_choices);
  ::close(fd);
  expect_cut_short_and_alive(server);
}

// The connections waiting in the accept queue of the IPv4 socket listening on `port` (the rx_queue that
// /proc/net/tcp shows for a listening socket), or -1 when there is none.
int accept_queue(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues;
    fields >> slot >> local >> remote >> state >> queues;
    if (state != "0A" || std::stoi(local.substr(local.find(':') + 1), nullptr, 16) != port) continue;
    return std::stoi(queues.substr(queues.find(':') + 1), nullptr, 16);  // "tx:rx", hexadecimal
  }
  return -1;
}

// 64 clients that connect while the server does nothing (stopped) wait in its accept queue and are served
// once it goes on. With cpp-httplib's own backlog of 5 the queue held 6: the rest were left to SYN cookies,
// and one whose cookie failed was reset before its request was read.
TEST(ServerLimits, ABurstOfConnectionsWaitsInTheAcceptQueue) {
  server_process server;
  constexpr int n = 64;
  server.pause();
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    // Not blocking: beyond a full queue a connect would wait for the SYN's retransmissions.
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(server.port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int r = connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
    EXPECT_TRUE(r == 0 || errno == EINPROGRESS) << "connection " << i << ": " << std::strerror(errno);
    fds.push_back(fd);
  }
  // The kernel queues each connection as its handshake's last ACK arrives.
  int queued = 0;
  for (const auto deadline = clock_type::now() + std::chrono::seconds(5);
       queued < n && clock_type::now() < deadline; std::this_thread::sleep_for(std::chrono::milliseconds(10)))
    queued = accept_queue(server.port());
  server.resume();
  EXPECT_EQ(queued, n);
  for (const int fd : fds) close(fd);
  auto c = server.client();
  EXPECT_EQ(get(c, "/health").status, 200);
}

}  // namespace
}  // namespace mlxd::serve::testing
