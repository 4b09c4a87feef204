// Plain quantize/dequantize of ggml's block layouts; the quantizers follow ggml's quantize_row_*_ref.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/detail.h"
#include "core/quant/blocks.h"
#include "mlxd/core/quantized.h"

namespace mlxd {
namespace {

using namespace quant;

void quantize_q8_0(const float* x, block_q8_0* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += qk) {
    float amax = 0;
    for (int i = 0; i < qk; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int i = 0; i < qk; ++i) y[b].q[i] = static_cast<int8_t>(std::round(x[i] * id));
  }
}

void quantize_q4_0(const float* x, block_q4_0* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += qk) {
    float amax = 0, max = 0;  // max keeps the sign of the value of largest magnitude
    for (int i = 0; i < qk; ++i) {
      if (amax < std::fabs(x[i])) amax = std::fabs(x[i]), max = x[i];
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int i = 0; i < qk / 2; ++i) {
      // ggml truncates x * id + 8.5 (always >= 0.5 here) and caps at 15.
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[i] * id + 8.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[i + qk / 2] * id + 8.5f)));
      y[b].qs[i] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// ggml's make_qkx2_quants: an asymmetric n-value quantizer onto 0..nmax with a scale and a min (returned as
// a positive offset), chosen by trying nstep + 1 scales around the range and keeping the one of least
// weighted squared error, each refined by weighted least squares.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* levels, float& the_min,
                       uint8_t* trial, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(levels, levels + n, uint8_t{0});
    the_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
    levels[i] = static_cast<uint8_t>(l);
    const float diff = scale * static_cast<float>(l) + min - x[i];
    best_error += weights[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      const float w = weights[i], fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float error = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * static_cast<float>(trial[i]) + this_min - x[i];
      error += weights[i] * (diff * diff);
    }
    if (error < best_error) {
      std::copy(trial, trial + n, levels);
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  the_min = -min;
  return scale;
}

void quantize_q4_k(const float* x, block_q4_k* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += qk_k) {
    uint8_t levels[qk_k], trial[32];
    float weights[32], scales[8], mins[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      float sum_x2 = 0;
      for (int i = 0; i < 32; ++i) sum_x2 += xs[i] * xs[i];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int i = 0; i < 32; ++i) weights[i] = av_x + std::fabs(xs[i]);
      scales[j] = make_qkx2_quants(32, 15, xs, weights, levels + 32 * j, mins[j], trial, -1.0f, 0.1f, 20);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    block_q4_k& out = y[b];
    std::memset(out.scales, 0, sizeof out.scales);
    for (int j = 0; j < 8; ++j) {
      // ggml stores the rounded value in a uint8_t before capping it at 63.
      const int ls = std::min(63, nearest_int(inv_scale * scales[j]) & 0xff);
      const int lm = std::min(63, nearest_int(inv_min * mins[j]) & 0xff);
      if (j < 4) {
        out.scales[j] = static_cast<uint8_t>(ls);
        out.scales[j + 4] = static_cast<uint8_t>(lm);
      } else {
        out.scales[j + 4] = static_cast<uint8_t>((ls & 0xf) | ((lm & 0xf) << 4));
        out.scales[j - 4] = static_cast<uint8_t>(out.scales[j - 4] | ((ls >> 4) << 6));
        out.scales[j] = static_cast<uint8_t>(out.scales[j] | ((lm >> 4) << 6));
      }
    }
    out.d = f32_to_f16(max_scale / 63.0f);
    out.dmin = f32_to_f16(max_min / 63.0f);
    // Requantize against the stored (rounded) scales and mins.
    for (int j = 0; j < 8; ++j) {
      int sc = 0, m = 0;
      q4_k_scale_min(j, out.scales, sc, m);
      const float d = f16_to_f32(out.d) * static_cast<float>(sc);
      if (d == 0.0f) continue;
      const float dm = f16_to_f32(out.dmin) * static_cast<float>(m);
      for (int i = 0; i < 32; ++i) {
        levels[32 * j + i] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + i] + dm) / d), 0, 15));
      }
    }
    for (int g = 0; g < 4; ++g) {
      for (int i = 0; i < 32; ++i) {
        out.qs[32 * g + i] = static_cast<uint8_t>(levels[64 * g + i] | (levels[64 * g + 32 + i] << 4));
      }
    }
  }
}

