// value_and_grad's grad_ready_fn: it fires once per argument with exactly the gradient returned, and as soon
// as that gradient is final, while the backward pass still has the ops before it to walk.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "grad_check.h"
#include "mlxd/core/autograd.h"

namespace mlxd {
namespace {

using grad_check::randn;
using grad_check::weighted_sum;

// The identity on x, logging `name` when the backward pass runs through it.
array logged_identity(const array& x, const std::string& name, std::vector<std::string>& log) {
  array out;
  {
    autograd::no_grad plain;
    out = add(x, zeros(x.shape(), x.type()));
  }
  autograd::record(out, {x}, [&log, name](const array& ct) {
    log.push_back("backward " + name);
    return std::vector<array>{ct};
  });
  return out;
}

bool same_bytes(const array& a, const array& b) {
  if (a.shape() != b.shape() || a.type() != b.type()) return false;
  const array x = contiguous(a), y = contiguous(b);
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

TEST(GradReady, FiresOncePerArgumentWithTheReturnedGradient) {
  // v0 along two paths, v1 once, v2 unused, v3 f16.
  const loss_fn f = [](const std::vector<array>& v) {
    const array h = tanh(matmul(v[0], v[1]));
    return add(weighted_sum(multiply(h, h)), add(weighted_sum(exp(v[0]), 2), sum(astype(v[3], dtype::f32))));
  };
  const std::vector<array> args = {randn({3, 4}, 1), randn({4, 5}, 2), randn({2}, 3),
                                   astype(randn({6}, 4), dtype::f16)};
  std::vector<int> calls(args.size(), 0);
  std::vector<array> seen(args.size());
  const auto [value, grads] = value_and_grad(f, args, [&](size_t i, const array& g) {
    ASSERT_LT(i, args.size());
    ++calls[i];
    seen[i] = g;
    EXPECT_FALSE(autograd::is_recording());
  });
  const auto [plain_value, plain_grads] = value_and_grad(f, args);
  EXPECT_TRUE(same_bytes(value, plain_value));
  for (size_t i = 0; i < args.size(); ++i) {
    EXPECT_EQ(calls[i], 1) << "argument " << i;
    EXPECT_TRUE(same_bytes(seen[i], grads[i])) << "argument " << i;
    EXPECT_TRUE(same_bytes(grads[i], plain_grads[i])) << "argument " << i;
  }
  EXPECT_TRUE(array_equal(seen[2], zeros({2})));
  EXPECT_EQ(seen[3].type(), dtype::f16);
}

TEST(GradReady, ALateParameterIsReportedBeforeTheBackwardPassReachesEarlyOps) {
  // Two "layers": h = A(x * w0), loss = sum(B(h * w1)) + sum(C(h)) * w2. Walking back, w1 is final after B,
  // w2 once its multiply is passed, and w0 only after A.
  std::vector<std::string> log;
  const array x = randn({4}, 1);
  const loss_fn f = [&](const std::vector<array>& v) {
    const array h = logged_identity(multiply(x, v[0]), "A", log);
    const array top = sum(logged_identity(multiply(h, v[1]), "B", log));
    return add(top, multiply(sum(logged_identity(h, "C", log)), v[2]));
  };
  const auto grads =
      value_and_grad(f, {randn({4}, 2), randn({4}, 3), array(0.5f)}, [&](size_t i, const array&) {
        log.push_back("ready " + std::to_string(i));
      }).second;
  ASSERT_EQ(log.size(), 6u);
  const auto at = [&](const std::string& s) { return std::find(log.begin(), log.end(), s) - log.begin(); };
  EXPECT_LT(at("backward B"), at("ready 1"));
  EXPECT_LT(at("ready 1"), at("backward A"));
  EXPECT_LT(at("ready 2"), at("backward A"));
  EXPECT_LT(at("backward C"), at("backward A"));  // h's cotangent is complete only after both readers
  EXPECT_EQ(log.back(), "ready 0");
  // And the gradients are right: d/dw2 = sum(x * w0).
  EXPECT_TRUE(allclose(grads[2], sum(multiply(x, randn({4}, 2))), 1e-6, 1e-6));
}

}  // namespace
}  // namespace mlxd
