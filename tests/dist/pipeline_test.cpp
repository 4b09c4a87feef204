// Pipeline-parallel inference with real `mlxd worker` processes on 127.0.0.1: sharded logits and final
// hidden states equal the single-node forward bit for bit, generation gives the same tokens, concurrent
// sequences do not disturb each other, and a worker killed mid-generation changes nothing but the plan.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/dist/coordinator.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "worker_process.h"

namespace mlxd::dist {
namespace {

using testing::worker_process;

models::llama_config test_config() {
  models::llama_config c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 97;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.n_layers = 6;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.max_position_embeddings = 1280;  // room for a prompt of three prefill chunks
  return c;
}

engine::sampling_params seeded() {
  engine::sampling_params sp;
  sp.temperature = 0.9f;
  sp.top_p = 0.95f;
  sp.repetition_penalty = 1.1f;
  sp.seed = 77;
  return sp;
}

class Pipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("mlxd_pipeline_" + std::to_string(getpid())));
    std::filesystem::create_directories(*dir_);
    const models::llama_config c = test_config();
    save_safetensors(*dir_ / "model.safetensors", models::init_llama_weights(c, 2024));
    std::ofstream(*dir_ / "config.json") << models::to_json(c);
    whole_ = new models::llama_model(models::load_llama(*dir_));
  }
  static void TearDownTestSuite() {
    delete whole_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  static std::vector<std::unique_ptr<worker_process>> start(int n, std::vector<std::string> extra = {}) {
    std::vector<std::unique_ptr<worker_process>> out;
    for (int i = 0; i < n; ++i) out.push_back(std::make_unique<worker_process>(*dir_, extra));
    return out;
  }
  static coordinator_options options(const std::vector<std::unique_ptr<worker_process>>& workers) {
    coordinator_options o;
    for (const auto& w : workers) o.access.workers.push_back(w->address());
    return o;
  }

  // What `mlxd generate` computes on one node.
  static std::vector<int32_t> generate_alone(const std::vector<int32_t>& prompt, int max_tokens,
                                             const engine::sampling_params& sp) {
    engine::sampler sampler(sp, whole_->config().vocab_size);
    models::kv_cache cache = whole_->make_cache(static_cast<int>(prompt.size()) + max_tokens);
    std::vector<int32_t> out;
    array logits = whole_->forward(prompt, cache);
    for (int i = 0; i < max_tokens; ++i) {
      const array last = contiguous(slice_axis(logits, 0, logits.shape(0) - 1, logits.shape(0)));
      out.push_back(sampler.sample({last.data<float>(), static_cast<size_t>(last.size())}, out).id);
      if (i + 1 < max_tokens) logits = whole_->forward({out.back()}, cache);
    }
    return out;
  }
  // n seeded requests of `max_tokens` tokens, with prompts {first + i, middle, last - i} and seeds seed + i.
  static std::vector<generation_request> distinct_requests(int n, int max_tokens, int first, int middle,
                                                           int last, uint64_t seed) {
    std::vector<generation_request> out(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      out[i].prompt = {first + i, middle, last - i};
      out[i].max_tokens = max_tokens;
      out[i].sampling = seeded();
      out[i].sampling.seed = seed + static_cast<uint64_t>(i);
    }
    return out;
  }
  // Every request on a thread of its own, all at once; each result checked against the single node.
  static std::vector<generation_result> generate_together(coordinator& c,
                                                          const std::vector<generation_request>& requests) {
    std::vector<generation_result> out(requests.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < requests.size(); ++i)
      threads.emplace_back([&, i] { out[i] = c.generate(requests[i]); });
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < requests.size(); ++i)
      EXPECT_EQ(out[i].tokens,
                generate_alone(requests[i].prompt, requests[i].max_tokens, requests[i].sampling))
          << "sequence " << i;
    return out;
  }
  static array logits_alone(const std::vector<int32_t>& tokens) {
    models::kv_cache cache = whole_->make_cache(static_cast<int>(tokens.size()));
    return whole_->forward(tokens, cache);
  }
  static array final_hidden_alone(const std::vector<int32_t>& tokens) {
    models::kv_cache cache = whole_->make_cache(static_cast<int>(tokens.size()));
    return whole_->final_hidden(tokens, cache);
  }
  static bool bit_equal(const array& a, const array& b) {
    if (a.shape() != b.shape()) return false;
    const array ca = contiguous(a), cb = contiguous(b);
    return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
  }

  static std::filesystem::path* dir_;
  static models::llama_model* whole_;
};
std::filesystem::path* Pipeline::dir_ = nullptr;
models::llama_model* Pipeline::whole_ = nullptr;

