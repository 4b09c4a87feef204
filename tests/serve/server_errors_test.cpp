// `mlxd serve` under misuse and load: every error has OpenAI's JSON and the right status, hostile bodies
// leave the server answering, the API key guards all but /health, concurrent streams get the text they get
// alone, and a client that goes away frees its sequence.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <regex>

#include <sys/stat.h>

#include "server_process.h"

namespace mlxd::serve::testing {
namespace {

using json = nlohmann::json;

const std::string hello = R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})";

void expect_error(const reply& r, int status, const std::string& param = {}, const std::string& code = {}) {
  EXPECT_EQ(r.status, status) << r.raw;
  ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.raw;
  const json& e = r.body["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << r.raw;
  EXPECT_TRUE(e["type"].is_string()) << r.raw;
  EXPECT_TRUE(e.contains("param") && e.contains("code")) << r.raw;
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << r.raw;
  }
  if (!code.empty()) {
    EXPECT_EQ(e["code"], code) << r.raw;
  }
}

// The server still serves a chat completion.
void expect_alive(server_process& server) {
  ASSERT_TRUE(server.alive());
  auto c = server.client();
  EXPECT_EQ(post(c, "/v1/chat/completions", hello).status, 200);
}

TEST(ServerErrors, StatusesAndErrorJson) {
  server_process server({"--max-body-mb", "12"});
  auto c = server.client();
  const std::string chat = "/v1/chat/completions";
  expect_error(post(c, chat, "{not json"), 400);
  expect_error(post(c, chat, R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})"),
               400, "temperature");
  expect_error(post(c, chat, R"({"messages": [{"role": "user", "content": "x"}], "temperature": 9})"), 400,
               "temperature");
  expect_error(post(c, chat, R"({"messages": [{"role": "robot", "content": "x"}]})"), 400,
               "messages[0].role");
  expect_error(post(c, chat, R"({"messages": []})"), 400, "messages");
  expect_error(post(c, chat, R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 4000})"), 400,
               "messages", "context_length_exceeded");
  expect_error(post(c, "/v1/completions", R"({"prompt": [1, 99999]})"), 400, "prompt");
  expect_error(post(c, chat, R"({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})"), 404,
               "model", "model_not_found");
  expect_error(get(c, "/v1/nothing"), 404);
  expect_error(post(c, "/nothing", "{}"), 404);
  expect_error(get(c, chat), 405);
  expect_error(post(c, "/v1/models", "{}"), 405);
  auto del = c.Delete("/v1/completions");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  expect_error(post(c, chat, std::string(13u << 20, ' ')), 413);
  expect_alive(server);
}

TEST(ServerErrors, HostileBodiesLeaveTheServerAnswering) {
  server_process server;
  auto c = server.client();
  const std::string chat = "/v1/chat/completions";
  expect_error(post(c, chat, std::string(1 << 20, '[')), 400);
  expect_error(post(c, chat, "{\"messages\": " + std::string(5000, '[') + std::string(5000, ']') + "}"), 400);
  expect_error(post(c, chat, R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e999999})"),
               400);
  expect_error(
      post(c, chat,
           R"({"messages": [{"role": "user", "content": "x"}], "n": 123456789012345678901234567890})"),
      400);
  expect_error(post(c, chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"\xc3\x28\xff\"}]}"), 400);
  expect_error(post(c, chat, std::string("\x00\x01\x02{}", 5)), 400);
  // 10 MB of text in one message: it parses and tokenizes, then is longer than the context.
  const std::string huge =
      R"({"messages": [{"role": "user", "content": ")" + std::string(10u << 20, 'a') + R"("}]})";
  expect_error(post(c, chat, huge), 400, "messages", "context_length_exceeded");
  expect_error(post(c, "/tokenize", "{\"prompt\": \"" + std::string(2001, '\\') + "\"}"), 400);
  expect_alive(server);
}

TEST(ServerErrors, ApiKeyGuardsAllButHealthAndThePage) {
  const auto key_file = model_dir().parent_path() / "key.txt";
  std::ofstream(key_file) << "s3cret\n";
  for (const auto& flags : {std::vector<std::string>{"--api-key", "s3cret"},
                            std::vector<std::string>{"--api-key-file", key_file.string()}}) {
    server_process server(flags);
    auto c = server.client();
    EXPECT_EQ(get(c, "/health").status, 200);
    EXPECT_EQ(get(c, "/").status, 200);
    expect_error(get(c, "/v1/models"), 401, {}, "invalid_api_key");
    expect_error(get(c, "/v1/models", {{"Authorization", "Bearer wrong"}}), 401, {}, "invalid_api_key");
    expect_error(post(c, "/v1/chat/completions", hello), 401);
    expect_error(get(c, "/metrics"), 401);
    EXPECT_EQ(get(c, "/v1/models", {{"Authorization", "Bearer s3cret"}}).status, 200);
    EXPECT_EQ(post(c, "/v1/chat/completions", hello, {{"Authorization", "Bearer s3cret"}}).status, 200);
  }
}

