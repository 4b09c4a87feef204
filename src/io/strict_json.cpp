#include "io/strict_json.h"

#include <set>
#include <vector>

namespace mlxd::detail {

namespace {

struct strict_json_fault {
  std::string what;
};

}  // namespace

std::optional<nlohmann::json> parse_strict_json(std::string_view text, int max_depth, std::string& error) {
  using event_t = nlohmann::json::parse_event_t;
  std::vector<std::set<std::string>> open_objects;  // keys seen so far in each enclosing object
  auto check = [&](int depth, event_t event, nlohmann::json& parsed) {
    switch (event) {
      case event_t::object_start:
      case event_t::array_start:
        // `depth` counts the containers already open around this one.
        if (depth >= max_depth) {
          throw strict_json_fault{"nesting deeper than " + std::to_string(max_depth) + " levels"};
        }
        if (event == event_t::object_start) open_objects.emplace_back();
        break;
      case event_t::object_end:
        open_objects.pop_back();
        break;
      case event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second) throw strict_json_fault{"duplicate key " + quote(key)};
        break;
      }
      default:
        break;
    }
    return true;
  };
  // nlohmann takes a NUL byte for the end of input and would ignore whatever follows it.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    error = "NUL byte at offset " + std::to_string(nul);
    return std::nullopt;
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end(), check);
  } catch (const strict_json_fault& fault) {
    error = fault.what;
  } catch (const nlohmann::json::exception& e) {
    error = e.what();
  }
  return std::nullopt;
}

std::string quote(std::string_view s) {
  constexpr size_t max_shown = 120;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  if (s.size() > max_shown) out += "...";
  return out + "'";
}

}  // namespace mlxd::detail
