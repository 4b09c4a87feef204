#include <algorithm>
#include <cmath>
#include <numbers>

#include "detail.h"
#include "elementwise.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace {

// cos/sin of (offset + positions[s]) * scale * inverse frequency, computed in double: [n, dims / 2] each.
void angle_tables(const rope_options& o, const std::vector<int64_t>& positions, int dims,
                  std::vector<float>& cos_t, std::vector<float>& sin_t) {
  const auto seq = static_cast<int64_t>(positions.size());
  const int half = dims / 2;
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    inv_freq[i] = o.inv_freqs.empty() ? std::pow(static_cast<double>(o.base), -2.0 * i / dims)
                                      : static_cast<double>(o.inv_freqs[i]);
  }
  cos_t.resize(static_cast<size_t>(seq * half));
  sin_t.resize(cos_t.size());
  parallel_for(seq, 64, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      const double pos = static_cast<double>(o.offset + positions[s]) * o.scale;
      for (int i = 0; i < half; ++i) {
        cos_t[s * half + i] = static_cast<float>(std::cos(pos * inv_freq[i]));
        sin_t[s * half + i] = static_cast<float>(std::sin(pos * inv_freq[i]));
      }
    }
  });
}

// The tables of the last call on this thread. A training step rotates q and k of every layer, forward and
// backward, at the same positions: one computation serves them all (sin/cos were 1% of a step, and the
// tables' fresh pages about 1500 faults a step).
struct angle_cache {
  bool valid = false;
  int dims = 0;
  float base = 0, scale = 0;
  int64_t offset = 0;
  std::vector<float> inv_freqs;
  std::vector<int64_t> positions;
  std::vector<float> cos_t, sin_t;
};
const angle_cache& cached_angle_tables(const rope_options& o, const std::vector<int64_t>& positions,
                                       int dims) {
  thread_local angle_cache c;
  if (c.valid && c.dims == dims && c.base == o.base && c.scale == o.scale && c.offset == o.offset &&
      c.inv_freqs == o.inv_freqs && c.positions == positions) {
    return c;
  }
  c.valid = false;  // stays so if the computation throws
  angle_tables(o, positions, dims, c.cos_t, c.sin_t);
  c.dims = dims;
  c.base = o.base;
  c.scale = o.scale;
  c.offset = o.offset;
  c.inv_freqs = o.inv_freqs;
  c.positions = positions;
  c.valid = true;
  return c;
}

// Rotates by +angle, or by -angle (the transpose) when `inverse`. Row r (of x viewed as [rows, head_dim])
// takes positions[(r / inner) % positions.size()].
array rope_apply(const array& x, const rope_options& o, const std::vector<int64_t>& positions, int64_t inner,
                 bool inverse) {
  const int64_t head_dim = x.shape(-1), seq = static_cast<int64_t>(positions.size());
  const int dims = o.dims == 0 ? static_cast<int>(head_dim) : o.dims;
  const angle_cache& tables = cached_angle_tables(o, positions, dims);
  const std::vector<float>& cos_t = tables.cos_t;
  const std::vector<float>& sin_t = tables.sin_t;
  const array in = detail::prepare(x, dtype::f32);
  array out = array::empty(in.shape(), dtype::f32);
  const float* px = in.data<float>();
  float* py = out.mutable_data<float>();
  const int half = dims / 2;
  const int64_t rows = in.size() / head_dim;
  const float sign = inverse ? -1.0f : 1.0f;
  parallel_for(rows, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = px + r * head_dim;
      float* yr = py + r * head_dim;
      const int64_t p = (r / inner) % seq;
      const float* c = cos_t.data() + p * half;
      const float* s = sin_t.data() + p * half;
      if (o.traditional) {  // interleaved pairs (x[2i], x[2i+1])
        for (int i = 0; i < half; ++i) {
          const float x1 = xr[2 * i], x2 = xr[2 * i + 1], si = sign * s[i];
          yr[2 * i] = x1 * c[i] - x2 * si;
          yr[2 * i + 1] = x1 * si + x2 * c[i];
        }
      } else {  // halves (x[i], x[i + half])
        for (int i = 0; i < half; ++i) {
          const float x1 = xr[i], x2 = xr[i + half], si = sign * s[i];
          yr[i] = x1 * c[i] - x2 * si;
          yr[i + half] = x1 * si + x2 * c[i];
        }
      }
      for (int64_t i = dims; i < head_dim; ++i) yr[i] = xr[i];
    }
  });
  return x.type() == dtype::f32 || !is_floating(x.type()) ? out : astype(out, x.type());
}