// ggml's make_qx_quants with rmse_type 1: a symmetric quantizer onto -nmax..nmax-1 (returned offset by nmax)
// whose scale is the x^2-weighted least-squares fit, searched over 19 candidate scales.
float make_qx_quants(int n, int nmax, const float* x, int8_t* levels) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  }
  if (amax < 1e-15f) {
    std::fill(levels, levels + n, int8_t{0});
    return 0.0f;
  }
  const auto level_at = [&](float iscale, int i) {
    return std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
  };
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = level_at(iscale, i);
    levels[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i], fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i], fl = static_cast<float>(level_at(iscale, i));
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) levels[i] = static_cast<int8_t>(level_at(iscale, i) + nmax);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q6_k(const float* x, block_q6_k* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += qk_k) {
    int8_t levels[qk_k];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int g = 0; g < 16; ++g) {
      scales[g] = make_qx_quants(16, 32, x + 16 * g, levels + 16 * g);
      if (std::fabs(scales[g]) > max_abs_scale) max_abs_scale = std::fabs(scales[g]), max_scale = scales[g];
    }
    block_q6_k& out = y[b];
    std::memset(&out, 0, sizeof out);
    if (max_abs_scale < 1e-15f) continue;  // an all-zero block
    const float iscale = -128.0f / max_scale;
    out.d = f32_to_f16(1 / iscale);
    for (int g = 0; g < 16; ++g)
      out.scales[g] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[g])));
    for (int g = 0; g < 16; ++g) {
      const float d = f16_to_f32(out.d) * static_cast<float>(out.scales[g]);
      if (d == 0.0f) continue;
      for (int i = 0; i < 16; ++i) {
        levels[16 * g + i] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * g + i] / d), -32, 31) + 32);
      }
    }
    for (int half = 0; half < 2; ++half) {
      const int8_t* l = levels + 128 * half;
      uint8_t* ql = out.ql + 64 * half;
      uint8_t* qh = out.qh + 32 * half;
      for (int i = 0; i < 32; ++i) {
        ql[i] = static_cast<uint8_t>((l[i] & 0xf) | ((l[i + 64] & 0xf) << 4));
        ql[i + 32] = static_cast<uint8_t>((l[i + 32] & 0xf) | ((l[i + 96] & 0xf) << 4));
        qh[i] = static_cast<uint8_t>((l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) |
                                     ((l[i + 96] >> 4) << 6));
      }
    }
  }
}

void dequantize_q8_0(const block_q8_0* x, float* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, y += qk) {
    const float d = f16_to_f32(x[b].d);
    for (int i = 0; i < qk; ++i) y[i] = static_cast<float>(x[b].q[i]) * d;
  }
}

void dequantize_q4_0(const block_q4_0* x, float* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, y += qk) {
    const float d = f16_to_f32(x[b].d);
    for (int i = 0; i < qk / 2; ++i) {
      y[i] = static_cast<float>((x[b].qs[i] & 0xf) - 8) * d;
      y[i + qk / 2] = static_cast<float>((x[b].qs[i] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_k(const block_q4_k* x, float* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    for (int g = 0; g < 4; ++g) {
      const uint8_t* q = x[b].qs + 32 * g;
      int sc = 0, m = 0;
      q4_k_scale_min(2 * g, x[b].scales, sc, m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      q4_k_scale_min(2 * g + 1, x[b].scales, sc, m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int i = 0; i < 32; ++i) *y++ = d1 * static_cast<float>(q[i] & 0xf) - m1;
      for (int i = 0; i < 32; ++i) *y++ = d2 * static_cast<float>(q[i] >> 4) - m2;
    }
  }
}

void dequantize_q6_k(const block_q6_k* x, float* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int half = 0; half < 2; ++half, y += 128) {
      const uint8_t* ql = x[b].ql + 64 * half;
      const uint8_t* qh = x[b].qh + 32 * half;
      const int8_t* sc = x[b].scales + 8 * half;
      for (int i = 0; i < 32; ++i) {
        const int g = i / 16;
        const int q1 = ((ql[i] & 0xf) | (((qh[i] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[i + 32] & 0xf) | (((qh[i] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) - 32;
        y[i] = d * static_cast<float>(sc[g]) * static_cast<float>(q1);
        y[i + 32] = d * static_cast<float>(sc[g + 2]) * static_cast<float>(q2);
        y[i + 64] = d * static_cast<float>(sc[g + 4]) * static_cast<float>(q3);
        y[i + 96] = d * static_cast<float>(sc[g + 6]) * static_cast<float>(q4);
      }
    }
  }
}

int64_t checked_blocks(const char* op, dtype t, int64_t n) {
  if (!is_quantized(t)) detail::fail(op, name(t), " is not a block-quantized dtype");
  if (n < 0 || n % block_size(t) != 0)
    detail::fail(op, n, " values are not a whole number of ", name(t), " blocks of ", block_size(t));
  return n / block_size(t);
}

}  // namespace

void quantize_blocks(dtype t, const float* x, void* out, int64_t n) {
  const int64_t n_blocks = checked_blocks("quantize_blocks", t, n);
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) detail::fail("quantize_blocks", "value ", i, " is ", x[i], ", not finite");
  }
  switch (t) {
    case dtype::q8_0:
      return quantize_q8_0(x, static_cast<block_q8_0*>(out), n_blocks);
    case dtype::q4_0:
      return quantize_q4_0(x, static_cast<block_q4_0*>(out), n_blocks);
    case dtype::q4_k:
      return quantize_q4_k(x, static_cast<block_q4_k*>(out), n_blocks);
    default:
      return quantize_q6_k(x, static_cast<block_q6_k*>(out), n_blocks);
  }
}

void dequantize_blocks(dtype t, const void* blocks, float* out, int64_t n) {
  const int64_t n_blocks = checked_blocks("dequantize_blocks", t, n);
  switch (t) {
    case dtype::q8_0:
      return dequantize_q8_0(static_cast<const block_q8_0*>(blocks), out, n_blocks);
    case dtype::q4_0:
      return dequantize_q4_0(static_cast<const block_q4_0*>(blocks), out, n_blocks);
    case dtype::q4_k:
      return dequantize_q4_k(static_cast<const block_q4_k*>(blocks), out, n_blocks);
    default:
      return dequantize_q6_k(static_cast<const block_q6_k*>(blocks), out, n_blocks);
  }
}

}  // namespace mlxd
