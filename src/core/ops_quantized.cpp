// Ops on block-quantized arrays: conversions (astype), row gathers (take) and y = x . w^T.
#include <algorithm>
#include <cstring>
#include <vector>

#include "copy.h"
#include "core/kernels/gemm.h"
#include "core/kernels/quant_kernels.h"
#include "detail.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/quantized.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace detail {

void copy_quantized(const array& src, const array& dst) {
  const dtype st = src.type(), dt = dst.type();
  if (st == dt) {  // quantized views are contiguous rows
    std::memcpy(dst.mutable_data<uint8_t>(), src.raw_data(), src.nbytes());
    return;
  }
  if (is_quantized(st) && is_quantized(dt)) {
    copy_quantized(astype(src, dtype::f32), dst);
    return;
  }
  if (!is_floating(is_quantized(st) ? dt : st)) {
    fail("astype", "quantized arrays convert only to and from float dtypes, not ", src.to_string(), " to ",
         name(dt));
  }
  const int64_t k = src.shape(-1), rows = k ? src.size() / k : 0;
  if (is_quantized(dt)) {
    const array x = prepare(src, dtype::f32);
    const size_t row_bytes = static_cast<size_t>(k / block_size(dt)) * block_bytes(dt);
    const float* px = x.data<float>();
    uint8_t* py = dst.mutable_data<uint8_t>();
    parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(k, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        quantize_blocks(dt, px + r * k, py + static_cast<size_t>(r) * row_bytes, k);
    });
    return;
  }
  const array out = dt == dtype::f32 ? dst : array::empty(dst.shape(), dtype::f32);
  const size_t row_bytes = static_cast<size_t>(k / block_size(st)) * block_bytes(st);
  const auto* px = static_cast<const uint8_t*>(src.raw_data());
  float* py = out.mutable_data<float>();
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(k, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      dequantize_blocks(st, px + static_cast<size_t>(r) * row_bytes, py + r * k, k);
  });
  if (dt != dtype::f32) copy_into(out, dst);
}

array take_quantized(const array& a, const std::vector<int64_t>& idx, const shape_t& idx_shape, int ax) {
  if (ax == a.ndim() - 1)
    fail("take", "cannot gather single elements of the block-quantized ", a.to_string());
  const int64_t n = a.shape(ax);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < ax; ++i) outer *= a.shape()[i];
  for (int i = ax + 1; i < a.ndim(); ++i) inner *= a.shape()[i];
  shape_t shape(a.shape().begin(), a.shape().begin() + ax);
  shape.insert(shape.end(), idx_shape.begin(), idx_shape.end());
  shape.insert(shape.end(), a.shape().begin() + ax + 1, a.shape().end());
  array out = array::empty(shape, dtype::f32);
  const int64_t m = static_cast<int64_t>(idx.size());
  const size_t slice_bytes = static_cast<size_t>(inner / block_size(a.type())) * block_bytes(a.type());
  const auto* pa = static_cast<const uint8_t*>(a.raw_data());
  float* po = out.mutable_data<float>();
  parallel_for(outer * m, std::max<int64_t>(1, 4096 / std::max<int64_t>(inner, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t r = b; r < e; ++r) {
                   const int64_t o = r / m, j = r % m;
                   dequantize_blocks(a.type(), pa + static_cast<size_t>(o * n + idx[j]) * slice_bytes,
                                     po + r * inner, inner);
                 }
               });
  return out;
}

}  // namespace detail

namespace {

// Plain oracle: each weight row dequantized, dot products accumulated in double.
void qmatmul_reference(const array& w, const float* x, float* y, int64_t m, int64_t n, int64_t k) {
  const size_t row_bytes = static_cast<size_t>(k / block_size(w.type())) * block_bytes(w.type());
  const auto* pw = static_cast<const uint8_t*>(w.raw_data());
  parallel_for(n, 16, [&](int64_t b, int64_t e) {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t j = b; j < e; ++j) {
      dequantize_blocks(w.type(), pw + static_cast<size_t>(j) * row_bytes, row.data(), k);
      for (int64_t i = 0; i < m; ++i) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += static_cast<double>(row[p]) * x[i * k + p];
        y[i * n + j] = static_cast<float>(s);
      }
    }
  });
}

kernels::quant_dot_fn dot_for(const kernels::quant_table& qt, dtype t) {
  switch (t) {
    case dtype::q8_0:
      return qt.dot_q8_0;
    case dtype::q4_0:
      return qt.dot_q4_0;
    case dtype::q4_k:
      return qt.dot_q4_k;
    default:
      return qt.dot_q6_k;
  }
}

