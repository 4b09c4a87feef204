// The linear-time draw against the definition written plainly: sort every token, cut, walk.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/token_draw.h"
#include "mlxd/core/random.h"

namespace mlxd::engine {
namespace {

int32_t reference_draw(const std::vector<float>& x, const sampling_params& p, double r) {
  std::vector<int32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  const double top = x[order[0]];
  std::vector<double> w;
  for (const int32_t t : order) w.push_back(std::exp((x[t] - top) / p.temperature));
  size_t keep = std::count_if(w.begin(), w.end(), [](double v) { return v > 0; });
  if (p.top_k > 0) keep = std::min<size_t>(keep, p.top_k);
  if (p.top_p < 1) {
    const double total = std::accumulate(w.begin(), w.begin() + keep, 0.0);
    double acc = 0;
    for (size_t i = 0; i < keep; ++i) {
      acc += w[i];
      if (acc > p.top_p * total) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p.min_p > 0) keep = std::count_if(w.begin(), w.begin() + keep, [&](double v) { return v >= p.min_p; });
  double u = r * std::accumulate(w.begin(), w.begin() + keep, 0.0);
  for (size_t i = 0; i < keep; ++i) {
    if (u < w[i]) return order[i];
    u -= w[i];
  }
  return order[keep - 1];
}

// Normal logits rounded to quarters (many ties, ordered by id) with every 97th token banned.
std::vector<float> logits(int vocab, float spread, uint64_t seed) {
  std::vector<float> x = random::normal({seed}, {vocab}, 0.0f, spread).to_vector<float>();
  for (float& v : x) v = std::round(v * 4) / 4;
  for (size_t i = 5; i < x.size(); i += 97) x[i] = -INFINITY;
  return x;
}

void expect_same_draws(int vocab, float spread, const sampling_params& p, int n_draws) {
  const std::vector<float> x = logits(vocab, spread, static_cast<uint64_t>(vocab) + p.top_k);
  for (int i = 0; i < n_draws; ++i) {
    const double r = (i + 0.5) / n_draws;
    ASSERT_EQ(detail::draw_token(x, p, r), reference_draw(x, p, r))
        << "vocab " << vocab << " spread " << spread << " temperature " << p.temperature << " top_k "
        << p.top_k << " top_p " << p.top_p << " min_p " << p.min_p << " r " << r;
  }
}

TEST(TokenDraw, MatchesSortingTheWholeVocabulary) {
  for (const float spread : {1.0f, 4.0f}) {
    for (const float temperature : {0.7f, 1.3f}) {
      for (const int top_k : {0, 50}) {
        for (const float top_p : {1.0f, 0.9f, 0.5f}) {
          for (const float min_p : {0.0f, 0.05f}) {
            sampling_params p;
            p.temperature = temperature;
            p.top_k = top_k;
            p.top_p = top_p;
            p.min_p = min_p;
            expect_same_draws(3000, spread, p, 200);
          }
        }
      }
    }
  }
}

TEST(TokenDraw, MatchesSortingALargeVocabulary) {
  sampling_params p;
  p.temperature = 0.8f;
  expect_same_draws(50000, 1.0f, p, 40);
  p.top_p = 0.95f;
  expect_same_draws(50000, 4.0f, p, 40);
}

TEST(TokenDraw, LogitsOfNoFiniteProbabilityAreAClearError) {
  sampling_params p;
  for (const float bad : {NAN, INFINITY}) {
    std::vector<float> x(10, bad);
    EXPECT_THROW(detail::draw_token(x, p, 0.5), std::invalid_argument);
  }
}

TEST(TokenDraw, NeverDrawsABannedToken) {
  std::vector<float> x(100, -INFINITY);
  x[42] = 0.0f;
  x[7] = -200.0f;  // no mass at this temperature: exp(-400) is 0 in float
  sampling_params p;
  p.temperature = 0.5f;
  for (const double r : {0.0, 0.5, 0.999999}) EXPECT_EQ(detail::draw_token(x, p, r), 42);
}

}  // namespace
}  // namespace mlxd::engine