void check_rope(const char* op, const array& x, const rope_options& opts) {
  const int dims = opts.dims == 0 ? static_cast<int>(x.shape(-1)) : opts.dims;
  if (dims <= 0 || dims % 2 != 0 || dims > x.shape(-1)) {
    detail::fail(op, "dims ", dims, " must be even and at most head_dim of ", x.to_string());
  }
  if (!opts.inv_freqs.empty() && static_cast<int>(opts.inv_freqs.size()) != dims / 2) {
    detail::fail(op, "inv_freqs holds ", opts.inv_freqs.size(), " values, need dims / 2 = ", dims / 2);
  }
  if (!is_floating(x.type())) detail::fail(op, "input must be a float array, got ", x.to_string());
}

array rope_recorded(const array& x, const rope_options& opts, std::vector<int64_t> positions, int64_t inner) {
  array out;
  {
    autograd::no_grad guard;
    out = rope_apply(x, opts, positions, inner, false);
  }
  if (autograd::is_recording()) {
    autograd::record(out, {x}, [opts, positions = std::move(positions), inner](const array& ct) {
      return std::vector<array>{rope_apply(ct, opts, positions, inner, true)};
    });
  }
  return out;
}

}  // namespace

array rope(const array& x, const rope_options& opts) {
  if (x.ndim() < 2) detail::fail("rope", "input must be [..., seq, head_dim], got ", x.to_string());
  check_rope("rope", x, opts);
  std::vector<int64_t> positions(static_cast<size_t>(x.shape(-2)));
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int64_t>(i);
  return rope_recorded(x, opts, std::move(positions), 1);
}

array rope_at(const array& x, const array& positions, const rope_options& opts) {
  const int p_nd = positions.ndim();
  if (p_nd < 1 || p_nd >= x.ndim() ||
      !std::equal(positions.shape().begin(), positions.shape().end(), x.shape().begin())) {
    detail::fail("rope_at", "positions ", positions.to_string(), " must match the leading axes of ",
                 x.to_string());
  }
  if (positions.type() != dtype::i32 && positions.type() != dtype::i64)
    detail::fail("rope_at", "positions must be i32 or i64, got ", positions.to_string());
  check_rope("rope_at", x, opts);
  std::vector<int64_t> pos = positions.to_vector<int64_t>();
  for (int64_t p : pos) {
    if (p < 0) detail::fail("rope_at", "negative position ", p);
  }
  if (pos.empty()) return rope_recorded(x, opts, {0}, 1);
  const int64_t inner = (x.size() / x.shape(-1)) / static_cast<int64_t>(pos.size());
  return rope_recorded(x, opts, std::move(pos), inner);
}

std::vector<float> llama3_rope_freqs(int dims, float base, float factor, float low_freq_factor,
                                     float high_freq_factor, int original_max_positions) {
  if (dims <= 0 || dims % 2 || factor <= 0 || low_freq_factor >= high_freq_factor) {
    detail::fail("llama3_rope_freqs", "invalid scaling: dims ", dims, ", factor ", factor, ", low ",
                 low_freq_factor, ", high ", high_freq_factor);
  }
  const double low_wavelen = original_max_positions / static_cast<double>(low_freq_factor);
  const double high_wavelen = original_max_positions / static_cast<double>(high_freq_factor);
  std::vector<float> freqs(dims / 2);
  for (int i = 0; i < dims / 2; ++i) {
    const double freq = std::pow(static_cast<double>(base), -2.0 * i / dims);
    const double wavelen = 2 * std::numbers::pi / freq;
    double f = freq;
    if (wavelen > low_wavelen) {
      f = freq / factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth =
          (original_max_positions / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      f = (1 - smooth) * freq / factor + smooth * freq;
    }
    freqs[i] = static_cast<float>(f);
  }
  return freqs;
}

}  // namespace mlxd