const std::vector<int32_t> prompt = {5, 91, 17, 3, 64, 22, 8};

// A request for `max_tokens` tokens after `tokens`, sampled with `sp`.
generation_request request(const std::vector<int32_t>& tokens, int max_tokens,
                           const engine::sampling_params& sp) {
  generation_request r;
  r.prompt = tokens;
  r.max_tokens = max_tokens;
  r.sampling = sp;
  return r;
}

engine::sampling_params greedy() {
  engine::sampling_params sp;
  sp.temperature = 0;
  return sp;
}

struct partition_case {
  int n_workers;
  std::string layers;              // "" planned
  std::string coordinator_layers;  // "" none
};

class PipelinePartitions : public Pipeline, public ::testing::WithParamInterface<partition_case> {};

TEST_P(PipelinePartitions, LogitsAndTokensEqualOneNode) {
  const partition_case& pc = GetParam();
  auto workers = start(pc.n_workers);
  coordinator_options o = options(workers);
  if (!pc.layers.empty()) o.layers = parse_layer_ranges(pc.layers);
  if (!pc.coordinator_layers.empty()) o.coordinator_layers = parse_layer_ranges(pc.coordinator_layers)[0];
  coordinator c(*dir_, o);
  SCOPED_TRACE(c.plan_description());
  EXPECT_TRUE(bit_equal(c.logits(prompt), logits_alone(prompt)));
  EXPECT_TRUE(bit_equal(c.final_hidden(prompt), final_hidden_alone(prompt)));
  for (const auto& sp : {greedy(), seeded()}) {
    generation_request r = request(prompt, 12, sp);
    const generation_result g = c.generate(r);
    EXPECT_EQ(g.tokens, generate_alone(prompt, 12, sp));
    EXPECT_EQ(g.replans, 0);
    EXPECT_EQ(g.decode_steps, 11);
    // With two remote stages or more, the last answers the coordinator directly (protocol 1.4).
    EXPECT_EQ(g.direct_replies, pc.n_workers > 1);
  }
}

std::string case_name(const ::testing::TestParamInfo<partition_case>& info) {
  std::string name = std::to_string(info.param.n_workers) + "_workers";
  if (!info.param.layers.empty()) name += "_layers_" + info.param.layers;
  if (!info.param.coordinator_layers.empty()) name += "_coordinator_" + info.param.coordinator_layers;
  for (char& ch : name)
    if (ch == '-' || ch == ',') ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Nodes, PipelinePartitions,
                         ::testing::Values(partition_case{1, "", ""}, partition_case{2, "", ""},
                                           partition_case{3, "", ""}, partition_case{4, "", ""},
                                           partition_case{2, "0-4,5", ""}, partition_case{3, "0,1-4,5", ""},
                                           partition_case{2, "", "0-1"}, partition_case{4, "0-2,3,4,5", ""}),
                         case_name);

