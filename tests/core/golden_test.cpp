// Replays golden values computed by an independent implementation (NumPy in float64, tests/core/golden/).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "mlxd/core/autograd.h"
#include "test_util.h"

namespace mlxd {
namespace {

using nlohmann::json;

array to_array(const json& j) {
  return array::from(j.at("data").get<std::vector<double>>(), j.at("shape").get<shape_t>(), dtype::f32);
}

array run_case(const json& c, const std::vector<array>& in) {
  const std::string op = c.at("op");
  const json& p = c.at("params");
  auto targets = [&] {
    const auto t = p.at("targets").get<std::vector<int64_t>>();
    return array::from(t, {static_cast<int64_t>(t.size())}, dtype::i64);
  };
  if (op == "softmax") return softmax(in[0], p.at("axis"));
  if (op == "log_softmax") return log_softmax(in[0], p.at("axis"));
  if (op == "logsumexp") return logsumexp(in[0], p.at("axes").get<axes_t>(), p.at("keepdims"));
  if (op == "var") return var(in[0], p.at("axes").get<axes_t>(), false, p.at("ddof"));
  if (op == "matmul") return matmul(in[0], in[1]);
  if (op == "gelu_erf") return gelu_erf(in[0]);
  if (op == "gelu") return gelu(in[0]);
  if (op == "silu") return silu(in[0]);
  if (op == "softplus") return softplus(in[0]);
  if (op == "log_sigmoid") return log_sigmoid(in[0]);
  if (op == "rms_norm") return rms_norm(in[0], in[1], p.at("eps"));
  if (op == "layer_norm") return layer_norm(in[0], in[1], in[2], p.at("eps"));
  if (op == "cumsum") return cumsum(in[0], p.at("axis"), p.at("reverse"));
  if (op == "cross_entropy") return cross_entropy(in[0], targets());
  if (op == "rope") {
    rope_options o;
    o.traditional = p.at("traditional");
    o.base = p.at("base");
    o.offset = p.at("offset");
    return rope(in[0], o);
  }
  if (op == "cross_entropy_grad") {
    const array t = targets();
    return grad([&](const std::vector<array>& x) { return sum(cross_entropy(x[0], t)); }, {in[0]})[0];
  }
  if (op == "rms_norm_grad_x" || op == "rms_norm_grad_w") {
    const float eps = p.at("eps");
    const auto g = grad([&](const std::vector<array>& x) { return sum(rms_norm(x[0], x[1], eps) * in[2]); },
                        {in[0], in[1]});
    return op == "rms_norm_grad_x" ? g[0] : g[1];
  }
  throw std::runtime_error("golden case with unknown op " + op);
}

TEST(Golden, OpsMatchNumpy) {
  std::ifstream file(MLXD_TEST_DATA_DIR "/core/golden/ops_golden.json");
  ASSERT_TRUE(file) << "missing golden file";
  const json golden = json::parse(file);
  ASSERT_EQ(golden.at("cases").size(), 19u);
  for (kernel_level level : {kernel_level::reference, best_kernel_level()}) {
    kernel_level_guard guard(level);
    for (const json& c : golden.at("cases")) {
      std::vector<array> in;
      for (const json& j : c.at("inputs")) in.push_back(to_array(j));
      EXPECT_TRUE(test::close(run_case(c, in), to_array(c.at("output")), 2e-5, 2e-6))
          << c.at("name").get<std::string>() << " at level " << kernel_level_name(level);
    }
  }
}

}  // namespace
}  // namespace mlxd
