// The AVX-512 GEMM of gemm.h (flags set in src/core/CMakeLists.txt).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/quant/blocks.h"
#include "gemm.h"
#include "mlxd/core/allocator.h"
#include "mlxd/core/quantized.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::kernels {
namespace {

constexpr int64_t mr = gemm_mr, nr = gemm_nr, kc_max = gemm_kc_max;
// Above this many values op(a) is packed in slabs of rows (32 MB).
constexpr int64_t slab_values = int64_t{8} << 20;

__mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// gemm_kc_max zeros: the source of the rows and columns that pad a partial panel.
const float* zero_row() {
  static const std::vector<float> zeros(kc_max, 0.0f);
  return zeros.data();
}

// The register tile: c[rows, 32] (masked to the valid columns) = alpha * (c + a_panel b_panel) when `finish`,
// else the unscaled sum, which the next depth block loads again; so each output is one fma chain over k.
void tile(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int64_t rows, __mmask16 m0,
          __mmask16 m1, bool load_c, bool finish, float alpha) {
  __m512 c0[mr], c1[mr];
#pragma GCC unroll 14
  for (int64_t i = 0; i < mr; ++i) {
    const bool live = load_c && i < rows;
    c0[i] = live ? _mm512_maskz_loadu_ps(m0, c + i * ldc) : _mm512_setzero_ps();
    c1[i] = live ? _mm512_maskz_loadu_ps(m1, c + i * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 14
    for (int64_t i = 0; i < mr; ++i) {
      const __m512 av = _mm512_set1_ps(ap[i]);
      c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
    }
    ap += mr;
    bp += nr;
  }
  const __m512 scale = _mm512_set1_ps(finish ? alpha : 1.0f);
#pragma GCC unroll 14
  for (int64_t i = 0; i < mr; ++i) {
    if (i >= rows) break;
    _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_mul_ps(c0[i], scale));
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, _mm512_mul_ps(c1[i], scale));
  }
}

// dst[c * ld_dst + r] = src[r][c] for a 16 x 16 block (r in `keep`): unpack pairs, then 4 x 4 groups, then
// 128-bit lanes.
void transpose16(const float* const* src, int64_t c0, float* dst, int64_t ld_dst, __mmask16 keep) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    const __m512 a = _mm512_loadu_ps(src[i] + c0), b = _mm512_loadu_ps(src[i + 1] + c0);
    t[i] = _mm512_unpacklo_ps(a, b);
    t[i + 1] = _mm512_unpackhi_ps(a, b);
  }
  for (int i = 0; i < 16; i += 4) {  // u[i + j], lane l: rows i..i+3 of column 4 l + j
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88),
                 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    _mm512_mask_storeu_ps(dst + j * ld_dst, keep, _mm512_shuffle_f32x4(v0, v2, 0x88));
    _mm512_mask_storeu_ps(dst + (4 + j) * ld_dst, keep, _mm512_shuffle_f32x4(v1, v3, 0x88));
    _mm512_mask_storeu_ps(dst + (8 + j) * ld_dst, keep, _mm512_shuffle_f32x4(v0, v2, 0xDD));
    _mm512_mask_storeu_ps(dst + (12 + j) * ld_dst, keep, _mm512_shuffle_f32x4(v1, v3, 0xDD));
  }
}

// Depth of the packed blocks: as few blocks as fit kc_max, of equal depth in multiples of `unit`, so that no
// block is too shallow to pay for loading and storing its tiles of c (k = 288 is one block, not 256 + 32).
int64_t depth_block(int64_t k, int64_t unit) {
  const int64_t cap = std::max(unit, kc_max / unit * unit);
  const int64_t units = (k + unit - 1) / unit, blocks = (k + cap - 1) / cap;
  return (units + blocks - 1) / blocks * unit;
}

