// `mlxd serve --workers` with two real `mlxd worker` processes on 127.0.0.1: completions (whole and streamed,
// chat and text, greedy and seeded) equal those of a single-node `mlxd serve` of the same model, concurrent
// streams get what they get alone, a client that goes away or a timeout releases its sequence on the workers,
// /health and /metrics show the workers, and a worker killed mid-stream never leaves a request hanging.
#include <gtest/gtest.h>

#include <future>

#include "server_process.h"
#include "streamed_answer.h"
#include "worker_process.h"

namespace mlxd::serve::testing {
namespace {

using json = nlohmann::json;
using dist::testing::worker_process;
using clock_type = std::chrono::steady_clock;

// Two workers and a server that runs the tiny model's two layers on them.
struct cluster {
  explicit cluster(std::vector<std::string> extra = {}) {
    for (int i = 0; i < 2; ++i)
      workers.push_back(std::make_unique<worker_process>(model_dir().parent_path()));
    // One layer each, whatever speeds the workers measured (a plan might otherwise leave one out).
    extra.insert(extra.end(),
                 {"--workers", workers[0]->address() + "," + workers[1]->address(), "--layers", "0,1"});
    server = std::make_unique<server_process>(extra);
  }
  std::vector<std::unique_ptr<worker_process>> workers;
  std::unique_ptr<server_process> server;
};

json chat(const std::string& content, int max_tokens, json extra = json::object()) {
  json b = {{"model", "tiny"},
            {"messages", {{{"role", "user"}, {"content", content}}}},
            {"max_tokens", max_tokens}};
  b.update(extra);
  return b;
}

// What the answers to `body` have in common between servers (ids and times differ); logprobs apart.
json essence(const json& r) {
  json out = {{"usage", r["usage"]}, {"choices", json::array()}};
  for (const auto& c : r["choices"]) {
    json e = {{"finish_reason", c["finish_reason"]}};
    e["text"] = c.contains("message") ? c["message"]["content"] : c["text"];
    out["choices"].push_back(e);
  }
  return out;
}

// Equal, but floats (logprobs) only within 1e-4: the two servers batch their matrix products differently, so
// the same logits can differ in the last bit (the chosen tokens do not).
void expect_close(const json& a, const json& b, const std::string& path = "") {
  if (a.is_number_float() || b.is_number_float()) {
    ASSERT_TRUE(a.is_number() && b.is_number()) << path;
    EXPECT_NEAR(a.get<double>(), b.get<double>(), 1e-4) << path;
  } else if (a.is_object() && b.is_object()) {
    ASSERT_EQ(a.size(), b.size()) << path;
    for (const auto& [k, v] : a.items()) {
      ASSERT_TRUE(b.contains(k)) << path << "." << k;
      expect_close(v, b[k], path + "." + k);
    }
  } else if (a.is_array() && b.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << path;
    for (size_t i = 0; i < a.size(); ++i) expect_close(a[i], b[i], path + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_EQ(a, b) << path;
  }
}

// The bodies both tests send: greedy and seeded, chat and text, several choices, logprobs, stop strings.
std::vector<std::pair<std::string, json>> varied_requests() {
  return {
      {"/v1/chat/completions", chat("hello there", 24, {{"temperature", 0}})},
      {"/v1/chat/completions", chat("a longer question, with more words in it", 16,
                                    {{"temperature", 0}, {"logprobs", true}, {"top_logprobs", 3}})},
      {"/v1/chat/completions", chat("x", 20, {{"temperature", 0.9}, {"seed", 5}, {"n", 2}, {"top_p", 0.95}})},
      {"/v1/completions", json{{"prompt", "once upon"}, {"max_tokens", 30}, {"temperature", 0}}},
      {"/v1/completions",
       json{
           {"prompt", {"ab", "cd"}}, {"max_tokens", 12}, {"temperature", 0.8}, {"seed", 9}, {"logprobs", 2}}},
      {"/v1/completions",
       json{{"prompt", "stop"}, {"max_tokens", 40}, {"temperature", 0}, {"stop", {"e", "a"}}}},
  };
}

// The number of sequences each worker holds a KV cache for, from the server's /health.
std::vector<int> worker_sequences(server_process& s) {
  auto c = s.client();
  const reply h = get(c, "/health");
  std::vector<int> out;
  for (const auto& w : h.body["workers"]) out.push_back(w.value("sequences", -1));
  return out;
}

// Waits up to 5 s until no worker holds a sequence; true when none does.
bool workers_released(server_process& s) {
  const auto deadline = clock_type::now() + std::chrono::seconds(5);
  for (;;) {
    const std::vector<int> n = worker_sequences(s);
    if (n == std::vector<int>{0, 0}) return true;
    if (clock_type::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Waits up to 5 s for a /metrics figure to reach `value`; returns the last value read.
double metric_reaches(server_process& s, const std::string& name, double value) {
  const auto deadline = clock_type::now() + std::chrono::seconds(5);
  double v = metric(s, name);
  while (v != value && clock_type::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    v = metric(s, name);
  }
  return v;
}

// A request that would generate for long: the end-of-sequence id (262) is banned.
json long_body(bool stream, int max_tokens = 1500) {
  return json{{"prompt", "x"},
              {"max_tokens", max_tokens},
              {"temperature", 0},
              {"logit_bias", {{"262", -100}}},
              {"stream", stream}};
}

TEST(ClusterServer, CompletionsEqualOneNode) {
  server_process local;
  cluster cl;
  auto lc = local.client(), cc = cl.server->client();
  EXPECT_EQ(get(lc, "/v1/models").body["data"][0]["id"], get(cc, "/v1/models").body["data"][0]["id"]);
  for (const auto& [path, body] : varied_requests()) {
    SCOPED_TRACE(body.dump());
    const reply one = post(lc, path, body.dump()), two = post(cc, path, body.dump());
    ASSERT_EQ(one.status, 200) << one.raw;
    ASSERT_EQ(two.status, 200) << two.raw;
    EXPECT_EQ(essence(two.body), essence(one.body));
    for (size_t i = 0; i < one.body["choices"].size(); ++i)
      expect_close(two.body["choices"][i]["logprobs"], one.body["choices"][i]["logprobs"], "logprobs");
    EXPECT_GT(one.body["usage"]["completion_tokens"].get<int>(), 0);
    json streaming = body;
    streaming["stream"] = true;
    const size_t n_choices = one.body["choices"].size();
    const auto events = post_stream(cc, path, streaming.dump());
    for (size_t i = 0; i < n_choices; ++i) {
      const streamed s = collect(events, static_cast<int>(i));
      const json& c = one.body["choices"][i];
      EXPECT_EQ(s.text, c.contains("message") ? c["message"]["content"] : c["text"]);
      EXPECT_EQ(s.finish_reason, c["finish_reason"]);
      EXPECT_TRUE(s.done);
      EXPECT_EQ(s.error, "");
    }
  }
}

TEST(ClusterServer, ConcurrentStreamsGetWhatTheyGetAlone) {
  cluster cl;
  auto body = [](int i) {
    json b = chat("client " + std::to_string(i), 24 + 4 * i, {{"temperature", 0.9}, {"seed", 100 + i}});
    b["stream"] = true;
    return b.dump();
  };
  const int n = 16;  // as many as the server runs at once, over the workers' batched stages
  std::vector<std::string> alone;
  auto c = cl.server->client();
  for (int i = 0; i < n; ++i) alone.push_back(collect(post_stream(c, "/v1/chat/completions", body(i))).text);
  std::vector<std::future<std::pair<int, streamed>>> together;
  for (int i = 0; i < n; ++i)
    together.push_back(std::async(std::launch::async, [&, i] {
      auto ci = cl.server->client();
      int status = 0;
      streamed s = collect(post_stream(ci, "/v1/chat/completions", body(i), 0, &status));
      return std::pair(status, s);
    }));
  for (int i = 0; i < n; ++i) {
    const auto [status, s] = together[i].get();
    EXPECT_EQ(status, 200) << "client " << i;
    EXPECT_EQ(s.text, alone[i]) << "client " << i;
    EXPECT_TRUE(s.done) << s.error;
  }
  EXPECT_TRUE(workers_released(*cl.server));
  EXPECT_EQ(metric_reaches(*cl.server, "mlxd_running_sequences", 0), 0);
}

TEST(ClusterServer, ClientThatGoesAwayReleasesItsSequenceOnTheWorkers) {
  cluster cl;
  auto c = cl.server->client();
  const auto events = post_stream(c, "/v1/completions", long_body(true).dump(), 3);
  EXPECT_GE(events.size(), 3u);
  EXPECT_TRUE(workers_released(*cl.server)) << json(worker_sequences(*cl.server)).dump();
  EXPECT_LT(metric(*cl.server, "mlxd_generation_tokens_total"), 1500);
  EXPECT_EQ(metric_reaches(*cl.server, "mlxd_cluster_sequences_cancelled_total", 1), 1);
  // A whole (non-streaming) request whose client gives up.
  auto impatient = cl.server->client();
  impatient.set_read_timeout(0, 50000);  // 1500 tokens take longer, even in rings on a quiet machine
  EXPECT_FALSE(impatient.Post("/v1/completions", long_body(false).dump(), "application/json"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(workers_released(*cl.server));
  EXPECT_LT(metric(*cl.server, "mlxd_generation_tokens_total"), 3000);
  EXPECT_EQ(metric_reaches(*cl.server, "mlxd_cluster_sequences_cancelled_total", 2), 2);
  EXPECT_EQ(metric_reaches(*cl.server, "mlxd_running_sequences", 0), 0);
  EXPECT_EQ(post(c, "/v1/completions", R"({"prompt": "hi", "max_tokens": 3})").status, 200);
}

TEST(ClusterServer, RequestTimeoutReleasesTheSequence) {
  cluster cl({"--request-timeout", "0.05"});  // shorter than 1500 tokens, even in rings
  auto c = cl.server->client();
  const reply r = post(c, "/v1/completions", long_body(false).dump());
  EXPECT_EQ(r.status, 504) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "request_timeout");
  const streamed s = collect(post_stream(c, "/v1/completions", long_body(true).dump()));
  EXPECT_NE(s.error.find("did not finish within"), std::string::npos) << s.error;
  EXPECT_TRUE(s.done);
  EXPECT_TRUE(workers_released(*cl.server));
  EXPECT_LT(metric(*cl.server, "mlxd_generation_tokens_total"), 3000);
}

TEST(ClusterServer, HealthShowsTheWorkersAndAKilledOneAsDown) {
  cluster cl;
  auto c = cl.server->client();
  reply h = get(c, "/health");
  ASSERT_EQ(h.status, 200) << h.raw;
  EXPECT_EQ(h.body["status"], "ok");
  ASSERT_EQ(h.body["workers"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const json& w = h.body["workers"][i];
    EXPECT_EQ(w["address"], cl.workers[i]->address());
    EXPECT_EQ(w["status"], "up");
    EXPECT_EQ(w["layers"]["embedding"], i == 0);
    EXPECT_EQ(w["layers"]["head"], i == 1);
  }
  EXPECT_EQ(h.body["workers"][0]["layers"]["end"], h.body["workers"][1]["layers"]["begin"]);
  EXPECT_EQ(h.body["replans"], 0);
  const std::string w0 = cl.workers[0]->address(), w1 = cl.workers[1]->address();
  EXPECT_NE(h.body["plan"].get<std::string>().find(w1), std::string::npos) << h.raw;
  const std::string body = json{{"prompt", "abc"}, {"max_tokens", 20}, {"temperature", 0}}.dump();
  const reply before = post(c, "/v1/completions", body);
  ASSERT_EQ(before.status, 200) << before.raw;

  cl.workers[1]->kill_now();
  h = get(c, "/health");
  EXPECT_EQ(h.status, 200) << h.raw;
  EXPECT_EQ(h.body["status"], "degraded");
  EXPECT_EQ(h.body["workers"][0]["status"], "up");
  EXPECT_EQ(h.body["workers"][1]["status"], "down");
  EXPECT_TRUE(h.body["workers"][1]["error"].is_string());
  EXPECT_EQ(metric(*cl.server, "mlxd_cluster_node_up{node=\"" + cl.workers[1]->address() + "\"}"), 0);
  // The coordinator re-plans over the survivor as soon as the pipeline's stream ends: /health shows the new
  // plan with no request in between.
  for (const auto deadline = clock_type::now() + std::chrono::seconds(10);
       h.body["plan"].get<std::string>().find(w1) != std::string::npos && clock_type::now() < deadline;
       h = get(c, "/health"))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(h.body["plan"].get<std::string>().find(w1), std::string::npos) << h.raw;
  EXPECT_NE(h.body["plan"].get<std::string>().find(w0), std::string::npos) << h.raw;
  EXPECT_EQ(h.body["replans"], 1);
  EXPECT_EQ(metric(*cl.server, "mlxd_cluster_plans_replaced_total"), 1) << "the re-plan no request saw";
  EXPECT_EQ(metric(*cl.server, "mlxd_cluster_sequences_total"), 1) << "only the request before the loss";
  // The survivor holds the whole model after a re-plan: the same answer.
  const reply after = post(c, "/v1/completions", body);
  ASSERT_EQ(after.status, 200) << after.raw;
  EXPECT_EQ(after.body["choices"][0]["text"], before.body["choices"][0]["text"]);

  cl.workers[0]->kill_now();
  h = get(c, "/health");
  EXPECT_EQ(h.status, 503) << h.raw;
  EXPECT_EQ(h.body["status"], "unavailable");
  const reply none = post(c, "/v1/completions", body);
  EXPECT_EQ(none.status, 503) << none.raw;
  EXPECT_EQ(none.body["error"]["type"], "server_error");
  json streaming = json::parse(body);
  streaming["stream"] = true;
  const streamed s = collect(post_stream(c, "/v1/completions", streaming.dump()));
  EXPECT_NE(s.error, "");
  EXPECT_TRUE(s.done);
}

TEST(ClusterServer, WorkerKilledMidStreamCompletesTheSameOrFailsClearly) {
  server_process local;
  cluster cl;
  auto lc = local.client();
  const json body = long_body(false);  // long enough that the kill comes mid-stream, even in rings
  const reply expected = post(lc, "/v1/completions", body.dump());
  ASSERT_EQ(expected.status, 200) << expected.raw;
  auto c = cl.server->client();
  json streaming = body;
  streaming["stream"] = true;
  std::vector<std::string> events;
  std::thread reader([&] { events = post_stream(c, "/v1/completions", streaming.dump()); });
  while (metric(*cl.server, "mlxd_generation_tokens_total") < 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  cl.workers[0]->kill_now();  // the first stage, which embeds
  reader.join();
  const streamed s = collect(events);
  EXPECT_TRUE(s.done);
  if (s.error.empty()) {
    EXPECT_EQ(s.text, expected.body["choices"][0]["text"]);
    EXPECT_EQ(s.finish_reason, "length");
  }
  EXPECT_EQ(s.error, "") << "the survivor can hold the whole model";
  EXPECT_EQ(metric(*cl.server, "mlxd_cluster_replans_total"), 1);  // the stream was still going
  const reply after = post(c, "/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 4}}.dump());
  EXPECT_EQ(after.status, 200) << after.raw;
}

TEST(ClusterServer, MetricsHavePerNodeFigures) {
  cluster cl;
  auto c = cl.server->client();
  const reply r =
      post(c, "/v1/completions",
           R"({"prompt": "hello", "max_tokens": 10, "temperature": 0, "logit_bias": {"262": -100}})");
  ASSERT_EQ(r.status, 200) << r.raw;
  for (const auto& w : cl.workers) {
    const std::string node = "{node=\"" + w->address() + "\"}";
    EXPECT_EQ(metric(*cl.server, "mlxd_cluster_node_up" + node), 1);
    EXPECT_EQ(metric(*cl.server, "mlxd_cluster_node_sequences" + node), 0);
    EXPECT_GT(metric(*cl.server, "mlxd_cluster_node_weight_bytes" + node), 0);
    EXPECT_GT(metric(*cl.server, "mlxd_cluster_stage_compute_seconds_total" + node), 0);
    EXPECT_EQ(metric(*cl.server, "mlxd_cluster_stage_steps_total" + node), 9);  // 10 tokens, 1 from prefill
  }
  EXPECT_EQ(metric(*cl.server, "mlxd_cluster_hops"), 2);
  EXPECT_EQ(metric(*cl.server, "mlxd_cluster_decode_steps_total"), 9);
  // A ring of 8 steps (the default), sent once, then one step.
  EXPECT_EQ(metric(*cl.server, "mlxd_cluster_looped_steps_total"), 7);
  EXPECT_GT(metric(*cl.server, "mlxd_cluster_decode_round_trip_seconds_total"), 0);
  EXPECT_GE(metric(*cl.server, "mlxd_cluster_hop_seconds_total"), 0);
  EXPECT_EQ(metric(*cl.server, "mlxd_cluster_sequences_total"), 1);
  EXPECT_EQ(metric(*cl.server, "mlxd_generation_tokens_total"), 10);
  EXPECT_EQ(metric(*cl.server, "mlxd_prompt_tokens_total"), r.body["usage"]["prompt_tokens"].get<double>());
  EXPECT_EQ(metric(*cl.server, "mlxd_running_sequences"), 0);
}

TEST(ClusterServer, EmbeddingsEqualOneNode) {
  server_process local;
  cluster cl;
  auto lc = local.client();
  auto c = cl.server->client();
  const std::string body =
      R"({"input": ["hello world", "abc", "in the beginning"], "encoding_format": "float"})";
  const reply want = post(lc, "/v1/embeddings", body);
  const reply got = post(c, "/v1/embeddings", body);
  ASSERT_EQ(want.status, 200) << want.raw;
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.body["usage"], want.body["usage"]);
  ASSERT_EQ(got.body["data"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto a = got.body["data"][i]["embedding"].get<std::vector<float>>();
    const auto b = want.body["data"][i]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(a.size(), 64u);  // tiny_serve.json's hidden size
    for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-5f) << "input " << i << ", value " << k;
  }
  EXPECT_TRUE(workers_released(*cl.server));  // each input's sequence ended on every worker
  const reply bad = post(c, "/v1/embeddings", R"({"input": [[5, 999]]})");
  EXPECT_EQ(bad.status, 400) << bad.raw;
  EXPECT_EQ(bad.body["error"]["param"], "input");
  cl.workers[0]->kill_now();
  cl.workers[1]->kill_now();
  const reply down = post(c, "/v1/embeddings", R"({"input": "hello"})");
  EXPECT_EQ(down.status, 503) << down.raw;
  EXPECT_EQ(down.body["error"]["type"], "server_error");
}

// The tiny model with 6 layers instead of 2, so that a plan over two workers gives each some whatever speeds
// they measure (the model of model_dir() has too few for a planned split to be sure of that).
std::filesystem::path six_layer_model() {
  const auto dir = model_dir().parent_path();
  const auto model = dir / "tiny6";
  if (std::filesystem::exists(model / "config.json")) return model;
  json config = json::parse(std::ifstream(std::string(MLXD_SERVE_DATA) + "/tiny_serve.json"));
  config["num_hidden_layers"] = 6;
  std::ofstream(dir / "tiny6.json") << config.dump();
  const std::string cmd = std::string(MLXD_BIN) + " init --config " + (dir / "tiny6.json").string() +
                          " --seed 7 --out " + model.string() + " > /dev/null";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("mlxd init failed: " + cmd);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(std::filesystem::path(MLXD_TINY_TOKENIZER) / f, model / f);
  return model;
}

// `mlxd serve --cluster-port` with one worker, and a second started later with `mlxd worker --join`: the
// server plans it in as soon as it is idle, /health and `mlxd cluster status --coordinator` show both, and
// the answers stay those of one node.
TEST(ClusterServer, AWorkerThatJoinsLaterIsPlannedInAndAnswersStayTheSame) {
  const std::filesystem::path model = six_layer_model();
  server_process local({"--model-name", "tiny"}, model);  // the name the requests give
  worker_process first(model_dir().parent_path());
  server_process server({"--model-name", "tiny", "--workers", first.address(), "--cluster-port", "0",
                         "--cluster-host", "127.0.0.1", "--join-wait", "0.5"},
                        model);
  auto lc = local.client(), c = server.client();
  reply h = get(c, "/health");
  ASSERT_TRUE(h.body["cluster_port"].is_number_integer()) << h.raw;
  const std::string coordinator = "127.0.0.1:" + std::to_string(h.body["cluster_port"].get<int>());
  worker_process joiner(model_dir().parent_path(), {"--join", coordinator});
  for (const auto deadline = clock_type::now() + std::chrono::seconds(10);
       h.body["plan"].get<std::string>().find(joiner.address()) == std::string::npos &&
       clock_type::now() < deadline;
       h = get(c, "/health"))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(h.body["plan"].get<std::string>().find(joiner.address()), std::string::npos) << h.raw;
  h = get(c, "/health");  // the workers were asked before the plan was in force: ask them again
  ASSERT_EQ(h.body["workers"].size(), 2u) << h.raw;
  EXPECT_EQ(h.body["workers"][1]["address"], joiner.address());
  EXPECT_EQ(h.body["workers"][0]["layers"]["end"], h.body["workers"][1]["layers"]["begin"]) << h.raw;
  EXPECT_EQ(h.body["replans"], 1);
  for (const auto& [path, body] : varied_requests()) {
    SCOPED_TRACE(body.dump());
    const reply one = post(lc, path, body.dump()), two = post(c, path, body.dump());
    ASSERT_EQ(one.status, 200) << one.raw;
    ASSERT_EQ(two.status, 200) << two.raw;
    EXPECT_EQ(essence(two.body), essence(one.body));
  }
  const std::string cmd = std::string(MLXD_BIN) + " cluster status --json --coordinator " + coordinator;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  const json status = json::parse(out, nullptr, false);
  ASSERT_TRUE(status.is_object()) << out;
  ASSERT_EQ(status["workers"].size(), 2u) << out;
  EXPECT_EQ(status["workers"][1]["address"], joiner.address());
  EXPECT_EQ(status["coordinator"]["plan"], h.body["plan"]) << out;
  EXPECT_EQ(status["workers"][0]["layer_end"], status["workers"][1]["layer_begin"]) << out;
}

}  // namespace
}  // namespace mlxd::serve::testing