// Longer than two prefill chunks: the coordinator sends 512, 512 and 76 positions, which the single-node
// forward also runs chunk by chunk, so the bits agree. The reference runs on one thread like the workers
// (worker_process.h): OpenBLAS splits some shapes (here the 76-row chunk) differently by thread count, which
// moves the last bit (3.6e-7 here).
TEST_F(Pipeline, PromptOfSeveralPrefillChunksEqualsOneNode) {
  std::vector<int32_t> long_prompt(1100);
  for (size_t i = 0; i < long_prompt.size(); ++i) long_prompt[i] = static_cast<int32_t>((i * 37 + 11) % 97);
  auto workers = start(2);
  coordinator c(*dir_, options(workers));
  const array logits = c.logits(long_prompt), hidden = c.final_hidden(long_prompt);
  generation_request r = request(long_prompt, 6, seeded());
  const std::vector<int32_t> tokens = c.generate(r).tokens;
  const int threads = num_threads();
  set_num_threads(1);
  EXPECT_TRUE(bit_equal(logits, logits_alone(long_prompt)));
  EXPECT_TRUE(bit_equal(hidden, final_hidden_alone(long_prompt)));
  EXPECT_EQ(tokens, generate_alone(long_prompt, 6, seeded()));
  set_num_threads(threads);
}

// With the coordinator grouping the running sequences' decode steps (protocol 1.5, each group in one carrier
// since 1.6; the grouping rules are decode_gate_test's, the stage's wait and the carriers protocol_test's),
// over 2 and 3 workers: eight sequences started together each get the tokens they get alone, every one
// shared some step with another, at some step all eight ran as one batch, and no KV cache is left on any
// worker once they end.
TEST_F(Pipeline, ConcurrentSequencesRunInGroupsAndGetWhatTheyWouldAlone) {
  for (const int n_workers : {2, 3}) {
    SCOPED_TRACE(std::to_string(n_workers) + " workers");
    auto workers = start(n_workers);
    coordinator c(*dir_, options(workers));
    const int n = 8;
    const std::vector<generation_result> r =
        generate_together(c, distinct_requests(n, 40, 3 * n_workers, 41, 80, 100 * n_workers));
    int batched = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_GT(r[i].max_stage_batch, 1) << "sequence " << i << " always ran alone";
      EXPECT_TRUE(r[i].carriers) << "sequence " << i;  // (1.6) its groups crossed each hop in one message
      batched = std::max(batched, r[i].max_stage_batch);
    }
    EXPECT_EQ(batched, n);
    for (const node_status& st : c.status(1)) EXPECT_EQ(st.n_sequences, 0u) << st.address;
  }
}

// A worker killed while four sequences run in groups: each is re-prefilled on the new plan, falls into step
// with the others again, and ends with the tokens it gets alone.
TEST_F(Pipeline, WorkerKilledWhileSequencesRunInGroupsGivesEachItsTokens) {
  auto workers = start(3);
  coordinator c(*dir_, options(workers));
  const int n = 4;
  std::vector<generation_request> requests = distinct_requests(n, 24, 9, 17, 33, 200);
  std::atomic<int> produced = 0;
  for (generation_request& q : requests)
    q.on_token = [&](const engine::sample_result&) {
      if (++produced == 2 * n + 1) workers[1]->kill_now();
    };
  int replans = 0;
  for (const generation_result& g : generate_together(c, requests)) replans = std::max(replans, g.replans);
  EXPECT_GE(replans, 1);
  EXPECT_EQ(c.plan_description().find(workers[1]->address()), std::string::npos) << c.plan_description();
}

// The first stage (its Loop stream from the last ends), a middle one, then the last one, which answers on
// its own Replies stream. The kill comes inside the first ring (of 8 tokens); the next ring's step leaves
// after it.
TEST_F(Pipeline, WorkerKilledMidGenerationGivesTheSameTokens) {
  for (const size_t victim : {0, 1, 2}) {
    SCOPED_TRACE("worker " + std::to_string(victim) + " killed");
    auto workers = start(3);
    coordinator c(*dir_, options(workers));
    generation_request r = request(prompt, 24, seeded());
    std::vector<std::chrono::steady_clock::time_point> arrivals;
    r.on_token = [&](const engine::sample_result&) {
      arrivals.push_back(std::chrono::steady_clock::now());
      if (arrivals.size() == 6) workers[victim]->kill_now();
    };
    const generation_result g = c.generate(r);
    EXPECT_EQ(g.tokens, generate_alone(prompt, 24, r.sampling));
    EXPECT_EQ(g.replans, 1);
    ASSERT_EQ(arrivals.size(), 24u);  // no token reported twice
    const double gap = std::chrono::duration<double>(arrivals[6] - arrivals[5]).count();
    EXPECT_LT(gap, 2.0) << "the lost worker took " << gap << " s to notice and re-plan around";
    EXPECT_EQ(c.plan_description().find(workers[victim]->address()), std::string::npos)
        << c.plan_description();
  }
}

