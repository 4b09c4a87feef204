#include "mlxd/engine/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "mlxd/core/ops.h"

namespace mlxd::engine {
namespace {

models::llama_model golden_model() {
  return models::load_llama(MLXD_GOLDEN_DIR "/llama_gqa");
}

perplexity_options windows(int context, int stride = 0) {
  perplexity_options o;
  o.context = context;
  o.stride = stride;
  return o;
}

std::vector<int32_t> sequence(int n) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 7 + 3) % 40;
  return t;
}

// -log p(tokens[target] | tokens[begin, target)) from a fresh forward over exactly that prefix, in double.
double reference_nll(const models::llama_model& m, const std::vector<int32_t>& tokens, int64_t begin,
                     int64_t target) {
  const std::vector<int32_t> prefix(tokens.begin() + begin, tokens.begin() + target);
  models::kv_cache cache = m.make_cache(static_cast<int>(prefix.size()));
  const array logits = contiguous(m.forward(prefix, cache));
  const int vocab = m.config().vocab_size;
  const float* last = logits.data<float>() + (prefix.size() - 1) * vocab;
  double max = last[0];
  for (int v = 1; v < vocab; ++v) max = std::max<double>(max, last[v]);
  double sum = 0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(last[v] - max);
  return -(last[tokens[target]] - max - std::log(sum));
}

// Hugging Face's scheme written per token: the target is scored by the first window (start k*stride, end
// start+context) that reaches past it, from that window's start, unless it is that window's first token.
double reference_total(const models::llama_model& m, const std::vector<int32_t>& tokens, int context,
                       int stride) {
  double nll = 0;
  for (int64_t target = 1; target < static_cast<int64_t>(tokens.size()); ++target) {
    int64_t begin = 0;
    while (begin + context <= target) begin += stride;
    if (begin < target) nll += reference_nll(m, tokens, begin, target);
  }
  return nll;
}

TEST(Perplexity, DisjointWindowsMatchPerTokenReference) {
  const auto m = golden_model();
  const auto tokens = sequence(50);
  const perplexity_result r = evaluate_perplexity(m, tokens, windows(16));
  EXPECT_EQ(r.tokens, 46);  // windows start at 0, 16, 32, 48; tokens 16, 32 and 48 have no context
  EXPECT_EQ(r.windows, 4);
  EXPECT_NEAR(r.nll, reference_total(m, tokens, 16, 16), 1e-3);
  EXPECT_NEAR(r.perplexity(), std::exp(r.nll / 46), 1e-9);
}

TEST(Perplexity, SlidingWindowsMatchPerTokenReference) {
  const auto m = golden_model();
  const auto tokens = sequence(45);
  const perplexity_result r = evaluate_perplexity(m, tokens, windows(12, 5));
  EXPECT_EQ(r.tokens, 44);
  EXPECT_NEAR(r.nll, reference_total(m, tokens, 12, 5), 1e-3);
}

TEST(Perplexity, OneWindowEqualsOneForward) {
  const auto m = golden_model();
  const auto tokens = sequence(30);
  const perplexity_result whole = evaluate_perplexity(m, tokens);  // context = 64 > 30: one window
  EXPECT_EQ(whole.windows, 1);
  EXPECT_NEAR(whole.nll, reference_total(m, tokens, 64, 64), 1e-3);
  // Overlapping short windows score every token too, from less context, so the sum differs.
  const perplexity_result short_ctx = evaluate_perplexity(m, tokens, windows(4, 2));
  EXPECT_EQ(short_ctx.tokens, whole.tokens);
  EXPECT_NE(short_ctx.nll, whole.nll);
}

TEST(Perplexity, ProgressReachesTheTotal) {
  const auto m = golden_model();
  const auto tokens = sequence(20);
  std::vector<int64_t> seen;
  perplexity_options o = windows(8);
  o.on_progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 20);
    seen.push_back(done);
  };
  EXPECT_EQ(evaluate_perplexity(m, tokens, o).tokens, 17);
  EXPECT_EQ(seen, (std::vector<int64_t>{8, 16, 20}));
}

TEST(Perplexity, RejectsBadInput) {
  const auto m = golden_model();
  const auto tokens = sequence(10);
  EXPECT_THROW(evaluate_perplexity(m, std::vector<int32_t>{1}), std::invalid_argument);
  EXPECT_THROW(evaluate_perplexity(m, std::vector<int32_t>{1, 40}), std::invalid_argument);
  EXPECT_THROW(evaluate_perplexity(m, tokens, windows(1)), std::invalid_argument);
  EXPECT_THROW(evaluate_perplexity(m, tokens, windows(65)), std::invalid_argument);
  EXPECT_THROW(evaluate_perplexity(m, tokens, windows(8, 9)), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::engine