TEST(ServerErrors, CorsWhenAsked) {
  server_process server({"--cors", "*"});
  auto c = server.client();
  auto pre = c.Options("/v1/chat/completions");
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "*");
  auto r = c.Get("/v1/models");
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "*");
  server_process plain;
  auto p = plain.client();
  EXPECT_FALSE(p.Get("/v1/models")->has_header("Access-Control-Allow-Origin"));
}

TEST(ServerErrors, FullQueueIs429) {
  server_process server({"--max-running", "1", "--max-queued", "2"});
  auto c = server.client();
  const std::string body = R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "n": 4})";
  const reply r = post(c, "/v1/chat/completions", body);
  expect_error(r, 429);
  EXPECT_EQ(r.body["error"]["type"], "rate_limit_error");
  EXPECT_EQ(post(c, "/v1/chat/completions",
                 R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "n": 3})")
                .status,
            200);
}

// The issue's 16 clients streaming at once, each with its own seed and length.
TEST(ServerErrors, ConcurrentStreamsGetTheTextTheyGetAlone) {
  server_process server;
  const int n = 16;
  auto body = [](int i) {
    return json{{"messages", {{{"role", "user"}, {"content", "story " + std::to_string(i)}}}},
                {"max_tokens", 30 + 5 * i},
                {"seed", 1000 + i},
                {"temperature", 0.8},
                {"stream", true}}
        .dump();
  };
  auto text_of = [](const std::vector<std::string>& events) {
    std::string text;
    for (const auto& e : events)
      if (e != "[DONE]")
        for (const auto& ch : json::parse(e)["choices"])
          if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
    return text;
  };
  std::vector<std::string> alone;
  for (int i = 0; i < n; ++i) {
    auto c = server.client();
    alone.push_back(text_of(post_stream(c, "/v1/chat/completions", body(i))));
  }
  std::vector<std::future<std::string>> together;
  for (int i = 0; i < n; ++i)
    together.push_back(std::async(std::launch::async, [&, i] {
      auto c = server.client();
      return text_of(post_stream(c, "/v1/chat/completions", body(i)));
    }));
  for (int i = 0; i < n; ++i) EXPECT_EQ(together[i].get(), alone[i]) << "client " << i;
}

TEST(ServerErrors, ClientThatGoesAwayFreesItsSequence) {
  server_process server;
  auto c = server.client();
  const std::string body =
      R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2000, "stream": true})";
  const auto events = post_stream(c, "/v1/chat/completions", body, 2);
  EXPECT_GE(events.size(), 2u);  // the first write may carry several events
  // Up to 10 s: under a loaded ctest -j2 the server notices the closed socket at its next write, late.
  for (int i = 0; i < 2000 && metric(server, "mlxd_running_sequences") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(metric(server, "mlxd_running_sequences"), 0);
  EXPECT_EQ(metric(server, "mlxd_kv_cache_positions"), 0);
  EXPECT_LT(metric(server, "mlxd_generation_tokens_total"), 2000);
  expect_alive(server);
}

TEST(ServerErrors, MetricsCountRequestsAndTokens) {
  server_process server;
  auto c = server.client();
  ASSERT_EQ(post(c, "/v1/completions", R"({"prompt": "hello", "max_tokens": 5})").status, 200);
  const std::string text = get(c, "/metrics").raw;
  EXPECT_NE(text.find("mlxd_http_requests_total{path=\"/v1/completions\",code=\"200\"} 1"), std::string::npos)
      << text;
  EXPECT_EQ(metric(server, "mlxd_prompt_tokens_total"), 1);
  EXPECT_GE(metric(server, "mlxd_generation_tokens_total"), 1);
  EXPECT_EQ(metric(server, "mlxd_queue_depth"), 0);
  EXPECT_EQ(metric(server, "mlxd_time_to_first_token_seconds_count"), 1);
  EXPECT_NE(text.find("mlxd_time_per_output_token_seconds_bucket{le=\"+Inf\"}"), std::string::npos);
}

// The model's config.json is a named pipe, so loading waits until the test writes it.
TEST(ServerErrors, Answers503WhileTheModelLoads) {
  const auto dir = model_dir().parent_path() / "slow";
  std::filesystem::create_directories(dir);
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(model_dir() / f, dir / f, std::filesystem::copy_options::overwrite_existing);
  ASSERT_EQ(mkfifo((dir / "config.json").c_str(), 0600), 0);
  server_process server({}, dir, false);
  auto c = server.client();
  const reply health = get(c, "/health");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.body, json({{"status", "loading"}}));
  expect_error(get(c, "/v1/models"), 503, {}, "model_loading");
  expect_error(post(c, "/v1/chat/completions", hello), 503, {}, "model_loading");
  std::ifstream config(model_dir() / "config.json");
  std::ofstream(dir / "config.json") << config.rdbuf();
  for (int i = 0; i < 1000 && get(c, "/health").status != 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  expect_alive(server);
}

TEST(ServerErrors, SigtermStopsCleanly) {
  server_process server;
  EXPECT_EQ(server.terminate(), 0);
}

}  // namespace
}  // namespace mlxd::serve::testing