// A worker that was down and answers again on its address rejoins: a later request, with nothing running,
// plans over all three again and still gets the same tokens.
TEST_F(Pipeline, AWorkerThatComesBackRejoinsTheNextPlan) {
  auto workers = start(3);
  coordinator_options o = options(workers);
  o.rejoin_interval = std::chrono::milliseconds(100);
  coordinator c(*dir_, o);
  generation_request r = request(prompt, 8, seeded());
  const std::vector<int32_t> alone = generate_alone(prompt, 8, r.sampling);
  const int port = workers[1]->port();
  workers[1]->kill_now();
  generation_result g = c.generate(r);
  EXPECT_EQ(g.tokens, alone);
  EXPECT_EQ(g.stage_nodes.size(), 2u) << "planned over the two left";
  g = c.generate(r);  // the lost worker does not answer: the plan stays
  EXPECT_EQ(g.stage_nodes.size(), 2u);
  workers[1] = std::make_unique<worker_process>(*dir_, std::vector<std::string>{}, port);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  g = c.generate(r);
  EXPECT_EQ(g.tokens, alone);
  ASSERT_EQ(g.stage_nodes.size(), 3u) << "the worker that came back is in the plan again";
  EXPECT_EQ(g.stage_nodes[1], workers[1]->address());
  EXPECT_EQ(g.replans, 0);
}