// Rows i0 .. i0 + rows (at most mr) of op(a), depth p0 .. p0 + kc, as one panel [p][i], zero rows past rows.
void pack_a_panel(const float* a, int64_t lda, bool trans_a, int64_t i0, int64_t rows, int64_t p0, int64_t kc,
                  float* panel) {
  if (trans_a) {
    const __mmask16 valid = lanes(rows), keep = lanes(mr);
    for (int64_t p = 0; p < kc; ++p) {
      _mm512_mask_storeu_ps(panel + p * mr, keep, _mm512_maskz_loadu_ps(valid, a + (p0 + p) * lda + i0));
    }
    return;
  }
  const float* src[16];
  for (int64_t i = 0; i < 16; ++i) src[i] = i < rows ? a + (i0 + i) * lda + p0 : zero_row();
  int64_t p = 0;
  for (; p + 16 <= kc; p += 16) transpose16(src, p, panel + p * mr, mr, lanes(mr));
  for (; p < kc; ++p) {
    for (int64_t i = 0; i < mr; ++i) panel[p * mr + i] = src[i][p];
  }
}

// All of op(a), packed once and read by every tile: depth block b (p0 = b * depth) holds the row panels one
// after another, panel r at b * m_pad * depth + r * mr * kc.
struct packed_a {
  float* data;
  int64_t m_pad;  // m rounded up to whole panels
  int64_t depth;  // of every block but the last
  float* panel(int64_t p0, int64_t kc, int64_t i) const { return data + p0 * m_pad + i * kc; }
};

// One thread's share: rows [i0, i1) (i0 a multiple of mr) and columns [j0, j1) of c, all of k.
void block(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k, float alpha, const packed_a& a,
           const gemm_b_packer& b, float* c, int64_t ldc) {
  const int64_t nw = j1 - j0, panels = (nw + nr - 1) / nr;
  // Packed operands come from the caching allocator: kept between products, so no fresh pages fault in.
  const allocator::buffer<float> b_buf(static_cast<size_t>(panels * a.depth * nr));
  float* bp = b_buf.data();
  for (int64_t p0 = 0; p0 < k; p0 += a.depth) {
    const int64_t kc = std::min(a.depth, k - p0);
    b.pack(p0, kc, j0, nw, bp);
    for (int64_t i = i0; i < i1; i += mr) {
      for (int64_t q = 0; q < panels; ++q) {
        const int64_t cols = std::min(nr, nw - q * nr);
        tile(kc, a.panel(p0, kc, i), bp + q * kc * nr, c + i * ldc + j0 + q * nr, ldc, std::min(mr, i1 - i),
             lanes(cols), lanes(cols - 16), p0 > 0, p0 + kc == k, alpha);
      }
    }
  }
}

// Packs columns of b that are rows of w: row(j, p0, kc, tmp) returns kc f32 values of row j from p0, in
// tmp (room for gemm_kc_max values) when it has to convert them. Columns past nc read a row of zeros.
template <class Row>
void pack_rows(int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out, const Row& row) {
  thread_local std::vector<float> tmp(16 * kc_max);
  const float* src[16];
  for (int64_t q = 0; q * nr < nc; ++q) {
    for (int64_t h = 0; h < nr; h += 16) {
      float* dst = out + q * kc * nr + h;
      for (int64_t r = 0; r < 16; ++r) {
        const int64_t c = q * nr + h + r;
        src[r] = c < nc ? row(j0 + c, p0, kc, tmp.data() + r * kc_max) : zero_row();
      }
      int64_t p = 0;
      for (; p + 16 <= kc; p += 16) transpose16(src, p, dst + p * nr, nr, 0xFFFF);
      for (; p < kc; ++p) {
        for (int64_t r = 0; r < 16; ++r) dst[p * nr + r] = src[r][p];
      }
    }
  }
}

