#include "detail.h"
#include "elementwise.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"
#include "sgemm.h"

namespace mlxd {
namespace {

// How one operand's last two dims lie in memory: row-major with leading dimension ld, or its transpose.
struct operand_layout {
  bool transposed;
  int64_t ld;
};

bool gemm_layout(const array& a, operand_layout& out) {
  const int nd = a.ndim();
  const int64_t rows = a.shape()[nd - 2], cols = a.shape()[nd - 1];
  const int64_t s0 = a.strides()[nd - 2], s1 = a.strides()[nd - 1];
  if ((s1 == 1 || cols == 1) && s0 >= std::max<int64_t>(cols, 1)) {
    out = {false, s0};
    return true;
  }
  if ((s0 == 1 || rows == 1) && s1 >= std::max<int64_t>(rows, 1)) {
    out = {true, s1};
    return true;
  }
  return false;
}

// Element offsets of every matrix in the broadcast batch.
std::vector<int64_t> batch_offsets(const array& a, const shape_t& batch) {
  const size_t nb = batch.size();
  shape_t shape(batch), strides(nb, 0);
  const size_t extra = nb - (a.ndim() - 2);
  for (size_t i = extra; i < nb; ++i) strides[i] = a.shape()[i - extra] == 1 ? 0 : a.strides()[i - extra];
  std::vector<int64_t> offsets;
  if (nb == 0) return {a.offset()};
  detail::for_each_offset(shape, strides, a.offset(), [&](int64_t o) { offsets.push_back(o); });
  return offsets;
}

// Plain oracle: double accumulation, one output at a time.
void gemm_reference(const float* a, operand_layout la, const float* b, operand_layout lb, float* c, int64_t m,
                    int64_t n, int64_t k) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        const float av = la.transposed ? a[p * la.ld + i] : a[i * la.ld + p];
        const float bv = lb.transposed ? b[j * lb.ld + p] : b[p * lb.ld + j];
        s += static_cast<double>(av) * bv;
      }
      c[i * n + j] = static_cast<float>(s);
    }
  }
}

// Few rows x [m, k] times a weight matrix stored as rows w [n, k] (b = w^T): decode steps of one or a few
// sequences. Each group of 4 weight rows is read from memory once and, while it is in cache, multiplied by
// every row of x, so m sequences cost about one pass over the weights; and every output is the same dot4
// whatever m is, so a sequence decoded in a batch gets the bits it would get alone.
void matvec_rows(const kernels::table& kt, const void* w, dtype wt, int64_t ld, const float* x, float* y,
                 int64_t m, int64_t n, int64_t k) {
  // Each thread streams its own run of the weights (64-row chunks taken in turn were slower here). Chunks
  // start at multiples of 4, so the rows summed by dot4 never depend on the thread count.
  parallel_for_owned(n, std::max<int64_t>(64, owned_grain(n, 16)), [&](int64_t begin, int64_t end) {
    int64_t j = begin;
    for (; j + 4 <= end; j += 4) {
      if (wt == dtype::f32) {
        kt.dot4_rows_f32(static_cast<const float*>(w) + j * ld, ld, x, k, m, k, y + j, n);
      } else if (wt == dtype::f16) {
        kt.dot4_rows_f16(static_cast<const uint16_t*>(w) + j * ld, ld, x, k, m, k, y + j, n);
      } else {
        kt.dot4_rows_bf16(static_cast<const uint16_t*>(w) + j * ld, ld, x, k, m, k, y + j, n);
      }
    }
    for (; j < end; ++j) {
      for (int64_t i = 0; i < m; ++i) {
        const float* xi = x + i * k;
        if (wt == dtype::f32) {
          y[i * n + j] = kt.dot_f32(static_cast<const float*>(w) + j * ld, xi, k);
        } else if (wt == dtype::f16) {
          y[i * n + j] = kt.dot_f16(static_cast<const uint16_t*>(w) + j * ld, xi, k);
        } else {
          y[i * n + j] = kt.dot_bf16(static_cast<const uint16_t*>(w) + j * ld, xi, k);
        }
      }
    }
  });
}

