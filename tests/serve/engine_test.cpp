// The engine loop: sequences batched together produce exactly the tokens they produce alone (same seed),
// long prompts prefilled in chunks give the same tokens, limits are refused with the right status, and a
// cancelled request leaves the batch at once; embeddings computed by the loop equal the model's.
#include <gtest/gtest.h>

#include <thread>

#include "mlxd/models/embedding.h"
#include "mlxd/serve/api_error.h"
#include "mlxd/serve/engine.h"

namespace mlxd::serve {
namespace {

std::shared_ptr<const models::llama_model> tiny_model() {
  models::llama_config c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 263;  // the tiny byte-level tokenizer's
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 2048;
  return std::make_shared<const models::llama_model>(c, models::init_llama_weights(c, 21));
}

struct outcome {
  std::vector<int32_t> tokens;
  std::string text, finish_reason;
};

std::vector<outcome> run(const std::shared_ptr<request_handle>& h, size_t n) {
  std::vector<outcome> out(n);
  while (!h->done())
    for (auto& ev : h->wait(std::chrono::milliseconds(100))) {
      outcome& o = out[static_cast<size_t>(ev.index)];
      o.text += ev.text;
      for (const auto& t : ev.tokens) o.tokens.push_back(t.id);
      if (!ev.finish_reason.empty()) o.finish_reason = ev.finish_reason;
    }
  EXPECT_EQ(h->error(), "");
  return out;
}

std::vector<sequence_request> varied_requests(int n) {
  std::vector<sequence_request> out;
  for (int i = 0; i < n; ++i) {
    sequence_request s;
    for (int j = 0; j < 3 + 5 * i; ++j) s.prompt.push_back((17 * i + 31 * j) % 256);
    s.max_tokens = 20 + 3 * i;
    s.sampling.temperature = i % 3 == 0 ? 0.0f : 0.9f;
    s.sampling.top_p = 0.95f;
    s.sampling.seed = 100 + static_cast<uint64_t>(i);
    out.push_back(s);
  }
  return out;
}

TEST(Engine, BatchedSequencesGiveTheTokensTheyGiveAlone) {
  const tokenizer tok = tokenizer::load(MLXD_TINY_TOKENIZER);
  engine e(tiny_model(), tok, {});
  const auto requests = varied_requests(8);
  std::vector<outcome> alone;
  for (const auto& r : requests) alone.push_back(run(e.submit({r}), 1)[0]);
  const auto together = run(e.submit(requests), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(together[i].tokens, alone[i].tokens) << "sequence " << i;
    EXPECT_EQ(together[i].text, alone[i].text) << "sequence " << i;
    EXPECT_FALSE(alone[i].finish_reason.empty());
  }
}

// With f16 KV caches (mlxd serve --kv-dtype f16) batching still changes nothing.
TEST(Engine, F16CachesGiveBatchedSequencesTheTokensTheyGiveAlone) {
  const tokenizer tok = tokenizer::load(MLXD_TINY_TOKENIZER);
  engine_options o;
  o.kv_dtype = dtype::f16;
  engine e(tiny_model(), tok, o);
  const auto requests = varied_requests(5);
  std::vector<outcome> alone;
  for (const auto& r : requests) alone.push_back(run(e.submit({r}), 1)[0]);
  const auto together = run(e.submit(requests), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(together[i].tokens, alone[i].tokens) << "sequence " << i;
    EXPECT_FALSE(alone[i].tokens.empty());
  }
}

TEST(Engine, ChunkedPrefillGivesTheSameTokens) {
  const tokenizer tok = tokenizer::load(MLXD_TINY_TOKENIZER);
  sequence_request s;
  for (int j = 0; j < 300; ++j) s.prompt.push_back((7 * j) % 256);
  s.max_tokens = 12;
  s.sampling.temperature = 0.8f;
  s.sampling.seed = 5;
  engine_options small;
  small.prefill_chunk = 7;
  engine whole(tiny_model(), tok, {}), chunked(tiny_model(), tok, small);
  engine_options big;
  big.prefill_chunk = 1000;
  engine one_pass(tiny_model(), tok, big);
  const auto a = run(chunked.submit({s}), 1)[0];
  EXPECT_EQ(a.tokens, run(whole.submit({s}), 1)[0].tokens);
  EXPECT_EQ(a.tokens, run(one_pass.submit({s}), 1)[0].tokens);
  EXPECT_EQ(a.tokens.size(), 12u);
  EXPECT_EQ(a.finish_reason, "length");
}

TEST(Engine, StopStringEndsTheSequence) {
  const tokenizer tok = tokenizer::load(MLXD_TINY_TOKENIZER);
  engine e(tiny_model(), tok, {});
  sequence_request s = varied_requests(2)[1];
  s.max_tokens = 60;
  const outcome free_run = run(e.submit({s}), 1)[0];
  ASSERT_GE(free_run.text.size(), 6u);
  s.stop = {free_run.text.substr(3, 2)};  // two characters from the middle: several byte tokens
  const outcome stopped = run(e.submit({s}), 1)[0];
  EXPECT_EQ(stopped.finish_reason, "stop");
  EXPECT_EQ(stopped.text, free_run.text.substr(0, free_run.text.find(s.stop[0])));
}

TEST(Engine, RefusesWhatItCannotServe) {
  const tokenizer tok = tokenizer::load(MLXD_TINY_TOKENIZER);
  engine_options o;
  o.max_running = 1;
  o.max_queued = 2;
  engine e(tiny_model(), tok, o);
  auto status = [&](std::vector<sequence_request> r) {
    try {
      const size_t n = r.size();
      run(e.submit(std::move(r)), n);
    } catch (const api_error& err) {
      return err.status();
    }
    return 200;
  };
  EXPECT_EQ(status(varied_requests(4)), 429);  // one runs, two wait, the fourth has no place
  EXPECT_EQ(status(varied_requests(3)), 200);
  sequence_request big = varied_requests(1)[0];
  big.prompt.assign(2040, 1);
  big.max_tokens = 9;
  EXPECT_EQ(status({big}), 400);  // 2049 positions: over the context
  sequence_request bad = varied_requests(1)[0];
  bad.prompt = {1, 263};
  EXPECT_EQ(status({bad}), 400);
  bad.prompt = {};
  EXPECT_EQ(status({bad}), 400);
  sequence_request temp = varied_requests(1)[0];
  temp.sampling.top_p = 0;
  EXPECT_EQ(status({temp}), 400);
}

TEST(Engine, CancelledRequestLeavesTheBatch) {
  const tokenizer tok = tokenizer::load(MLXD_TINY_TOKENIZER);
  metrics stats;
  engine e(tiny_model(), tok, {}, &stats);
  sequence_request s = varied_requests(1)[0];
  s.max_tokens = 2000;
  const auto h = e.submit({s});
  while (h->wait(std::chrono::milliseconds(100)).empty()) {
  }
  h->cancel();
  for (int i = 0; i < 200 && stats.running_sequences != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(stats.running_sequences, 0);
  EXPECT_EQ(stats.kv_positions, 0);
  EXPECT_LT(stats.generated_tokens, 2000u);  // it did not run to its end
}

TEST(Engine, EmbedsBetweenStepsAsTheModelDoes) {
  const tokenizer tok = tokenizer::load(MLXD_TINY_TOKENIZER);
  const auto model = tiny_model();
  engine e(model, tok, {});
  // A generation in flight beside them still runs to its end.
  sequence_request s = varied_requests(1)[0];
  s.max_tokens = 50;
  s.sampling.logit_bias[262] = -100;  // no end-of-text: exactly 50 tokens
  const auto h = e.submit({s});
  const std::vector<std::vector<int32_t>> inputs = {{5, 9, 13}, {200, 3}, {5, 9, 13}};
  const auto vectors = e.embed(inputs);
  ASSERT_EQ(vectors.size(), 3u);
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_EQ(vectors[i], models::mean_pooled_embedding(*model, inputs[i])) << i;
  EXPECT_EQ(run(h, 1)[0].tokens.size(), 50u);
  auto status = [&](std::vector<std::vector<int32_t>> in) {
    try {
      e.embed(in);
    } catch (const api_error& err) {
      return err.status();
    }
    return 200;
  };
  EXPECT_EQ(status({{}}), 400);
  EXPECT_EQ(status({{1, 263}}), 400);
  EXPECT_EQ(status({std::vector<int32_t>(2049, 1)}), 400);
  EXPECT_EQ(status({std::vector<int32_t>(2048, 1)}), 200);
}

}  // namespace
}  // namespace mlxd::serve
