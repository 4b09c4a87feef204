// The AVX-512 GEMM of gemm.h (flags set in src/core/CMakeLists.txt).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/quant/blocks.h"
#include "gemm.h"
#include "mlxd/core/quantized.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::kernels {
namespace {

constexpr int64_t mr = gemm_mr, nr = gemm_nr, kc_max = gemm_kc;

__mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// gemm_kc zeros: the source of the rows and columns that pad a partial panel.
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

// All of op(a), packed once and read by every tile: depth block b (p0 = b * gemm_kc) holds the row panels
// one after another, panel r at b * m_pad * gemm_kc + r * mr * kc.
struct packed_a {
  float* data;
  int64_t m_pad;  // m rounded up to whole panels
  float* panel(int64_t p0, int64_t kc, int64_t i) const { return data + p0 * m_pad + i * kc; }
};

// One thread's share: rows [i0, i1) (i0 a multiple of mr) and columns [j0, j1) of c, all of k.
void block(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k, float alpha, const packed_a& a,
           const gemm_pack_b& pack_b, float* c, int64_t ldc) {
  const int64_t nw = j1 - j0, panels = (nw + nr - 1) / nr;
  thread_local std::vector<float> b_buf;
  // 64-byte alignment for the b panels' aligned loads: over-allocate and round the pointer up.
  b_buf.resize(static_cast<size_t>(panels * kc_max * nr + 16));
  float* bp = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(b_buf.data()) + 63) & ~uintptr_t{63});
  for (int64_t p0 = 0; p0 < k; p0 += kc_max) {
    const int64_t kc = std::min(kc_max, k - p0);
    pack_b(p0, kc, j0, nw, bp);
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
// tmp (room for gemm_kc values) when it has to convert them. Columns past nc read a row of zeros.
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

// The rows of one slab: op(a) [m, k] packed once, in parallel, into the calling thread's buffer (kept: a
// prompt makes many products), then tiles of c.
void slab(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool trans_a,
          const gemm_pack_b& pack_b, float* c, int64_t ldc) {
  // Tiles of up to 896 x 256, halved (columns first, to 128) until every thread has a few: each tile packs
  // its own columns of b once per depth block. No output's bits depend on the tiling.
  auto round_up = [](int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; };
  int64_t rows = std::min(round_up(m, mr), 64 * mr), cols = std::min(round_up(n, nr), 8 * nr);
  auto tiles = [&] { return ((m + rows - 1) / rows) * ((n + cols - 1) / cols); };
  while (tiles() < 4 * num_threads()) {
    if (cols >= 8 * nr) {
      cols = round_up(cols / 2, nr);
    } else if (rows >= 8 * mr) {
      rows = round_up(rows / 2, mr);
    } else {
      break;
    }
  }
  const int64_t m_pad = round_up(m, mr), row_panels = m_pad / mr, depth_blocks = (k + kc_max - 1) / kc_max;
  thread_local std::vector<float> a_buf;
  a_buf.resize(static_cast<size_t>(m_pad * k));
  const packed_a pa{a_buf.data(), m_pad};
  parallel_for(row_panels * depth_blocks, 16, [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t i = u % row_panels * mr, p0 = u / row_panels * kc_max;
      const int64_t kc = std::min(kc_max, k - p0);
      pack_a_panel(a, lda, trans_a, i, std::min(mr, m - i), p0, kc, pa.panel(p0, kc, i));
    }
  });
  const int64_t col_tiles = (n + cols - 1) / cols;
  parallel_for(tiles(), 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t i0 = t / col_tiles * rows, j0 = t % col_tiles * cols;
      block(i0, std::min(m, i0 + rows), j0, std::min(n, j0 + cols), k, alpha, pa, pack_b, c, ldc);
    }
  });
}

}  // namespace

void gemm_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool trans_a,
                 const gemm_pack_b& pack_b, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  // Slabs of rows whose packed a stays under 32 MB (a prompt's whole a; a training step's [vocab, tokens]
  // gradient product in several), each packing b again: 1 / (slab rows) of the multiply-adds.
  const int64_t slab_rows =
      std::max<int64_t>(64 * mr, (int64_t{8} << 20) / std::max<int64_t>(k, 1) / mr * mr);
  for (int64_t r = 0; r < m; r += slab_rows) {
    slab(std::min(slab_rows, m - r), n, k, alpha, trans_a ? a + r : a + r * lda, lda, trans_a, pack_b,
         c + r * ldc, ldc);
  }
}

gemm_pack_b pack_f32(const float* b, int64_t ldb, bool trans_b) {
  if (trans_b) {
    return [b, ldb](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
      pack_rows(p0, kc, j0, nc, out,
                [b, ldb](int64_t j, int64_t p, int64_t, float*) { return b + j * ldb + p; });
    };
  }
  return [b, ldb](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
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
}

gemm_pack_b pack_f16_rows(const uint16_t* w, int64_t ld) {
  return [w, ld](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
    pack_rows(p0, kc, j0, nc, out, [w, ld](int64_t j, int64_t p, int64_t len, float* tmp) {
      const uint16_t* src = w + j * ld + p;
      for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 mask = lanes(len - i);
        _mm512_storeu_ps(tmp + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, src + i)));
      }
      return static_cast<const float*>(tmp);
    });
  };
}

gemm_pack_b pack_bf16_rows(const uint16_t* w, int64_t ld) {
  return [w, ld](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
    pack_rows(p0, kc, j0, nc, out, [w, ld](int64_t j, int64_t p, int64_t len, float* tmp) {
      const uint16_t* src = w + j * ld + p;
      for (int64_t i = 0; i < len; i += 16) {
        const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes(len - i), src + i));
        _mm512_storeu_ps(tmp + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
      }
      return static_cast<const float*>(tmp);
    });
  };
}

gemm_pack_b pack_quantized_rows(dtype t, const void* w, int64_t row_bytes) {
  const auto* base = static_cast<const uint8_t*>(w);
  const int64_t block = block_size(t), bytes = block_bytes(t);
  return [=](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
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
}

}  // namespace mlxd::kernels