// The rows of one slab: op(a) [m, k] packed once, in parallel, into a block of the caching allocator, then
// tiles of c.
void slab(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool trans_a,
          const gemm_b_packer& b, float* c, int64_t ldc) {
  // Tiles of up to 64 x 8 register tiles (896 x 256), of even size (n = 288 is 160 + 128, not 256 + 32, so
  // that no tile reads its packed a for one panel of b), split until every thread has a few, columns first
  // down to 4 panels. Each tile packs its own columns of b once per depth block; no bits depend on tiling.
  auto ceil_div = [](int64_t x, int64_t d) { return (x + d - 1) / d; };
  const int64_t row_panels = ceil_div(m, mr), col_panels = ceil_div(n, nr);
  int64_t row_tiles = ceil_div(row_panels, 64), col_tiles = ceil_div(col_panels, 8);
  while (row_tiles * col_tiles < 4 * num_threads()) {
    if (ceil_div(col_panels, col_tiles) >= 8) {
      col_tiles *= 2;
    } else if (ceil_div(row_panels, row_tiles) >= 8) {
      row_tiles *= 2;
    } else {
      break;
    }
  }
  const int64_t rows = ceil_div(row_panels, row_tiles) * mr, cols = ceil_div(col_panels, col_tiles) * nr;
  const int64_t m_pad = row_panels * mr, depth = depth_block(k, b.unit);
  const int64_t depth_blocks = ceil_div(k, depth);
  const allocator::buffer<float> a_buf(static_cast<size_t>(m_pad * k));
  const packed_a pa{a_buf.data(), m_pad, depth};
  parallel_for(row_panels * depth_blocks, 16, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t i = u % row_panels * mr, p0 = u / row_panels * depth;
      const int64_t kc = std::min(depth, k - p0);
      pack_a_panel(a, lda, trans_a, i, std::min(mr, m - i), p0, kc, pa.panel(p0, kc, i));
    }
  });
  const int64_t col_blocks = ceil_div(n, cols);
  parallel_for(ceil_div(m, rows) * col_blocks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = t / col_blocks * rows, j0 = t % col_blocks * cols;
      block(i0, std::min(m, i0 + rows), j0, std::min(n, j0 + cols), k, alpha, pa, b, c, ldc);
    }
  });
}

}  // namespace

void gemm_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool trans_a,
                 const gemm_b_packer& b, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  // Slabs of rows whose packed a stays under 32 MB (a prompt's whole a; a training step's [vocab, tokens]
  // gradient product in several), each packing b again: 1 / (slab rows) of the multiply-adds.
  const int64_t slab_rows = std::max<int64_t>(64 * mr, slab_values / std::max<int64_t>(k, 1) / mr * mr);
  for (int64_t r = 0; r < m; r += slab_rows) {
    slab(std::min(slab_rows, m - r), n, k, alpha, trans_a ? a + r : a + r * lda, lda, trans_a, b, c + r * ldc,
         ldc);
  }
}

void sgemm_avx512(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  // A training step's [tokens, vocab] x [vocab, dim]: packing op(a) would write and read back hundreds of MB
  // (its slabs cannot be shorter than a tile). fma(x, y, s) = fma(y, x, s), so c^T has the same bits.
  if (n < m && m * k > slab_values) {
    const allocator::buffer<float> ct(static_cast<size_t>(n * m));
    gemm_avx512(n, m, k, alpha, b, ldb, !trans_b, pack_f32(a, lda, !trans_a), ct.data(), m);
    parallel_for(m, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t j0 = 0; j0 < n; j0 += 64) {
        for (int64_t i = i0; i < i1; ++i) {
          for (int64_t j = j0; j < std::min(n, j0 + 64); ++j) c[i * ldc + j] = ct.data()[j * m + i];
        }
      }
    });
    return;
  }
  gemm_avx512(m, n, k, alpha, a, lda, trans_a, pack_f32(b, ldb, trans_b), c, ldc);
}

