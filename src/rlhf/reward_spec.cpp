// parse_reward_spec: a reward from its JSON (or YAML-as-JSON) spec, with strict keys.
#include <set>
#include <stdexcept>

#include "mlxd/rlhf/rewards.h"

namespace mlxd::rlhf {
namespace {

[[noreturn]] void bad(const std::string& key, const std::string& what) {
  throw std::invalid_argument("reward" + (key.empty() ? "" : "." + key) + ": " + what);
}

// The spec's keys must be among `allowed`; names the first that is not.
void check_keys(const nlohmann::json& spec, const std::string& kind, const std::set<std::string>& allowed) {
  for (const auto& [key, value] : spec.items()) {
    if (!allowed.count(key)) {
      std::string list;
      for (const std::string& k : allowed) list += (list.empty() ? "" : ", ") + k;
      bad(key, "unknown key for kind \"" + kind + "\" (allowed: " + list + ")");
    }
  }
}

std::string text(const nlohmann::json& spec, const std::string& key) {
  if (!spec.contains(key)) bad(key, "missing");
  const nlohmann::json& v = spec[key];
  if (!v.is_string() || v.get<std::string>().empty())
    bad(key, "expected a non-empty string, got " + v.dump());
  return v.get<std::string>();
}

bool flag(const nlohmann::json& spec, const std::string& key, bool fallback) {
  if (!spec.contains(key)) return fallback;
  if (!spec[key].is_boolean()) bad(key, "expected true or false, got " + spec[key].dump());
  return spec[key].get<bool>();
}

}  // namespace

std::unique_ptr<reward_function> parse_reward_spec(const nlohmann::json& spec) {
  if (!spec.is_object()) bad("", "expected an object with a \"kind\", got " + spec.dump());
  const std::string kind = text(spec, "kind");
  if (kind == "contains") {
    check_keys(spec, kind, {"kind", "word", "ignore_case", "whole_word"});
    return make_contains_reward(text(spec, "word"), flag(spec, "ignore_case", false),
                                flag(spec, "whole_word", true));
  }
  if (kind == "length") {
    check_keys(spec, kind, {"kind", "target", "unit"});
    if (!spec.contains("target")) bad("target", "missing");
    const nlohmann::json& t = spec["target"];
    if (!t.is_number_integer() || t.get<int64_t>() < 1)
      bad("target", "expected an integer >= 1, got " + t.dump());
    const std::string unit = spec.contains("unit") ? text(spec, "unit") : "tokens";
    if (unit != "tokens" && unit != "characters")
      bad("unit", "expected \"tokens\" or \"characters\", got \"" + unit + "\"");
    return make_length_reward(t.get<int64_t>(),
                              unit == "tokens" ? length_unit::tokens : length_unit::characters);
  }
  if (kind == "regex") {
    check_keys(spec, kind, {"kind", "pattern", "ignore_case"});
    const std::string pattern = text(spec, "pattern");
    try {
      return make_regex_reward(pattern, flag(spec, "ignore_case", false));
    } catch (const std::invalid_argument& e) {
      bad("pattern", e.what());
    }
  }
  if (kind == "command") {
    check_keys(spec, kind, {"kind", "run", "timeout_s"});
    if (!spec.contains("run")) bad("run", "missing");
    const nlohmann::json& run = spec["run"];
    if (!run.is_array() || run.empty())
      bad("run", "expected a non-empty list of strings (the program and its arguments)");
    std::vector<std::string> argv;
    for (size_t i = 0; i < run.size(); ++i) {
      if (!run[i].is_string() || (i == 0 && run[i].get<std::string>().empty()))
        bad("run[" + std::to_string(i) + "]", "expected a string, got " + run[i].dump());
      argv.push_back(run[i].get<std::string>());
    }
    double timeout = 60;
    if (spec.contains("timeout_s")) {
      const nlohmann::json& t = spec["timeout_s"];
      if (!t.is_number() || !(t.get<double>() > 0 && t.get<double>() <= 86400))
        bad("timeout_s", "expected a number of seconds in (0, 86400], got " + t.dump());
      timeout = spec["timeout_s"].get<double>();
    }
    return make_command_reward(std::move(argv), timeout);
  }
  bad("kind", "unknown kind \"" + kind + "\" (expected contains, length, regex or command)");
}

}  // namespace mlxd::rlhf
