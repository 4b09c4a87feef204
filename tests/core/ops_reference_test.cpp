// Ops against independent double-precision computations written out in the test.
#include <gtest/gtest.h>

#include <algorithm>
#include <complex>
#include <numeric>

#include "test_util.h"

namespace mlxd {
namespace {

using test::close;

// Flat index into a broadcast operand of shape `in` for the output multi-index of flat position i in `out`.
int64_t broadcast_index(int64_t i, const shape_t& out, const shape_t& in) {
  int64_t idx = 0, stride = 1;
  for (int d = static_cast<int>(out.size()) - 1, e = static_cast<int>(in.size()) - 1; d >= 0; --d, --e) {
    const int64_t coord = i % out[d];
    i /= out[d];
    if (e >= 0) {
      idx += (in[e] == 1 ? 0 : coord) * stride;
      stride *= in[e];
    }
  }
  return idx;
}

array reference_binary(const array& a, const array& b, const std::function<double(double, double)>& f,
                       dtype t) {
  const shape_t shape = broadcast_shapes(a.shape(), b.shape());
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  std::vector<double> out(static_cast<size_t>(shape_size(shape)));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = f(x[broadcast_index(static_cast<int64_t>(i), shape, a.shape())],
               y[broadcast_index(static_cast<int64_t>(i), shape, b.shape())]);
  }
  return array::from(out, shape, t);
}

TEST(OpsReference, BinaryOpsBroadcastOverEveryDtype) {
  struct binary_case {
    array (*op)(const array&, const array&);
    std::function<double(double, double)> f;
    bool float_only;
  };
  const std::vector<binary_case> cases = {
      {add, [](double x, double y) { return x + y; }, false},
      {subtract, [](double x, double y) { return x - y; }, false},
      {multiply, [](double x, double y) { return x * y; }, false},
      {maximum, [](double x, double y) { return std::max(x, y); }, false},
      {minimum, [](double x, double y) { return std::min(x, y); }, false},
      {divide, [](double x, double y) { return x / y; }, true},
      {power, [](double x, double y) { return std::pow(x, y); }, true},
  };
  const std::vector<std::pair<shape_t, shape_t>> shapes = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{5}, {}}, {{}, {2, 3}}, {{0, 3}, {3}}};
  for (const dtype t : {dtype::f32, dtype::f16, dtype::bf16, dtype::i32, dtype::i64}) {
    for (const auto& [sa, sb] : shapes) {
      const array a = astype(multiply(test::randn(11, sa), array(4.0f)), t);
      const array b = astype(add(multiply(test::randn(12, sb), array(4.0f)), array(0.25f)), t);
      for (const auto& c : cases) {
        if (c.float_only && !is_floating(t)) continue;
        const array lhs = c.op == power ? add(abs(a), array(0.5f)) : a;
        const array got = c.op(lhs, b);
        EXPECT_EQ(got.type(), t);
        const double tol = t == dtype::f32 ? 1e-6 : (is_floating(t) ? 1e-2 : 0);
        EXPECT_TRUE(close(got, reference_binary(lhs, b, c.f, t), tol, tol))
            << name(t) << " " << shape_to_string(sa) << " " << shape_to_string(sb);
      }
    }
  }
}

TEST(OpsReference, ComparisonsWhereAndClip) {
  const array a = array::from({1, 2, 3, 4, std::nanf("")}, {5});
  const array b = array::from({2.0f}, {1});
  EXPECT_EQ(less(a, b).to_vector<int32_t>(), (std::vector<int32_t>{1, 0, 0, 0, 0}));
  EXPECT_EQ(less_equal(a, b).to_vector<int32_t>(), (std::vector<int32_t>{1, 1, 0, 0, 0}));
  EXPECT_EQ(greater(a, b).to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 1, 1, 0}));
  EXPECT_EQ(greater_equal(a, b).to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 1, 1, 0}));
  EXPECT_EQ(equal(a, b).to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 0, 0, 0}));
  EXPECT_EQ(not_equal(a, b).to_vector<int32_t>(), (std::vector<int32_t>{1, 0, 1, 1, 1}));
  EXPECT_EQ(less(a, b).type(), dtype::boolean);
  const array w = where(greater(a, b), a, array::from({-1, -2, -3, -4, -5}, {5}));
  EXPECT_EQ(w.to_vector<float>(), (std::vector<float>{-1, -2, 3, 4, -5}));
  const auto c = clip(a, 1.5, 3.5).to_vector<float>();
  EXPECT_EQ(std::vector<float>(c.begin(), c.begin() + 4), (std::vector<float>{1.5, 2, 3, 3.5}));
  EXPECT_TRUE(std::isnan(c[4]));
  EXPECT_EQ(clip(array::from({-5, 5}, {2}, dtype::i32), std::nullopt, 2).to_vector<int32_t>(),
            (std::vector<int32_t>{-5, 2}));
  EXPECT_THROW(clip(a, 3.0, 1.0), std::invalid_argument);
  // NaN propagates through maximum and minimum, as in NumPy.
  EXPECT_TRUE(std::isnan(maximum(a, b).to_vector<float>()[4]));
  EXPECT_TRUE(std::isnan(minimum(b, a).to_vector<float>()[4]));
}

