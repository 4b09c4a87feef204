#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdlib>

#include "mlxd/trainer/train_config.h"

namespace mlxd::trainer {
namespace {

// A plain scalar as JSON's null, bool, integer or number when it reads fully as one, else a string.
nlohmann::json plain_scalar(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  bool b = false;
  if (YAML::convert<bool>::decode(node, b)) return b;
  const char* first = s.data() + (s.front() == '+' ? 1 : 0);
  int64_t i = 0;
  auto [end, ec] = std::from_chars(first, s.data() + s.size(), i);
  if (ec == std::errc() && end == s.data() + s.size()) return i;
  char* stop = nullptr;
  const double d = std::strtod(s.c_str(), &stop);
  if (stop == s.c_str() + s.size()) return d;
  return s;
}

nlohmann::json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = to_json(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(to_json(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? nlohmann::json(node.Scalar()) : plain_scalar(node);
    default:
      return nullptr;
  }
}

}  // namespace

nlohmann::json yaml_to_json(const std::string& text, const std::string& source) {
  try {
    return to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw config_error(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                       std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

}  // namespace mlxd::trainer
