#include <cstdio>

#include "io/strict_json.h"
#include "mlxd/io/gguf.h"

namespace mlxd {

bool gguf_array::operator==(const gguf_array& o) const {
  return type == o.type && values == o.values;
}

void gguf_value::throw_type_mismatch(gguf_type wanted) const {
  throw io_error("gguf metadata: value is " + std::string(gguf_type_name(type())) + ", not " +
                 std::string(gguf_type_name(wanted)));
}

bool gguf_metadata::insert(std::string key, gguf_value value) {
  if (index_.contains(key)) return false;
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(value));
  return true;
}

void gguf_metadata::set(const std::string& key, gguf_value value) {
  if (const auto it = index_.find(key); it != index_.end()) {
    entries_[it->second].second = std::move(value);
  } else {
    insert(key, std::move(value));
  }
}

const gguf_value* gguf_metadata::find(std::string_view key) const {
  const auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const gguf_value& gguf_metadata::at(std::string_view key) const {
  const gguf_value* v = find(key);
  if (!v) throw io_error("gguf metadata: no key " + detail::quote(key));
  return *v;
}

std::string describe(const gguf_value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return detail::quote(x);
        } else if constexpr (std::is_same_v<T, gguf_array>) {
          constexpr size_t shown = 4;
          std::string s =
              "array<" + std::string(gguf_type_name(x.type)) + ">[" + std::to_string(x.values.size()) + "]";
          if (x.values.empty()) return s;
          s += " {";
          for (size_t i = 0; i < x.values.size() && i < shown; ++i)
            s += (i ? ", " : "") + describe(x.values[i]);
          return s + (x.values.size() > shown ? ", ...}" : "}");
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_floating_point_v<T>) {
          char buf[32];
          std::snprintf(buf, sizeof buf, sizeof(T) == 4 ? "%.9g" : "%.17g", static_cast<double>(x));
          return buf;
        } else {
          return std::to_string(x);
        }
      },
      v.value());
}

}  // namespace mlxd