TEST(OpsReference, UnaryOpsMatchDoubleFormulas) {
  const array x = multiply(test::randn(13, {257}), array(5.0f));
  const array pos = add(abs(x), array(0.01f));
  auto check = [](const array& got, const array& in, double (*f)(double), double tol) {
    const auto v = in.to_vector<double>();
    std::vector<double> want(v.size());
    std::transform(v.begin(), v.end(), want.begin(), f);
    EXPECT_TRUE(close(got, array::from(want, in.shape(), dtype::f32), tol, 1e-6));
  };
  check(
      neg(x), x, [](double v) { return -v; }, 0);
  check(
      abs(x), x, [](double v) { return std::fabs(v); }, 0);
  check(
      exp(x), x, [](double v) { return std::exp(v); }, 1e-6);
  check(
      log(pos), pos, [](double v) { return std::log(v); }, 1e-6);
  check(
      sqrt(pos), pos, [](double v) { return std::sqrt(v); }, 1e-6);
  check(
      rsqrt(pos), pos, [](double v) { return 1 / std::sqrt(v); }, 1e-6);
  check(
      tanh(x), x, [](double v) { return std::tanh(v); }, 1e-6);
  check(
      sigmoid(x), x, [](double v) { return 1 / (1 + std::exp(-v)); }, 1e-6);
  check(
      silu(x), x, [](double v) { return v / (1 + std::exp(-v)); }, 1e-6);
  check(
      gelu(x), x,
      [](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); },
      1e-6);
  check(
      gelu_erf(x), x, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, 1e-6);
  check(
      softplus(x), x, [](double v) { return std::log1p(std::exp(v)); }, 1e-6);
  check(
      log_sigmoid(x), x, [](double v) { return -std::log1p(std::exp(-v)); }, 1e-6);
  check(
      square(x), x, [](double v) { return v * v; }, 1e-7);
  check(
      expm1(x), x, [](double v) { return std::expm1(v); }, 1e-6);
  // expm1 keeps full relative precision where exp(x) - 1 cancels to 0.
  const auto em = expm1(array::from({1e-10f, -3e-8f}, {2})).to_vector<float>();
  EXPECT_FLOAT_EQ(em[0], 1e-10f);
  EXPECT_FLOAT_EQ(em[1], -3e-8f);
  // Stable at the extremes: no overflow to inf or NaN.
  const auto sp = softplus(array::from({1000.0f, -1000.0f}, {2})).to_vector<float>();
  EXPECT_EQ(sp[0], 1000.0f);
  EXPECT_EQ(sp[1], 0.0f);
  const auto ls = log_sigmoid(array::from({1000.0f, -1000.0f}, {2})).to_vector<float>();
  EXPECT_EQ(ls[0], 0.0f);
  EXPECT_EQ(ls[1], -1000.0f);
  EXPECT_EQ(neg(array::from({3, -4}, {2}, dtype::i32)).to_vector<int32_t>(), (std::vector<int32_t>{-3, 4}));
  EXPECT_EQ(exp(array::from({0}, {1}, dtype::i32)).type(), dtype::f32);
}

// Reduces `a` over `axes` with `f` in double, the slow obvious way.
array reference_reduce(const array& a, const axes_t& axes, bool keepdims,
                       const std::function<double(const std::vector<double>&)>& f) {
  const auto x = a.to_vector<double>();
  shape_t out_shape, keep = a.shape();
  for (int ax : axes) keep[ax] = 1;
  for (int i = 0; i < a.ndim(); ++i) {
    if (keep[i] != 1 || a.shape()[i] == 1) {
      if (std::find(axes.begin(), axes.end(), i) == axes.end()) out_shape.push_back(a.shape()[i]);
    }
  }
  std::vector<std::vector<double>> groups(static_cast<size_t>(shape_size(keep)));
  for (int64_t i = 0; i < a.size(); ++i) groups[broadcast_index(i, a.shape(), keep)].push_back(x[i]);
  std::vector<double> out;
  for (const auto& g : groups) out.push_back(f(g));
  shape_t final_shape;
  for (int i = 0; i < a.ndim(); ++i) {
    if (std::find(axes.begin(), axes.end(), i) == axes.end())
      final_shape.push_back(a.shape()[i]);
    else if (keepdims)
      final_shape.push_back(1);
  }
  return array::from(out, final_shape, dtype::f32);
}

