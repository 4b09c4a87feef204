// Array operations. Every op validates its arguments and throws std::invalid_argument whose message starts
// with
// "[op]" and names the shapes involved. Elementwise binary ops broadcast like NumPy. Float16/bfloat16 inputs
// are computed in f32 and rounded once on output. Differentiable ops record a vjp while a gradient tape is
// active.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "mlxd/core/array.h"

namespace mlxd {

using axes_t = std::vector<int>;

// ---- creation ----
array zeros(const shape_t& shape, dtype t = dtype::f32);
array ones(const shape_t& shape, dtype t = dtype::f32);
array full(const shape_t& shape, double value, dtype t = dtype::f32);
array zeros_like(const array& a);
array ones_like(const array& a);
array arange(int64_t start, int64_t stop, int64_t step = 1, dtype t = dtype::i64);
array scalar(double value, dtype t);

// ---- layout (views share storage where the layout allows) ----
array reshape(const array& a,
              shape_t shape);  // one -1 entry is inferred; copies only for incompatible strides
array flatten(const array& a);
array transpose(const array& a, const axes_t& axes);
array transpose(const array& a);  // reverse all axes
array swapaxes(const array& a, int axis1, int axis2);
// Python-style slicing per axis: starts/stops are clamped, negative values count from the end, steps > 0.
array slice(const array& a, const shape_t& starts, const shape_t& stops, const shape_t& steps = {});
array slice_axis(const array& a, int axis, int64_t start, int64_t stop, int64_t step = 1);
array broadcast_to(const array& a, const shape_t& shape);
shape_t broadcast_shapes(const shape_t& a, const shape_t& b);
array expand_dims(const array& a, int axis);
array squeeze(const array& a, const axes_t& axes);
array squeeze(const array& a);     // all size-1 axes
array contiguous(const array& a);  // returns `a` itself when already contiguous
// Converting to a block-quantized dtype quantizes each row of a float array as ggml's reference does (the
// last dimension must be a multiple of the block size); converting from one dequantizes.
array astype(const array& a, dtype t);
array concatenate(const std::vector<array>& arrays, int axis = 0);
array stack(const std::vector<array>& arrays, int axis = 0);
std::vector<array> split(const array& a, int n_sections, int axis = 0);
std::vector<array> split(const array& a, const shape_t& indices, int axis = 0);

// ---- elementwise ----
array neg(const array& a);
array abs(const array& a);
array exp(const array& a);
array expm1(const array& a);  // e^x - 1, exact near 0 (where exp(x) - 1 cancels)
array log(const array& a);
array sqrt(const array& a);
array rsqrt(const array& a);
array tanh(const array& a);
array sigmoid(const array& a);
array silu(const array& a);
array gelu(const array& a);      // tanh approximation
array gelu_erf(const array& a);  // exact erf form
array softplus(const array& a);  // log(1 + e^x), stable for large |x|
array log_sigmoid(const array& a);
array square(const array& a);

array add(const array& a, const array& b);
array subtract(const array& a, const array& b);
array multiply(const array& a, const array& b);
array divide(const array& a, const array& b);
array power(const array& a, const array& b);
array maximum(const array& a, const array& b);
array minimum(const array& a, const array& b);

array equal(const array& a, const array& b);  // comparisons return bool
array not_equal(const array& a, const array& b);
array less(const array& a, const array& b);
array less_equal(const array& a, const array& b);
array greater(const array& a, const array& b);
array greater_equal(const array& a, const array& b);
array where(const array& cond, const array& a, const array& b);
array clip(const array& a, std::optional<double> lo, std::optional<double> hi);

array operator-(const array& a);
array operator+(const array& a, const array& b);
array operator-(const array& a, const array& b);
array operator*(const array& a, const array& b);
array operator/(const array& a, const array& b);

// ---- reductions (empty axes = all axes) ----
array sum(const array& a, const axes_t& axes = {}, bool keepdims = false);
array mean(const array& a, const axes_t& axes = {}, bool keepdims = false);
array max(const array& a, const axes_t& axes = {}, bool keepdims = false);
array min(const array& a, const axes_t& axes = {}, bool keepdims = false);
array logsumexp(const array& a, const axes_t& axes = {}, bool keepdims = false);
array var(const array& a, const axes_t& axes = {}, bool keepdims = false, int ddof = 0);
array argmax(const array& a, int axis, bool keepdims = false);  // i64; first index of the maximum

// ---- linear algebra ----
// [..., m, k] x [..., k, n] -> [..., m, n] with broadcast batch dims; 1-d operands as in NumPy.
// Accumulates in f32 for every float dtype; transposed views are passed to GEMM without copying.
array matmul(const array& a, const array& b);
// y = x . w^T for a block-quantized weight w [n, k] (see quantized.h) and a float x [..., k]: f32 [..., n].
// Parallel over the rows of w; w is never dequantized as a whole. The reference kernel level dequantizes one
// row at a time and accumulates in double; the others quantize each row of x to 8 bits per block, as ggml
// does, and accumulate integer products block by block (error bound in src/core/kernels/quant_kernels.h).
// Every output is computed the same way whatever the number of x rows or threads. The gradient flows to x
// only.
array quantized_matmul(const array& x, const array& w);

// ---- neural-network ops ----
array softmax(const array& a, int axis = -1);
array log_softmax(const array& a, int axis = -1);
// x * rsqrt(mean(x^2, -1) + eps) * weight; weight is [x.shape(-1)].
array rms_norm(const array& x, const array& weight, float eps);
// Normalises over the last axis; weight and bias may be empty arrays (size 0) to skip them.
array layer_norm(const array& x, const array& weight, const array& bias, float eps);

// Scaled dot-product attention, causal within segments, with grouped-query heads: q [batch, heads, seq,
// head_dim], k and v [batch, kv_heads, seq, head_dim] (heads a multiple of kv_heads; query head h reads kv
// head h / (heads / kv_heads)), segments integer [batch, seq] or an empty array (one segment per row). Query
// t of a row attends key s when s <= t and segments[s] == segments[t]: softmax(scale * q k^T) v over those
// keys. Returns [batch, heads, seq, head_dim]. Key blocks no query of a block sees are skipped, and the
// probabilities are kept for the backward pass instead of a mask per head; differentiable in q, k and v.
array causal_attention(const array& q, const array& k, const array& v, const array& segments, float scale);

struct rope_options {
  int dims = 0;              // leading features of the last axis to rotate (0 = all)
  bool traditional = false;  // true: interleaved pairs (x0,x1); false: half-split "NeoX" (x_i, x_{i+d/2})
  float base = 10000.0f;
  float scale = 1.0f;  // position multiplier (linear scaling divides positions: scale = 1/factor)
  int64_t offset = 0;  // position of the first row
  // Llama-3 style scaling: per-frequency inverse frequencies computed by llama3_rope_freqs (empty = plain).
  std::vector<float> inv_freqs;
};
// x: [..., seq, head_dim]; rotates positions offset..offset+seq-1.
array rope(const array& x, const rope_options& opts);
// x: [n0, ..., nk, ..., head_dim] with integer positions [n0, ..., nk] (a prefix of x's axes, e.g. x
// [batch, seq, heads, head_dim] and positions [batch, seq]): every row under positions[i...] rotates by
// (offset + that position), as rope would at that position. Packed training batches restart positions per
// sample. Negative positions throw.
array rope_at(const array& x, const array& positions, const rope_options& opts);
// Llama-3.x "rope_type": "llama3" inverse frequencies.
std::vector<float> llama3_rope_freqs(int dims, float base, float factor, float low_freq_factor,
                                     float high_freq_factor, int original_max_positions);

// Gathers along `axis` with integer indices (i32/i64) of any shape: out shape = a.shape[:axis] + idx.shape +
// a.shape[axis+1:]. Out-of-range indices throw. A block-quantized `a` gathers whole rows along any axis but
// the last and returns them dequantized to f32 (an embedding lookup).
array take(const array& a, const array& indices, int axis = 0);
array cumsum(const array& a, int axis, bool reverse = false, bool inclusive = true);
// The k largest along `axis`, sorted descending (ties: lower index first). Returns {values, indices(i64)}.
std::pair<array, array> topk(const array& a, int k, int axis = -1);
array sort(const array& a, int axis = -1);     // ascending, stable, NaN last
array argsort(const array& a, int axis = -1);  // i64, stable
// Per-position negative log-likelihood: logits [..., vocab], targets [...] integer. Targets equal to
// `ignore_index` give 0 loss and 0 gradient.
array cross_entropy(const array& logits, const array& targets, int64_t ignore_index = -100);

// ---- comparisons of whole arrays (for tests and checks) ----
// Same shape and values (NaN == NaN); block-quantized arrays are equal when dtype and bytes are.
bool array_equal(const array& a, const array& b);
bool allclose(const array& a, const array& b, double rtol = 1e-5, double atol = 1e-8);

}  // namespace mlxd
