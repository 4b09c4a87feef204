#include "token_draw.h"

#include <algorithm>
#include <cmath>

#include "mlxd/core/allocator.h"
#include "mlxd/core/row_ops.h"

namespace mlxd::engine::detail {
namespace {

// Ranges this short are sorted and walked one token at a time.
constexpr size_t walk_length = 32;

struct token {
  float x;  // logit after bias and penalties
  int32_t id;
  float p;  // exp((x - max) / temperature)
};

// Descending logit, ties to the lower id: a strict total order, so every selection below is deterministic.
bool before(const token& a, const token& b) {
  return a.x > b.x || (a.x == b.x && a.id < b.id);
}

double mass(std::span<const token> t) {
  double s = 0;
  for (const token& e : t) s += e.p;
  return s;
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
  }
  // Keeps the shortest prefix whose mass passes `fraction` of the kept mass.
  void keep_mass(double fraction) { end_ = crossing(fraction * mass(kept())) + 1; }
  // Keeps the tokens of probability at least `floor` (the top token's is 1).
  void keep_above(float floor) {
    keep([floor](const token& t) { return t.p >= floor; });
  }
  int32_t draw(double r) { return tokens_[crossing(r * mass(kept()))].id; }

 private:
  std::span<const token> kept() const { return {tokens_.data(), end_}; }
  std::span<token>::iterator kept_end() { return tokens_.begin() + static_cast<std::ptrdiff_t>(end_); }
  template <class Pred>
  void keep(Pred pred) {
    end_ = static_cast<size_t>(std::partition(tokens_.begin(), kept_end(), pred) - tokens_.begin());
  }
  // Rearranges the kept tokens so that the walk in descending order, up to the token at which its running
  // mass passes u, comes first (in some order); returns that token's index (the last one when rounding
  // leaves u beyond the total).
  size_t crossing(double u) {
    size_t lo = 0, hi = end_;
    while (hi - lo > walk_length) {
      // The median of three tokens as the pivot; it joins the higher side, so both sides hold a token.
      token a = tokens_[lo], b = tokens_[lo + (hi - lo) / 2], c = tokens_[hi - 1];
      if (before(b, a)) std::swap(a, b);
      if (before(c, b)) std::swap(b, c);
      if (before(b, a)) std::swap(a, b);
      const auto first = tokens_.begin() + static_cast<std::ptrdiff_t>(lo);
      const auto mid = std::partition(first, tokens_.begin() + static_cast<std::ptrdiff_t>(hi),
                                      [&](const token& t) { return !before(b, t); });
      const double m = mass({&*first, static_cast<size_t>(mid - first)});
      if (u < m) {
        hi = static_cast<size_t>(mid - tokens_.begin());
      } else {
        u -= m;
        lo = static_cast<size_t>(mid - tokens_.begin());
      }
    }
    std::sort(tokens_.begin() + static_cast<std::ptrdiff_t>(lo),
              tokens_.begin() + static_cast<std::ptrdiff_t>(hi), before);
    for (size_t i = lo; i < hi; ++i) {
      if (u < tokens_[i].p) return i;
      u -= tokens_[i].p;
    }
    return hi - 1;
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