array matmul_nd(const array& a_in, const array& b_in) {
  const int64_t m = a_in.shape(-2), k = a_in.shape(-1), n = b_in.shape(-1);
  if (b_in.shape(-2) != k) {
    detail::fail("matmul", "inner dimensions differ: ", a_in.to_string(), " x ", b_in.to_string());
  }
  const shape_t a_batch(a_in.shape().begin(), a_in.shape().end() - 2);
  const shape_t b_batch(b_in.shape().begin(), b_in.shape().end() - 2);
  shape_t batch;
  try {
    batch = broadcast_shapes(a_batch, b_batch);
  } catch (const std::invalid_argument&) {
    detail::fail("matmul", "batch dimensions do not broadcast: ", a_in.to_string(), " x ", b_in.to_string());
  }
  const dtype out_type = is_floating(promote_types(a_in.type(), b_in.type()))
                             ? promote_types(a_in.type(), b_in.type())
                             : dtype::f32;
  shape_t out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  array out = array::empty(out_shape, dtype::f32);
  {
    autograd::no_grad guard;
    const kernels::table* kt = kernels::active();
    const bool weight_rows = kt && m >= 1 && m <= kernels::few_rows && batch.empty() &&
                             b_in.strides()[0] == 1 && is_floating(b_in.type()) && b_in.shape(-1) > 0;
    array a = a_in.type() == dtype::f32 ? a_in : astype(a_in, dtype::f32);
    operand_layout la{}, lb{};
    if (!gemm_layout(a, la)) a = contiguous(a), gemm_layout(a, la);
    float* c = out.mutable_data<float>();
    // A prompt times half-precision weight rows: the AVX-512 GEMM widens them panel by panel instead of
    // converting the whole matrix.
    const bool half_rows = !weight_rows && m > kernels::few_rows && k > 0 && n > 0 && batch.empty() &&
                           b_in.strides()[0] == 1 &&
                           (b_in.type() == dtype::f16 || b_in.type() == dtype::bf16) &&
                           active_kernel_level() >= kernel_level::avx512;
    if (half_rows) {
      const auto* w = static_cast<const uint16_t*>(b_in.raw_data());
      const int64_t ld = b_in.strides()[1];
      kernels::gemm_avx512(
          m, n, k, 1.0f, a.data<float>(), la.ld, la.transposed,
          b_in.type() == dtype::f16 ? kernels::pack_f16_rows(w, ld) : kernels::pack_bf16_rows(w, ld), c, n);
    } else if (weight_rows) {
      // Decode path: weights stay in their own dtype and are streamed once for all rows.
      const array x = contiguous(a);
      const int64_t ld = b_in.strides()[1];
      matvec_rows(*kt, b_in.raw_data(), b_in.type(), ld, x.data<float>(), c, m, n, k);
    } else {
      array b = b_in.type() == dtype::f32 ? b_in : astype(b_in, dtype::f32);
      if (!gemm_layout(b, lb)) b = contiguous(b), gemm_layout(b, lb);
      const auto ao = batch_offsets(a, batch), bo = batch_offsets(b, batch);
      const float* pa = static_cast<const float*>(a.buffer()->data());
      const float* pb = static_cast<const float*>(b.buffer()->data());
      for (size_t i = 0; i < ao.size(); ++i) {
        float* ci = c + static_cast<int64_t>(i) * m * n;
        if (m == 0 || n == 0) continue;
        if (k == 0) {
          std::fill(ci, ci + m * n, 0.0f);
        } else if (!kt) {
          gemm_reference(pa + ao[i], la, pb + bo[i], lb, ci, m, n, k);
        } else {
          detail::sgemm(la.transposed, lb.transposed, m, n, k, 1.0f, pa + ao[i], la.ld, pb + bo[i], lb.ld,
                        0.0f, ci, n);
        }
      }
    }
    if (out_type != dtype::f32) out = astype(out, out_type);
  }
  if (autograd::is_recording()) {
    const array x = detail::detach(a_in), y = detail::detach(b_in);
    autograd::record(out, {a_in, b_in}, [x, y](const array& ct) {
      auto back = [](const array& g, const array& like) {
        return is_floating(like.type()) ? astype(unbroadcast(g, like.shape()), like.type()) : array();
      };
      return std::vector<array>{back(matmul(ct, swapaxes(y, -1, -2)), x),
                                back(matmul(swapaxes(x, -1, -2), ct), y)};
    });
  }
  return out;
}

}  // namespace

array matmul(const array& a, const array& b) {
  if (is_quantized(a.type()) || is_quantized(b.type())) {
    detail::fail("matmul", "block-quantized operand in ", a.to_string(), " x ", b.to_string(),
                 "; multiply quantized weights with quantized_matmul");
  }
  if (a.ndim() == 0 || b.ndim() == 0)
    detail::fail("matmul", "scalar operand: ", a.to_string(), " x ", b.to_string());
  const array a2 = a.ndim() == 1 ? reshape(a, {1, a.shape(0)}) : a;
  const array b2 = b.ndim() == 1 ? reshape(b, {b.shape(0), 1}) : b;
  array out = matmul_nd(a2, b2);
  if (a.ndim() == 1) out = squeeze(out, {-2});
  if (b.ndim() == 1) out = squeeze(out, {-1});
  return out;
}

}  // namespace mlxd
