#include "token_draw.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <stdexcept>

#include "mlxd/core/allocator.h"
#include "mlxd/core/row_ops.h"

namespace mlxd::engine::detail {
namespace {

// Buckets of probability for the draw: p in (0, 1] by its float's bits without the low 19 (a positive
// float's bits grow with its value).
constexpr size_t n_buckets = (0x3F800000u >> 19) + 1;
size_t bucket(float p) {
  return std::min<size_t>(std::bit_cast<uint32_t>(p) >> 19, n_buckets - 1);
}

struct token {
  float x;  // logit after bias and penalties
  int32_t id;
  float p;  // exp((x - max) / temperature)
};

// Descending logit, ties to the lower id: a strict total order, so every selection below is deterministic.
bool before(const token& a, const token& b) {
  return a.x > b.x || (a.x == b.x && a.id < b.id);
}

class candidates {
 public:
  explicit candidates(std::span<const float> x) : buffer_(x.size()), tokens_(buffer_.span()), end_(x.size()) {
    for (size_t i = 0; i < x.size(); ++i) tokens_[i] = {x[i], static_cast<int32_t>(i), 0.0f};
  }

  // Keeps the k highest.
  void keep_top(size_t k) {
    if (k == 0 || k >= end_) return;
    // A heap of k is one pass for the usual small k (40: twice as fast as selecting); selection beyond.
    const auto kth = tokens_.begin() + static_cast<std::ptrdiff_t>(k);
    if (k <= 256)
      std::partial_sort(tokens_.begin(), kth, kept_end(), before);
    else
      std::nth_element(tokens_.begin(), kth, kept_end(), before);
    end_ = k;
  }
  // Gives the kept tokens their weights exp((x - max) / temperature) (after top-k, only k exps), and drops
  // those of no mass (banned, or too far below the top to register): they can never be drawn.
  void weigh(float temperature) {
    float top = -INFINITY;
    for (const token& t : kept()) top = std::max(top, t.x);
    const allocator::buffer<float> p(end_);
    for (size_t i = 0; i < end_; ++i) p.data()[i] = (tokens_[i].x - top) / temperature;
    exp_row(p.span(), p.span());
    for (size_t i = 0; i < end_; ++i) tokens_[i].p = p.data()[i];
    keep([](const token& t) { return t.p > 0; });
    if (end_ == 0)
      throw std::invalid_argument("[sampling] no token has a finite probability (NaN or infinite logits)");
  }
  // Keeps the shortest prefix whose mass passes `fraction` of the kept mass: the higher buckets, and the
  // crossing bucket's tokens up to the crossing.
  void keep_mass(double fraction) {
    const point at = locate(fraction);
    end_ = static_cast<size_t>(walk(sort_bucket(at), at.count, at.rest) - tokens_.data()) + 1;
  }
  // Keeps the tokens of probability at least `floor` (the top token's is 1).
  void keep_above(float floor) {
    keep([floor](const token& t) { return t.p >= floor; });
  }
  // The token at which the walk's running mass passes r of the kept mass: only the bucket holding it is
  // sorted.
  int32_t draw(double r) {
    const point at = locate(r);
    return walk(sort_bucket(at), at.count, at.rest)->id;
  }

 private:
  // Where a walk stops: the bucket, the mass left to walk in it, and its tokens.
  struct point {
    size_t bucket;
    double rest;
    uint32_t count;  // tokens in the bucket
  };
  std::span<const token> kept() const { return {tokens_.data(), end_}; }
  std::span<token>::iterator kept_end() { return tokens_.begin() + static_cast<std::ptrdiff_t>(end_); }
  // Rearranges the kept tokens as the higher buckets (in some order), then at's bucket sorted, then the rest;
  // returns the first of at's bucket.
  const token* sort_bucket(const point& at) {
    const auto higher_end =
        std::partition(tokens_.begin(), kept_end(), [&](const token& t) { return bucket(t.p) > at.bucket; });
    const auto in_end =
        std::partition(higher_end, kept_end(), [&](const token& t) { return bucket(t.p) == at.bucket; });
    std::sort(higher_end, in_end, before);
    return &*higher_end;
  }
  // The token of n sorted ones at which their running mass passes u (the last when rounding carried u past
  // their total).
  static const token* walk(const token* sorted, size_t n, double u) {
    for (size_t i = 0; i + 1 < n; ++i) {
      if (u < sorted[i].p) return sorted + i;
      u -= sorted[i].p;
    }
    return sorted + n - 1;
  }
  template <class Pred>
  void keep(Pred pred) {
    end_ = static_cast<size_t>(std::partition(tokens_.begin(), kept_end(), pred) - tokens_.begin());
  }
  // Where the walk down the kept tokens passes `fraction` of their mass, to a bucket: one pass sums the
  // mass of each bucket, then the buckets are walked from the highest. `rest` is the mass left to walk in
  // that bucket; past the total (rounding), the lowest bucket that holds a token, with all its mass.
  point locate(double fraction) const {
    std::array<double, n_buckets> mass{};
    std::array<uint32_t, n_buckets> count{};
    for (const token& t : kept()) {
      mass[bucket(t.p)] += t.p;
      ++count[bucket(t.p)];
    }
    double total = 0;
    for (size_t b = n_buckets; b-- > 0;) total += mass[b];
    point at{0, fraction * total, 0};
    for (size_t b = n_buckets; b-- > 0;) {
      if (count[b] == 0) continue;
      at.bucket = b;
      at.count = count[b];
      if (at.rest < mass[b]) break;
      at.rest -= mass[b];
    }
    return at;
  }

  // Vocabulary-sized scratch from the caching allocator: fresh pages cost 13-20 us each to fault in here.
  allocator::buffer<token> buffer_;
  std::span<token> tokens_;
  size_t end_;  // tokens_[0, end_) are the kept candidates
};

}  // namespace

int32_t draw_token(std::span<const float> x, const sampling_params& p, double r) {
  candidates c(x);
  if (p.top_k > 0) c.keep_top(static_cast<size_t>(p.top_k));
  c.weigh(p.temperature);
  if (p.top_p < 1) c.keep_mass(p.top_p);
  if (p.min_p > 0) c.keep_above(p.min_p);
  return c.draw(r);
}

}  // namespace mlxd::engine::detail