gemm_b_packer pack_f32(const float* b, int64_t ldb, bool trans_b) {
  if (trans_b) {
    auto pack = [b, ldb](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
      pack_rows(p0, kc, j0, nc, out,
                [b, ldb](int64_t j, int64_t p, int64_t, float*) { return b + j * ldb + p; });
    };
    return {pack, 16};
  }
  auto pack = [b, ldb](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
    for (int64_t q = 0; q * nr < nc; ++q) {
      float* panel = out + q * kc * nr;
      const int64_t cols = std::min(nr, nc - q * nr);
      const __mmask16 m0 = lanes(cols), m1 = lanes(cols - 16);
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b + (p0 + p) * ldb + j0 + q * nr;
        _mm512_store_ps(panel + p * nr, _mm512_maskz_loadu_ps(m0, src));
        _mm512_store_ps(panel + p * nr + 16, _mm512_maskz_loadu_ps(m1, src + 16));
      }
    }
  };
  return {pack, 16};
}

gemm_b_packer pack_f16_rows(const uint16_t* w, int64_t ld) {
  auto pack = [w, ld](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
    pack_rows(p0, kc, j0, nc, out, [w, ld](int64_t j, int64_t p, int64_t len, float* tmp) {
      const uint16_t* src = w + j * ld + p;
      for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 mask = lanes(len - i);
        _mm512_storeu_ps(tmp + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, src + i)));
      }
      return static_cast<const float*>(tmp);
    });
  };
  return {pack, 16};
}

gemm_b_packer pack_bf16_rows(const uint16_t* w, int64_t ld) {
  auto pack = [w, ld](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
    pack_rows(p0, kc, j0, nc, out, [w, ld](int64_t j, int64_t p, int64_t len, float* tmp) {
      const uint16_t* src = w + j * ld + p;
      for (int64_t i = 0; i < len; i += 16) {
        const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes(len - i), src + i));
        _mm512_storeu_ps(tmp + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
      }
      return static_cast<const float*>(tmp);
    });
  };
  return {pack, 16};
}

gemm_b_packer pack_quantized_rows(dtype t, const void* w, int64_t row_bytes) {
  const auto* base = static_cast<const uint8_t*>(w);
  const int64_t block = block_size(t), bytes = block_bytes(t);
  auto pack = [=](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
    pack_rows(p0, kc, j0, nc, out, [=](int64_t j, int64_t p, int64_t len, float* tmp) {
      const uint8_t* blocks = base + j * row_bytes + p / block * bytes;
      if (t == dtype::q8_0) {
        const auto* b = reinterpret_cast<const quant::block_q8_0*>(blocks);
        for (int64_t i = 0; i < len / quant::qk; ++i) {
          const __m512 d = _mm512_set1_ps(_cvtsh_ss(b[i].d));
          for (int h = 0; h < 2; ++h) {
            const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].q + 16 * h));
            _mm512_storeu_ps(tmp + i * quant::qk + 16 * h,
                             _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
          }
        }
      } else if (t == dtype::q4_0) {
        const auto* b = reinterpret_cast<const quant::block_q4_0*>(blocks);
        const __m512i low = _mm512_set1_epi32(15), eight = _mm512_set1_epi32(8);
        for (int64_t i = 0; i < len / quant::qk; ++i) {
          const __m512 d = _mm512_set1_ps(_cvtsh_ss(b[i].d));
          const __m512i bytes16 =
              _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs)));
          const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(bytes16, low), eight);
          const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(bytes16, 4), eight);
          _mm512_storeu_ps(tmp + i * quant::qk, _mm512_mul_ps(d, _mm512_cvtepi32_ps(lo)));
          _mm512_storeu_ps(tmp + i * quant::qk + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(hi)));
        }
      } else {
        dequantize_blocks(t, blocks, tmp, len);
      }
      return static_cast<const float*>(tmp);
    });
  };
  return {pack, block};
}

}  // namespace mlxd::kernels
