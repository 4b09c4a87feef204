// Optimizers against PyTorch: golden/optim_golden.json holds parameters after every step (and the final
// moments) of torch.optim.Adam, AdamW and SGD, and of a Lion written from its paper, on the same inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "mlxd/train/adam.h"
#include "mlxd/train/lion.h"
#include "mlxd/train/sgd.h"

namespace mlxd::train {
namespace {

using json = nlohmann::json;

const json& golden() {
  static const json j = [] {
    std::ifstream in(std::string(MLXD_TRAIN_GOLDEN_DIR) + "/optim_golden.json");
    if (!in) throw std::runtime_error("cannot open optim_golden.json");
    return json::parse(in);
  }();
  return j;
}

array to_array(const json& values, const json& shape) {
  return array::from(values.get<std::vector<float>>(), shape.get<shape_t>());
}

std::unique_ptr<optimizer> build(const json& c, const std::vector<std::string>& names,
                                 const std::vector<array>& params) {
  const json& o = c["options"];
  std::vector<param_group> groups;
  for (const json& g : c.value("groups", json::array())) {
    param_group pg{g["pattern"], g["lr_scale"], {}};
    if (g.contains("weight_decay")) pg.weight_decay = g["weight_decay"].get<double>();
    groups.push_back(pg);
  }
  const std::string kind = c["optimizer"];
  if (kind == "sgd") {
    return std::make_unique<sgd>(
        names, params, sgd_options{o["momentum"], o["dampening"], o["weight_decay"], o["nesterov"]}, groups);
  }
  if (kind == "lion") {
    return std::make_unique<lion>(names, params, lion_options{o["beta1"], o["beta2"], o["weight_decay"]},
                                  groups);
  }
  return std::make_unique<adam>(names, params,
                                adam_options{o["beta1"], o["beta2"], o["eps"], o["weight_decay"]},
                                kind == "adamw", groups);
}

// Relative error 1e-6 against the tensor's largest magnitude. PyTorch's vectorised CPU kernels fuse
// `a + alpha * b` into one FMA where these loops round twice, so elements that cancel (a moment passing
// through zero) differ by an ulp of the terms, not of the result; a per-element relative test would flag
// those.
void expect_close(const std::vector<float>& actual, const json& expected, const std::string& what) {
  const auto want = expected.get<std::vector<double>>();
  ASSERT_EQ(actual.size(), want.size()) << what;
  double scale = 0.0;
  for (double w : want) scale = std::max(scale, std::abs(w));
  const double tol = 1e-6 * scale + 1e-12;
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(actual[i], want[i], tol) << what << "[" << i << "]";
}

TEST(OptimizerGolden, MatchesPyTorchEveryStep) {
  ASSERT_GE(golden()["cases"].size(), 6u);
  for (const json& c : golden()["cases"]) {
    const std::string case_name = c["name"];
    SCOPED_TRACE(case_name);
    std::vector<std::string> names;
    std::vector<array> params;
    for (const auto& [name, shape] : c["shapes"].items()) {
      names.push_back(name);
      params.push_back(to_array(c["init"][name], shape));
    }
    auto opt = build(c, names, params);
    const size_t steps = c["lrs"].size();
    ASSERT_EQ(c["grads"].size(), steps);
    for (size_t s = 0; s < steps; ++s) {
      std::vector<array> grads;
      for (const std::string& name : names) grads.push_back(to_array(c["grads"][s][name], c["shapes"][name]));
      opt->step(params, grads, c["lrs"][s].get<double>());
      for (size_t i = 0; i < names.size(); ++i) {
        expect_close(params[i].to_vector<float>(), c["expected"][s][names[i]],
                     case_name + " step " + std::to_string(s + 1) + " " + names[i]);
      }
    }
    const auto state = opt->state();
    EXPECT_EQ(state.at("step").item<int64_t>(), static_cast<int64_t>(steps));
    EXPECT_EQ(state.size(), c["final_state"].size() + 1);
    for (const auto& [key, values] : c["final_state"].items()) {
      ASSERT_TRUE(state.contains(key)) << key;
      expect_close(state.at(key).to_vector<float>(), values, case_name + " state " + key);
    }
  }
}

}  // namespace
}  // namespace mlxd::train
