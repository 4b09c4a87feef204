#include "mlxd/plot/run_log.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

namespace mlxd::plot {
namespace {

using json = nlohmann::json;

std::optional<double> number(const json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_number())
    throw std::invalid_argument(where + "\"" + key + "\" is " + it->dump() + ", not a number");
  return it->get<double>();
}

void add(series& s, double x, std::optional<double> y) {
  if (!y) return;
  s.x.push_back(x);
  s.y.push_back(*y);
}

}  // namespace

run_log parse_run_log(std::istream& in, const std::string& name) {
  run_log log;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    const std::string where = name + ":" + std::to_string(line_no) + ": ";
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json obj;
    try {
      obj = json::parse(line);
    } catch (const json::parse_error& e) {
      throw std::invalid_argument(where + "invalid JSON: " + e.what());
    }
    if (!obj.is_object())
      throw std::invalid_argument(where + "expected a JSON object, got " + obj.type_name());
    const auto step = number(obj, "step", where);
    if (!step) continue;
    if (obj.contains("skipped")) {
      ++log.n_skipped;
      continue;
    }
    add(log.loss, *step, number(obj, "loss", where));
    add(log.val_loss, *step, number(obj, "val_loss", where));
    add(log.lr, *step, number(obj, "lr", where));
  }
  return log;
}

run_log read_run_log(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  return parse_run_log(in, path);
}

}  // namespace mlxd::plot
