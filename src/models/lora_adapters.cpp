#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "mlxd/io/file_text.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/lora.h"

namespace mlxd::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string peft_prefix = "base_model.model.";
const std::string config_file = "adapter_config.json";
const std::string tensor_file = "adapter_model.safetensors";

[[noreturn]] void bad(const fs::path& file, const std::string& what) {
  throw std::invalid_argument("[lora] " + file.string() + ": " + what);
}

// A message of a nested check without its own "[lora] " tag, for bad() to prefix with the file.
std::string untagged(const std::invalid_argument& e) {
  const std::string m = e.what(), tag = "[lora] ";
  return m.starts_with(tag) ? m.substr(tag.size()) : m;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Without a model config: every tensor is an A or B of a targeted module, A and B come in pairs, and their
// ranks are r.
void check_pairs(const fs::path& file, const lora_config& config,
                 const std::map<std::string, array>& params) {
  for (const auto& [name, a] : params) {
    const bool is_a = ends_with(name, ".lora_A.weight");
    if (!is_a && !ends_with(name, ".lora_B.weight"))
      bad(file, "unexpected tensor " + name + " (only lora_A and lora_B weights are supported)");
    const std::string module = name.substr(0, name.size() - std::string(".lora_A.weight").size());
    const std::string leaf = module.substr(module.rfind('.') + 1);
    if (std::find(config.targets.begin(), config.targets.end(), leaf) == config.targets.end())
      bad(file, "tensor " + name + " adapts " + leaf + ", which target_modules does not list");
    const std::string other = module + (is_a ? ".lora_B.weight" : ".lora_A.weight");
    if (!params.contains(other)) bad(file, "tensor " + name + " has no partner " + other);
    if (a.ndim() != 2 || !is_floating(a.type()) || a.shape(is_a ? 0 : 1) != config.rank) {
      bad(file, "tensor " + name + " is " + a.to_string() + ", r = " + std::to_string(config.rank) +
                    " needs a float [" + (is_a ? "r, in" : "out, r") + "] matrix");
    }
  }
  if (params.empty()) bad(file, "holds no adapter tensors");
}

template <class T>
T get(const json& j, const char* key, const fs::path& file) {
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    bad(file, std::string("\"") + key + "\" is missing or has the wrong type");
  }
}

bool present(const json& j, const char* key) {
  return j.contains(key) && !j[key].is_null();
}

lora_config parse_config(const fs::path& file, const json& j) {
  if (!j.is_object()) bad(file, "not a JSON object");
  if (get<std::string>(j, "peft_type", file) != "LORA")
    bad(file,
        "\"peft_type\" is \"" + j["peft_type"].get<std::string>() + "\"; only LORA adapters are supported");
  lora_config c;
  if (!j.contains("r") || !j["r"].is_number_integer()) bad(file, "\"r\" must be an integer");
  c.rank = j["r"].get<int64_t>();
  if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number()) bad(file, "\"lora_alpha\" must be a number");
  c.alpha = j["lora_alpha"].get<double>();
  if (present(j, "lora_dropout")) {
    if (!j["lora_dropout"].is_number()) bad(file, "\"lora_dropout\" must be a number");
    c.dropout = j["lora_dropout"].get<double>();
  }
  const json& targets = j.contains("target_modules") ? j["target_modules"] : json();
  if (targets.is_string() && targets.get<std::string>() == "all-linear") {
    c.targets = lora_modules();
  } else if (targets.is_array()) {
    c.targets.clear();
    for (const json& t : targets) {
      if (!t.is_string()) bad(file, "\"target_modules\" must list module names");
      c.targets.push_back(t.get<std::string>());
    }
  } else {
    bad(file,
        "\"target_modules\" must be a list of module names or \"all-linear\" (regular expressions are not "
        "supported)");
  }
  if (present(j, "bias") && j["bias"] != "none")
    bad(file, "\"bias\" must be \"none\"; trained biases are not supported");
  for (const char* flag : {"use_rslora", "use_dora", "fan_in_fan_out"}) {
    if (present(j, flag) && j[flag] != false) bad(file, std::string("\"") + flag + "\" is not supported");
  }
  for (const char* field :
       {"layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "modules_to_save"}) {
    if (present(j, field) && !j[field].empty()) bad(file, std::string("\"") + field + "\" is not supported");
  }
  try {
    check_lora_config(c);
  } catch (const std::invalid_argument& e) {
    bad(file, untagged(e));
  }
  return c;
}

}  // namespace

void save_lora_adapters(const fs::path& dir, const lora_config& config,
                        const std::map<std::string, array>& lora_params, const std::string& base_model) {
  check_lora_config(config);
  check_pairs(dir / tensor_file, config, lora_params);
  json j = {{"peft_type", "LORA"},
            {"task_type", "CAUSAL_LM"},
            {"r", config.rank},
            {"target_modules", config.targets},
            {"bias", "none"},
            {"fan_in_fan_out", false},
            {"inference_mode", true},
            {"use_rslora", false},
            {"use_dora", false},
            {"modules_to_save", nullptr},
            {"base_model_name_or_path", base_model.empty() ? json() : json(base_model)}};
  // PEFT writes an integral alpha as an integer.
  if (std::floor(config.alpha) == config.alpha && std::fabs(config.alpha) < 1e15)
    j["lora_alpha"] = static_cast<int64_t>(config.alpha);
  else
    j["lora_alpha"] = config.alpha;
  j["lora_dropout"] = config.dropout;
  fs::create_directories(dir);
  std::map<std::string, array> prefixed;
  for (const auto& [name, a] : lora_params) prefixed.emplace(peft_prefix + name, a);
  save_safetensors(dir / tensor_file, prefixed, {{"format", "pt"}});
  std::ofstream out(dir / config_file);
  out << j.dump(2) << "\n";
  if (!out.flush()) throw io_error("[lora] cannot write " + (dir / config_file).string());
}

lora_adapters load_lora_adapters(const fs::path& dir, const llama_config* model) {
  const fs::path cfg_path = dir / config_file, tensor_path = dir / tensor_file;
  const auto text = io::read_file(cfg_path);
  if (!text)
    throw io_error("[lora] cannot read " + cfg_path.string() + " (is " + dir.string() +
                   " an adapter folder?)");
  json j;
  try {
    j = json::parse(*text);
  } catch (const json::exception& e) {
    bad(cfg_path, std::string("not valid JSON: ") + e.what());
  }
  lora_adapters out;
  out.config = parse_config(cfg_path, j);
  if (present(j, "base_model_name_or_path"))
    out.base_model = get<std::string>(j, "base_model_name_or_path", cfg_path);
  if (!fs::exists(tensor_path) && fs::exists(dir / "adapter_model.bin"))
    bad(dir / "adapter_model.bin", "PyTorch pickles are not read; save the adapters as safetensors");
  for (auto& [name, a] : load_safetensors(tensor_path).tensors)
    out.params.emplace(name.starts_with(peft_prefix) ? name.substr(peft_prefix.size()) : name, std::move(a));
  check_pairs(tensor_path, out.config, out.params);
  if (model) {
    try {
      check_lora_params(*model, out.config, out.params);
    } catch (const std::invalid_argument& e) {
      bad(tensor_path, untagged(e));
    }
    const std::vector<std::string> names = lora_param_names(*model, out.config);
    const std::set<std::string> expected(names.begin(), names.end());
    for (const auto& [name, a] : out.params)
      if (!expected.contains(name)) bad(tensor_path, "tensor " + name + " adapts no module of the model");
  }
  return out;
}

}  // namespace mlxd::models