// Under load too: a worker that comes back while a request runs is planned in after join_wait (the request
// that notices it starts next to the running one); both end with one node's tokens.
TEST_F(Pipeline, AWorkerThatComesBackDuringARequestIsPlannedInAfterTheJoinWait) {
  auto workers = start(2);
  coordinator_options o = options(workers);
  o.rejoin_interval = std::chrono::milliseconds(1);
  o.join_wait = std::chrono::milliseconds(0);
  // A ring would compute the request's last tokens while on_token holds it, before the new plan exists.
  o.ring_tokens = 0;
  coordinator c(*dir_, o);
  generation_request r = request(prompt, 12, seeded());
  const std::vector<int32_t> alone = generate_alone(prompt, 12, r.sampling);
  const int port = workers[1]->port();
  workers[1]->kill_now();
  EXPECT_EQ(c.generate(r).stage_nodes.size(), 1u);
  ASSERT_EQ(c.n_replans(), 1u);
  generation_result second;
  std::thread next;
  int seen = 0;
  r.on_token = [&](const engine::sample_result&) {
    if (++seen != 3) return;
    workers[1] = std::make_unique<worker_process>(*dir_, std::vector<std::string>{}, port);
    generation_request plain = r;
    plain.on_token = nullptr;
    next = std::thread([&c, &second, plain] { second = c.generate(plain); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (c.n_replans() < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  const generation_result first = c.generate(r);
  next.join();
  EXPECT_EQ(c.n_replans(), 2u) << c.plan_description();
  EXPECT_EQ(first.tokens, alone);
  EXPECT_EQ(first.replans, 1);
  EXPECT_EQ(first.stage_nodes, (std::vector<std::string>{workers[0]->address(), workers[1]->address()}));
  EXPECT_EQ(second.tokens, alone);
}

// A worker that freezes (SIGSTOP) is noticed by keepalive and planned around, the last stage or the first.
// (1.8) The frozen stage's local link stays open after its calls are gone: the other worker still stops in
// order (a Run stream from a frozen first stage ends link_end_grace after its call).
TEST_F(Pipeline, FrozenWorkerIsNoticedByKeepaliveAndTheOtherStopsInOrder) {
  for (const size_t victim : {1, 0}) {
    SCOPED_TRACE("worker " + std::to_string(victim) + " frozen");
    auto workers = start(2);
    coordinator_options o = options(workers);
    // Rings of 2 tokens: the pipeline runs at most one token ahead of on_token, so steps are still to be
    // sent when the worker freezes (a ring of the whole request could end before).
    o.ring_tokens = 2;
    coordinator c(*dir_, o);
    // The plan is not pinned: a worker that missed Hello's timeout under load would be left out of it, and
    // freezing it would then change nothing.
    ASSERT_NE(c.plan_description().find(workers[victim]->address()), std::string::npos)
        << "the worker to freeze is not in the plan in force: " << c.plan_description();
    generation_request r = request(prompt, 10, greedy());
    int seen = 0;
    auto frozen_at = std::chrono::steady_clock::now();
    r.on_token = [&](const engine::sample_result&) {
      if (++seen == 3) {
        workers[victim]->kill_now(SIGSTOP);
        frozen_at = std::chrono::steady_clock::now();
      }
    };
    const generation_result g = c.generate(r);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen_at).count();
    EXPECT_EQ(g.tokens, generate_alone(prompt, 10, r.sampling));
    EXPECT_EQ(g.replans, 1);
    EXPECT_LT(took, 4.0);
    workers[1 - victim]->kill_now(SIGTERM);
    EXPECT_EQ(workers[1 - victim]->wait_exit(std::chrono::seconds(10)), 0);
    workers[victim]->kill_now();
  }
}

TEST_F(Pipeline, NoFittingPlanIsAClearErrorAndLaterRequestsWork) {
  // Each worker offers 3 MiB: three hold the 6 layers (1.2 MiB each with KV room for the context), one alone
  // does not.
  auto workers = start(3, {"--memory-mb", "3"});
  coordinator c(*dir_, options(workers));
  generation_request r = request(prompt, 6, greedy());
  const auto want = generate_alone(prompt, 6, r.sampling);
  EXPECT_EQ(c.generate(r).tokens, want);
  const int port1 = workers[1]->port(), port2 = workers[2]->port();
  workers[1]->kill_now();
  workers[2]->kill_now();
  try {
    c.generate(r);
    FAIL() << "generated with a plan that cannot fit";
  } catch (const plan_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }
  // The workers come back on their ports: the next request plans over them again.
  workers[1] = std::make_unique<worker_process>(*dir_, std::vector<std::string>{"--memory-mb", "3"}, port1);
  workers[2] = std::make_unique<worker_process>(*dir_, std::vector<std::string>{"--memory-mb", "3"}, port2);
  EXPECT_EQ(c.generate(r).tokens, want);
}

TEST_F(Pipeline, ModelThatDoesNotFitIsRefusedAtStart) {
  auto workers = start(2, {"--memory-mb", "1"});
  try {
    coordinator c(*dir_, options(workers));
    FAIL() << "planned a model that does not fit";
  } catch (const plan_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("does not fit"), std::string::npos) << m;
    EXPECT_NE(m.find(workers[0]->address()), std::string::npos) << m;
  }
}

TEST_F(Pipeline, WrongClusterTokenIsRefusedNamingTheWorker) {
  auto workers = start(2, {"--cluster-token", "right-token"});
  coordinator_options o = options(workers);
  o.access.cluster_token = "wrong-token";
  try {
    coordinator c(*dir_, o);
    FAIL() << "a coordinator with the wrong token was accepted";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing or wrong cluster token"), std::string::npos) << m;
    EXPECT_NE(m.find(workers[0]->address()), std::string::npos) << m;
  }
  o.access.cluster_token = "right-token";
  coordinator c(*dir_, o);
  EXPECT_TRUE(bit_equal(c.logits(prompt), logits_alone(prompt)));
}

TEST_F(Pipeline, UnreachableWorkerIsNamed) {
  auto workers = start(1);
  coordinator_options o = options(workers);
  const int port = workers[0]->port();
  workers[0]->kill_now();
  o.access.workers = {"127.0.0.1:" + std::to_string(port)};
  try {
    coordinator c(*dir_, o);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unreachable"), std::string::npos) << e.what();
  }
}

// SIGTERM and SIGINT shut a worker down in order (exit status 0), also after it served a plan. OpenBLAS
// starts a thread before main that no signal mask covers; with sigwait the signal could land there and kill
// the process (status "killed by SIGTERM", seen on every try here).
TEST_F(Pipeline, AWorkerStopsInOrderOnSigtermAndSigint) {
  for (int sig : {SIGTERM, SIGINT}) {
    auto workers = start(2);
    {
      coordinator c(*dir_, options(workers));
      EXPECT_TRUE(bit_equal(c.logits(prompt), logits_alone(prompt)));
    }
    for (auto& w : workers) {
      w->kill_now(sig);
      EXPECT_EQ(w->wait_exit(std::chrono::seconds(10)), 0) << strsignal(sig);
    }
  }
}

// `mlxd worker --join`: a worker started after the coordinator announces itself on the coordinator's
// cluster port, the next plan spreads the layers over both, and the tokens and logits stay those of one node.
TEST_F(Pipeline, ANewWorkerJoinsTheRunningClusterAndTokensStayTheSame) {
  auto workers = start(1);
  coordinator_options o = options(workers);
  o.join_port = 0;
  o.join_host = "127.0.0.1";
  coordinator c(*dir_, o);
  generation_request r = request(prompt, 12, seeded());
  generation_result g = c.generate(r);
  EXPECT_EQ(g.tokens, generate_alone(prompt, 12, r.sampling));
  EXPECT_EQ(g.stage_nodes, std::vector<std::string>{workers[0]->address()});
  workers.push_back(std::make_unique<worker_process>(
      *dir_, std::vector<std::string>{"--join", "127.0.0.1:" + std::to_string(c.join_port())}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (c.workers().size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(c.workers(), (std::vector<std::string>{workers[0]->address(), workers[1]->address()}));
  for (const auto& sp : {greedy(), seeded()}) {
    r.sampling = sp;
    g = c.generate(r);
    EXPECT_EQ(g.tokens, generate_alone(prompt, 12, sp));
    EXPECT_EQ(g.stage_nodes, (std::vector<std::string>{workers[0]->address(), workers[1]->address()}))
        << c.plan_description();
    EXPECT_EQ(g.replans, 0);
  }
  EXPECT_TRUE(bit_equal(c.logits(prompt), logits_alone(prompt)));
  EXPECT_EQ(c.n_replans(), 1u);
  int layers = 0;
  for (const node_status& s : c.status(1)) {
    EXPECT_GT(s.layers.n_layers(), 0) << s.address;
    layers += s.layers.n_layers();
  }
  EXPECT_EQ(layers, 6);
  // A joined worker that dies is forgotten at the next plan (a listed one would be kept as down).
  workers[1]->kill_now();
  r.sampling = seeded();
  g = c.generate(r);
  EXPECT_EQ(g.tokens, generate_alone(prompt, 12, r.sampling));
  EXPECT_LE(g.replans, 1);  // 0 when the watcher re-planned before the request began
  EXPECT_EQ(c.n_replans(), 2u);
  EXPECT_EQ(c.workers(), std::vector<std::string>{workers[0]->address()});
  EXPECT_EQ(g.stage_nodes, std::vector<std::string>{workers[0]->address()});
}

// A server that is never idle still uses a worker that joins: after join_wait the plan changes under the
// running request, whose workers end the old plan's stream; it re-prefills on the new plan and its tokens
// stay those of one node.
TEST_F(Pipeline, AWorkerThatJoinsDuringARequestIsPlannedInAfterTheJoinWait) {
  auto workers = start(1);
  coordinator_options o = options(workers);
  o.join_port = 0;
  o.join_host = "127.0.0.1";
  o.join_wait = std::chrono::milliseconds(0);
  o.ring_tokens = 0;  // as above: the request's steps must still be to come when the plan changes
  coordinator c(*dir_, o);
  generation_request r = request(prompt, 12, seeded());
  int seen = 0;
  r.on_token = [&](const engine::sample_result&) {
    if (++seen != 3) return;
    // Mid-request: a worker joins, and the plan takes it in while this request still runs.
    workers.push_back(std::make_unique<worker_process>(
        *dir_, std::vector<std::string>{"--join", "127.0.0.1:" + std::to_string(c.join_port())}));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (c.n_replans() < 1 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  const generation_result g = c.generate(r);
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(c.n_replans(), 1u) << c.plan_description();
  EXPECT_EQ(g.tokens, generate_alone(prompt, 12, r.sampling));
  EXPECT_EQ(seen, 12);  // no token was reported twice
  EXPECT_EQ(g.replans, 1);
  EXPECT_EQ(g.stage_nodes, (std::vector<std::string>{workers[0]->address(), workers[1]->address()}));
}

TEST_F(Pipeline, AJoinWithTheWrongTokenIsRefusedAndTheWorkerStops) {
  auto workers = start(1, {"--cluster-token", "sesame"});
  coordinator_options o = options(workers);
  o.access.cluster_token = "sesame";
  o.join_port = 0;
  o.join_host = "127.0.0.1";
  coordinator c(*dir_, o);
  const auto log = *dir_ / "refused_worker.log";
  worker_process refused(
      *dir_, {"--cluster-token", "guess", "--join", "127.0.0.1:" + std::to_string(c.join_port())}, 0, log);
  EXPECT_EQ(refused.wait_exit(std::chrono::seconds(10)), 1);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("refused the join: missing or wrong cluster token"), std::string::npos) << text;
  EXPECT_EQ(c.workers(), std::vector<std::string>{workers[0]->address()});
  EXPECT_EQ(c.n_replans(), 0u);
}

// A partial re-plan: with the middle worker of three lost, the first takes its layers and the last keeps its
// range, so it loads nothing again (its Hello counts the stages it loaded); the tokens stay those of one
// node.
TEST_F(Pipeline, ALostWorkerIsReplacedByOneNeighbourAndTheOtherLoadsNothing) {
  auto workers = start(3);
  coordinator_options o = options(workers);
  o.layers = parse_layer_ranges("0-1,2-3,4-5");
  o.ring_tokens =
      4;  // steps are still to be sent when the worker dies (see FrozenWorkerIsNoticedByKeepalive)
  coordinator c(*dir_, o);
  generation_request r = request(prompt, 16, seeded());
  int seen = 0;
  r.on_token = [&](const engine::sample_result&) {
    if (++seen == 5) workers[1]->kill_now();
  };
  const generation_result g = c.generate(r);
  EXPECT_EQ(g.tokens, generate_alone(prompt, 16, r.sampling));
  EXPECT_EQ(g.replans, 1);
  EXPECT_EQ(c.plan_description(),
            workers[0]->address() + " 0-3 (embedding) | " + workers[2]->address() + " 4-5 (head)");
  const std::vector<node_status> s = c.status(1);
  ASSERT_TRUE(s[0].healthy && s[2].healthy);
  EXPECT_EQ(s[0].loads, 2u) << "the first worker loaded its larger range";
  EXPECT_EQ(s[0].layers_read, 4u) << "layers 0-1, then only 2-3";
  EXPECT_EQ(s[2].loads, 1u) << "the last worker kept the range it had";
  EXPECT_EQ(s[2].layers_read, 2u);
  r.on_token = nullptr;
  r.sampling = greedy();
  EXPECT_EQ(c.generate(r).tokens, generate_alone(prompt, 16, r.sampling));
  EXPECT_TRUE(bit_equal(c.logits(prompt), logits_alone(prompt)));
}

}  // namespace
}  // namespace mlxd::dist