// x rows quantized to 8 bits, then each chunk of weight rows (sized to stay in cache while every x row passes
// over it) is multiplied with up to max_dot_rows x rows at a time.
void qmatmul_fast(const kernels::quant_table& qt, const array& w, const float* x, float* y, int64_t m,
                  int64_t n, int64_t k) {
  const dtype t = w.type();
  const bool wide = quant::act_block_size(t) == quant::qk_k;
  const int64_t n_blocks = k / block_size(t), n_act = k / quant::act_block_size(t);
  // Per row: q [k], d [n_act], and s [n_act] (blocks of 32) or bsums [k / 16] (blocks of 256). The buffers
  // are kept per calling thread: a decode step makes dozens of these calls.
  struct act_buffers {
    std::vector<int8_t> q;
    std::vector<float> d, s;
    std::vector<int16_t> bsums;
    std::vector<kernels::act_row> rows;
  };
  thread_local act_buffers buffers;  // the calling thread's; the workers below see them through these names
  std::vector<int8_t>& q = buffers.q;
  std::vector<float>& d = buffers.d;
  std::vector<float>& s = buffers.s;
  std::vector<int16_t>& bsums = buffers.bsums;
  std::vector<kernels::act_row>& rows = buffers.rows;
  q.resize(static_cast<size_t>(m * k));
  d.resize(static_cast<size_t>(m * n_act));
  s.resize(wide ? 0 : static_cast<size_t>(m * n_act));
  bsums.resize(wide ? static_cast<size_t>(m * (k / 16)) : 0);
  rows.resize(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    rows[i] = {q.data() + i * k, d.data() + i * n_act, wide ? nullptr : s.data() + i * n_act,
               wide ? bsums.data() + i * (k / 16) : nullptr};
  }
  parallel_for(m, std::max<int64_t>(1, 8192 / k), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int8_t* qi = q.data() + i * k;
      float* di = d.data() + i * n_act;
      if (wide) {
        qt.quantize_act256(x + i * k, k, qi, di, bsums.data() + i * (k / 16));
      } else {
        qt.quantize_act32(x + i * k, k, qi, di, s.data() + i * n_act);
      }
    }
  });
  const kernels::quant_dot_fn dot = dot_for(qt, t);
  const size_t row_bytes = static_cast<size_t>(n_blocks) * block_bytes(t);
  const auto* pw = static_cast<const uint8_t*>(w.raw_data());
  // A few x rows (decode) are bound by reading the weights: each thread streams its own run of them (32 KB
  // chunks taken in turn decoded a 1B model at half the speed here, slower than one thread). More rows
  // amortise each weight chunk over them instead.
  const bool few = m <= kernels::few_rows;
  const int64_t grain =
      few ? owned_grain(n, 16)
          : std::max<int64_t>(16,
                              static_cast<int64_t>((192u << 10) / std::max<size_t>(row_bytes, 1)) / 16 * 16);
  (few ? parallel_for_owned : parallel_for)(n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = 0; i < m; i += kernels::max_dot_rows) {
      const int n_x = static_cast<int>(std::min<int64_t>(kernels::max_dot_rows, m - i));
      for (int64_t j = b; j < e; ++j) {
        dot(pw + static_cast<size_t>(j) * row_bytes, rows.data() + i, n_x, n_blocks, y + i * n + j, n);
      }
    }
  });
}

// Beyond a few rows (a prompt rather than decoding sequences) an AVX-512 CPU dequantizes the weights panel by
// panel into the f32 GEMM: with x in f32 rather than 8 bits, each output is the exact product of the stored
// weights rounded once per fma, and its bits do not depend on the other rows.
bool use_gemm(int64_t m) {
  return m > kernels::few_rows && active_kernel_level() >= kernel_level::avx512;
}

}  // namespace

array quantized_matmul(const array& x, const array& w) {
  if (!is_quantized(w.type()) || w.ndim() != 2) {
    detail::fail("quantized_matmul", "the weight must be a 2-d block-quantized array, got ", w.to_string());
  }
  if (!is_floating(x.type()) || x.ndim() == 0 || x.shape(-1) != w.shape(1)) {
    detail::fail("quantized_matmul", "x must be a float array [..., ", w.shape(1), "], got ", x.to_string(),
                 " for weight ", w.to_string());
  }
  shape_t out_shape(x.shape().begin(), x.shape().end() - 1);
  const int64_t n = w.shape(0), k = w.shape(1), m = shape_size(out_shape);
  out_shape.push_back(n);
  array out = zeros(out_shape, dtype::f32);
  if (m > 0 && n > 0 && k > 0) {
    autograd::no_grad guard;
    const array xf = detail::prepare(x, dtype::f32);
    float* y = out.mutable_data<float>();
    if (use_gemm(m)) {
      const int64_t row_bytes = k / block_size(w.type()) * block_bytes(w.type());
      kernels::gemm_avx512(m, n, k, 1.0f, xf.data<float>(), k, false,
                           kernels::pack_quantized_rows(w.type(), w.raw_data(), row_bytes), y, n);
    } else if (const kernels::quant_table* qt = kernels::active_quant()) {
      qmatmul_fast(*qt, w, xf.data<float>(), y, m, n, k);
    } else {
      qmatmul_reference(w, xf.data<float>(), y, m, n, k);
    }
  }
  if (autograd::is_recording()) {
    // Quantized weights are frozen; x's gradient uses the dequantized weight (training paths only).
    const array wq = w;
    const dtype xt = x.type();
    autograd::record(out, {x}, [wq, xt](const array& ct) {
      return std::vector<array>{astype(matmul(ct, astype(wq, dtype::f32)), xt)};
    });
  }
  return out;
}

}  // namespace mlxd