TEST(OpsReference, ReductionsOverAnyAxes) {
  const array x = multiply(test::randn(14, {3, 4, 5}), array(3.0f));
  const auto sum_f = [](const std::vector<double>& g) { return std::accumulate(g.begin(), g.end(), 0.0); };
  const auto max_f = [](const std::vector<double>& g) { return *std::max_element(g.begin(), g.end()); };
  const auto min_f = [](const std::vector<double>& g) { return *std::min_element(g.begin(), g.end()); };
  const auto mean_f = [&](const std::vector<double>& g) { return sum_f(g) / static_cast<double>(g.size()); };
  const auto var_f = [&](const std::vector<double>& g) {
    const double m = mean_f(g);
    double s = 0;
    for (double v : g) s += (v - m) * (v - m);
    return s / static_cast<double>(g.size());
  };
  const auto lse_f = [&](const std::vector<double>& g) {
    double s = 0;
    for (double v : g) s += std::exp(v);
    return std::log(s);
  };
  for (const axes_t& axes : std::vector<axes_t>{{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}}) {
    for (bool keep : {false, true}) {
      axes_t neg_axes;
      for (int a : axes) neg_axes.push_back(a - 3);  // negative spelling of the same axes
      EXPECT_TRUE(close(sum(x, neg_axes, keep), reference_reduce(x, axes, keep, sum_f), 1e-6, 1e-6));
      EXPECT_TRUE(close(mean(x, axes, keep), reference_reduce(x, axes, keep, mean_f), 1e-6, 1e-6));
      EXPECT_TRUE(close(max(x, axes, keep), reference_reduce(x, axes, keep, max_f), 0, 0));
      EXPECT_TRUE(close(min(x, axes, keep), reference_reduce(x, axes, keep, min_f), 0, 0));
      EXPECT_TRUE(close(var(x, axes, keep), reference_reduce(x, axes, keep, var_f), 1e-5, 1e-6));
      EXPECT_TRUE(close(logsumexp(x, axes, keep), reference_reduce(x, axes, keep, lse_f), 1e-6, 1e-6));
    }
  }
  EXPECT_EQ(sum(x).ndim(), 0);
  EXPECT_NEAR(var(array::from({1, 2, 3, 4}, {4}), {}, false, 1).item<float>(), 5.0 / 3.0, 1e-6);
  EXPECT_EQ(sum(array::from({1, 2, 3}, {3}, dtype::i32)).type(), dtype::i64);
  EXPECT_EQ(sum(zeros({0, 3}), {0}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_THROW(max(zeros({0, 3}), {0}), std::invalid_argument);
  EXPECT_EQ(logsumexp(array::from({-INFINITY, -INFINITY}, {2})).item<float>(), -INFINITY);
  EXPECT_NEAR(logsumexp(array::from({1e30f, 1e30f}, {2})).item<float>(), 1e30f, 1e24f);
  EXPECT_TRUE(std::isnan(max(array::from({1, std::nanf(""), 3}, {3})).item<float>()));
}

TEST(OpsReference, Argmax) {
  const array x = array::from({3, 7, 7, 1, 9, 0}, {2, 3});
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));  // first of ties
  EXPECT_EQ(argmax(x, 0).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(argmax(x, 1, true).shape(), (shape_t{2, 1}));
  EXPECT_EQ(argmax(array::from({1, std::nanf(""), 5}, {3}), 0).item<int64_t>(), 1);
}

TEST(OpsReference, MatmulBroadcastBatchesAndVectors) {
  const array a = test::randn(15, {2, 1, 5, 7}), b = test::randn(16, {3, 7, 4});
  const array c = matmul(a, b);
  ASSERT_EQ(c.shape(), (shape_t{2, 3, 5, 4}));
  const auto x = a.to_vector<double>(), y = b.to_vector<double>(), z = c.to_vector<double>();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int m = 0; m < 5; ++m)
        for (int n = 0; n < 4; ++n) {
          double s = 0;
          for (int k = 0; k < 7; ++k) s += x[(i * 5 + m) * 7 + k] * y[(j * 7 + k) * 4 + n];
          ASSERT_NEAR(z[((i * 3 + j) * 5 + m) * 4 + n], s, 1e-5);
        }
  const array v = test::randn(17, {7});
  EXPECT_EQ(matmul(v, b).shape(), (shape_t{3, 4}));
  EXPECT_EQ(matmul(a, v).shape(), (shape_t{2, 1, 5}));
  EXPECT_EQ(matmul(v, v).ndim(), 0);
  EXPECT_TRUE(
      close(matmul(astype(a, dtype::bf16), astype(b, dtype::bf16)),
            matmul(astype(astype(a, dtype::bf16), dtype::f32), astype(astype(b, dtype::bf16), dtype::f32)),
            1e-2, 1e-2));
  EXPECT_EQ(matmul(astype(a, dtype::f16), b).type(), dtype::f32);
  EXPECT_EQ(matmul(zeros({3, 0}), zeros({0, 2})).to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_THROW(matmul(a, test::randn(1, {6, 2})), std::invalid_argument);
  EXPECT_THROW(matmul(test::randn(1, {2, 3, 4}), test::randn(1, {5, 4, 2})), std::invalid_argument);
}

TEST(OpsReference, NormsAgainstFormulas) {
  const array x = test::randn(18, {4, 33}), w = test::randn(19, {33}), b = test::randn(20, {33});
  const auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> rms(xv.size()), ln(xv.size());
  for (int r = 0; r < 4; ++r) {
    double ss = 0, mu = 0, var_acc = 0;
    for (int i = 0; i < 33; ++i) ss += xv[r * 33 + i] * xv[r * 33 + i], mu += xv[r * 33 + i];
    mu /= 33;
    for (int i = 0; i < 33; ++i) var_acc += (xv[r * 33 + i] - mu) * (xv[r * 33 + i] - mu);
    for (int i = 0; i < 33; ++i) {
      rms[r * 33 + i] = xv[r * 33 + i] / std::sqrt(ss / 33 + 1e-5) * wv[i];
      ln[r * 33 + i] = (xv[r * 33 + i] - mu) / std::sqrt(var_acc / 33 + 1e-5) * wv[i] + bv[i];
    }
  }
  EXPECT_TRUE(close(rms_norm(x, w, 1e-5f), array::from(rms, {4, 33}, dtype::f32), 1e-5, 1e-6));
  EXPECT_TRUE(close(layer_norm(x, w, b, 1e-5f), array::from(ln, {4, 33}, dtype::f32), 1e-5, 1e-5));
  EXPECT_THROW(rms_norm(x, test::randn(1, {32}), 1e-5f), std::invalid_argument);
}

TEST(OpsReference, RopeIsAComplexRotation) {
  const int seq = 5, head_dim = 8;
  const array x = test::randn(21, {2, seq, head_dim});
  for (bool traditional : {false, true}) {
    for (int dims : {8, 4}) {
      rope_options o;
      o.dims = dims;
      o.traditional = traditional;
      o.base = 500.0f;
      o.offset = 7;
      o.scale = 0.5f;
      o.inv_freqs = {};
      const auto got = rope(x, o).to_vector<double>();
      const auto xv = x.to_vector<double>();
      for (int h = 0; h < 2; ++h)
        for (int s = 0; s < seq; ++s)
          for (int i = 0; i < dims / 2; ++i) {
            const int base_idx = (h * seq + s) * head_dim;
            const int i1 = traditional ? 2 * i : i, i2 = traditional ? 2 * i + 1 : i + dims / 2;
            const double angle = (7 + s) * 0.5 * std::pow(500.0, -2.0 * i / dims);
            const std::complex<double> z =
                std::complex<double>(xv[base_idx + i1], xv[base_idx + i2]) * std::polar(1.0, angle);
            ASSERT_NEAR(got[base_idx + i1], z.real(), 1e-5);
            ASSERT_NEAR(got[base_idx + i2], z.imag(), 1e-5);
          }
      for (int i = dims; i < head_dim; ++i) ASSERT_EQ(got[i], xv[i]);  // untouched tail
    }
  }
  rope_options odd;
  odd.dims = 3;
  EXPECT_THROW(rope(x, odd), std::invalid_argument);
}

TEST(OpsReference, Llama3FrequenciesMatchTheHuggingFaceRule) {
  // Llama-3.1: base 500000, factor 8, low 1, high 4, original context 8192; head_dim 128.
  const auto f = llama3_rope_freqs(128, 500000.0f, 8.0f, 1.0f, 4.0f, 8192);
  ASSERT_EQ(f.size(), 64u);
  for (int i = 0; i < 64; ++i) {
    const double freq = std::pow(500000.0, -2.0 * i / 128), wavelen = 2 * M_PI / freq;
    double want = freq;
    if (wavelen > 8192.0)
      want = freq / 8;
    else if (wavelen > 8192.0 / 4) {
      const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      want = (1 - smooth) * freq / 8 + smooth * freq;
    }
    EXPECT_NEAR(f[i], want, 1e-6 * want);
  }
}

TEST(OpsReference, CrossEntropyTakeCumsum) {
  const array logits = multiply(test::randn(22, {3, 11}), array(4.0f));
  const array targets = array::from(std::vector<int64_t>{4, -100, 10}, {3}, dtype::i64);
  const auto l = logits.to_vector<double>();
  const auto ce = cross_entropy(logits, targets).to_vector<double>();
  for (int r : {0, 2}) {
    double s = 0;
    for (int i = 0; i < 11; ++i) s += std::exp(l[r * 11 + i]);
    EXPECT_NEAR(ce[r], std::log(s) - l[r * 11 + (r == 0 ? 4 : 10)], 1e-5);
  }
  EXPECT_EQ(ce[1], 0.0);
  EXPECT_THROW(cross_entropy(logits, array::from(std::vector<int64_t>{0, 11, 1}, {3}, dtype::i64)),
               std::invalid_argument);

  const array table = array::from({0, 1, 2, 3, 4, 5, 6, 7}, {4, 2});
  const array idx = array::from(std::vector<int32_t>{3, 0, -1, 3}, {2, 2}, dtype::i32);
  const array rows = take(table, idx, 0);
  EXPECT_EQ(rows.shape(), (shape_t{2, 2, 2}));
  EXPECT_EQ(rows.to_vector<float>(), (std::vector<float>{6, 7, 0, 1, 6, 7, 6, 7}));
  EXPECT_EQ(take(table, array::from(std::vector<int64_t>{1}, {1}, dtype::i64), 1).to_vector<float>(),
            (std::vector<float>{1, 3, 5, 7}));
  EXPECT_THROW(take(table, array::from(std::vector<int64_t>{4}, {1}, dtype::i64), 0), std::invalid_argument);

  const array c = array::from({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(cumsum(c, 1).to_vector<float>(), (std::vector<float>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(cumsum(c, 0).to_vector<float>(), (std::vector<float>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(cumsum(c, 1, true).to_vector<float>(), (std::vector<float>{6, 5, 3, 15, 11, 6}));
  EXPECT_EQ(cumsum(c, 1, false, false).to_vector<float>(), (std::vector<float>{0, 1, 3, 0, 4, 9}));
  EXPECT_EQ(cumsum(array::from({1, 2}, {2}, dtype::i32), 0).type(), dtype::i64);
}

TEST(OpsReference, SortArgsortTopk) {
  const array x = test::randn(23, {6, 37});
  const array s = sort(x, 1), order = argsort(x, 1);
  const auto xv = x.to_vector<double>(), sv = s.to_vector<double>();
  const auto ov = order.to_vector<int64_t>();
  for (int r = 0; r < 6; ++r) {
    std::vector<double> row(xv.begin() + r * 37, xv.begin() + (r + 1) * 37);
    std::sort(row.begin(), row.end());
    for (int i = 0; i < 37; ++i) {
      ASSERT_EQ(sv[r * 37 + i], row[i]);
      ASSERT_EQ(xv[r * 37 + ov[r * 37 + i]], row[i]);
    }
  }
  const auto [values, indices] = topk(x, 5, 1);
  EXPECT_EQ(values.shape(), (shape_t{6, 5}));
  const auto vv = values.to_vector<double>();
  for (int r = 0; r < 6; ++r)
    for (int i = 0; i < 5; ++i) ASSERT_EQ(vv[r * 5 + i], sv[r * 37 + 36 - i]);
  // Ties keep index order (stable); NaN sorts last and tops topk.
  const array t = array::from({2, 1, 2, std::nanf(""), 1}, {5});
  EXPECT_EQ(argsort(t).to_vector<int64_t>(), (std::vector<int64_t>{1, 4, 0, 2, 3}));
  EXPECT_EQ(topk(t, 3).second.to_vector<int64_t>(), (std::vector<int64_t>{3, 0, 2}));
  EXPECT_EQ(sort(x, 0).shape(), x.shape());
  EXPECT_THROW(topk(x, 38, 1), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd
