#include "mlxd/models/lora.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "lora_branch.h"
#include "mlxd/core/ops.h"

namespace mlxd::models {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("[lora] " + what);
}

constexpr int n_modules = 7;

}  // namespace

const std::vector<std::string>& lora_modules() {
  static const std::vector<std::string> modules = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                   "gate_proj", "up_proj", "down_proj"};
  return modules;
}

void check_lora_config(const lora_config& c) {
  if (c.rank < 1) fail("rank must be >= 1, got " + std::to_string(c.rank));
  if (!std::isfinite(c.alpha)) fail("alpha must be finite");
  if (!(c.dropout >= 0.0 && c.dropout < 1.0))
    fail("dropout must be in [0, 1), got " + std::to_string(c.dropout));
  if (c.targets.empty()) fail("no target modules");
  const auto& known = lora_modules();
  for (size_t i = 0; i < c.targets.size(); ++i) {
    if (std::find(known.begin(), known.end(), c.targets[i]) == known.end()) {
      fail("unknown target module \"" + c.targets[i] +
           "\" (known: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)");
    }
    if (std::find(c.targets.begin(), c.targets.begin() + static_cast<std::ptrdiff_t>(i), c.targets[i]) !=
        c.targets.begin() + static_cast<std::ptrdiff_t>(i))
      fail("target module \"" + c.targets[i] + "\" given twice");
  }
}

std::vector<lora_site> lora_sites(const llama_config& c, const lora_config& lora) {
  check_lora_config(lora);
  const int64_t h = c.hidden_size, q = int64_t{c.n_heads} * c.head_dim,
                kv = int64_t{c.n_kv_heads} * c.head_dim, ffn = c.intermediate_size;
  // [out, in] of each module's weight, in lora_modules() order.
  const int64_t shapes[n_modules][2] = {{q, h}, {kv, h}, {kv, h}, {h, q}, {ffn, h}, {ffn, h}, {h, ffn}};
  const auto& modules = lora_modules();
  std::vector<lora_site> sites;
  for (int l = 0; l < c.n_layers; ++l) {
    for (int m = 0; m < n_modules; ++m) {
      if (std::find(lora.targets.begin(), lora.targets.end(), modules[m]) == lora.targets.end()) continue;
      const std::string group = m < 4 ? ".self_attn." : ".mlp.";
      sites.push_back({"model.layers." + std::to_string(l) + group + modules[m], shapes[m][0], shapes[m][1],
                       static_cast<uint64_t>(l) * n_modules + static_cast<uint64_t>(m)});
    }
  }
  return sites;
}

std::vector<std::string> lora_param_names(const llama_config& model, const lora_config& lora) {
  std::vector<std::string> names;
  for (const lora_site& s : lora_sites(model, lora)) {
    names.push_back(s.a_name());
    names.push_back(s.b_name());
  }
  return names;
}

std::map<std::string, array> init_lora_params(const llama_config& model, const lora_config& lora,
                                              uint64_t seed) {
  std::map<std::string, array> params;
  for (const lora_site& s : lora_sites(model, lora)) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(s.in));
    params[s.a_name()] = random::uniform(random::split({seed}, s.index), {lora.rank, s.in}, -bound, bound);
    params[s.b_name()] = zeros({s.out, lora.rank});
  }
  return params;
}

void check_lora_params(const llama_config& model, const lora_config& lora,
                       const std::map<std::string, array>& params) {
  for (const lora_site& s : lora_sites(model, lora)) {
    for (const auto& [name, shape] : {std::pair{s.a_name(), shape_t{lora.rank, s.in}},
                                      std::pair{s.b_name(), shape_t{s.out, lora.rank}}}) {
      auto it = params.find(name);
      if (it == params.end()) fail("missing adapter tensor " + name);
      if (it->second.shape() != shape) {
        fail("adapter tensor " + name + " is " + it->second.to_string() + ", rank " +
             std::to_string(lora.rank) + " and the model need " + shape_to_string(shape));
      }
      if (!is_floating(it->second.type()))
        fail("adapter tensor " + name + " is " + it->second.to_string() + ", not float");
    }
  }
}

array lora_branch(const array& x, const lora_forward& lora, const std::map<std::string, array>& params,
                  const lora_site& site) {
  auto as_x = [&](const array& a) { return a.type() == x.type() ? a : astype(a, x.type()); };
  const array a = as_x(params.at(site.a_name()));  // [rank, in]
  const array b = as_x(params.at(site.b_name()));  // [out, rank]
  const float p = static_cast<float>(lora.config.dropout);
  const array in =
      lora.training && p > 0.0f ? random::dropout(random::split(lora.dropout_key, site.index), x, p) : x;
  // Scaling the [N, rank] middle is the cheapest place for it.
  const array low = multiply(matmul(in, transpose(a)), scalar(lora.config.scale(), x.type()));
  return matmul(low, transpose(b));  // [N, out]
}

std::map<std::string, array> fuse_lora(const llama_config& config, std::map<std::string, array> base,
                                       const lora_adapters& adapters) {
  check_lora_params(config, adapters.config, adapters.params);
  const double scale = adapters.config.scale();
  for (const lora_site& s : lora_sites(config, adapters.config)) {
    auto it = base.find(s.module + ".weight");
    if (it == base.end()) fail("the base model has no weight " + s.module + ".weight to fuse into");
    const array& w = it->second;
    if (w.shape() != shape_t{s.out, s.in})
      fail("base weight " + it->first + " is " + w.to_string() + ", the config needs " +
           shape_to_string({s.out, s.in}));
    if (!is_floating(w.type()))
      fail("base weight " + it->first + " is " + w.to_string() + "; fusing needs a float weight");
    const array delta = matmul(astype(adapters.params.at(s.b_name()), dtype::f32),
                               astype(adapters.params.at(s.a_name()), dtype::f32));  // [out, in]
    const array fused = add(astype(w, dtype::f32), multiply(delta, scalar(scale, dtype::f32)));
    it->second = w.type() == dtype::f32 ? fused : astype(fused, w.type());
  }
  return base;
}

}  // namespace mlxd::models
