#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/jinja/text.h"

namespace mlxd::jinja {

const value* value_dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

void value_dict::set(std::string key, value v) {
  for (auto& [k, existing] : entries) {
    if (k == key) {
      existing = std::move(v);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(v));
}

const value* call_args::keyword_arg(std::string_view name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

value value::none() {
  value v;
  v.kind_ = value_kind::none;
  return v;
}

value value::boolean(bool b) {
  value v;
  v.kind_ = value_kind::boolean;
  v.b_ = b;
  return v;
}

value value::integer(int64_t i) {
  value v;
  v.kind_ = value_kind::integer;
  v.i_ = i;
  return v;
}

value value::floating(double d) {
  value v;
  v.kind_ = value_kind::floating;
  v.d_ = d;
  return v;
}

value value::string(std::string s) {
  value v;
  v.kind_ = value_kind::string;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

value value::list(value_list items) {
  value v;
  v.kind_ = value_kind::list;
  v.list_ = std::make_shared<const value_list>(std::move(items));
  return v;
}

value value::dict(value_dict entries) {
  value v;
  v.kind_ = value_kind::dict;
  v.dict_ = std::make_shared<value_dict>(std::move(entries));
  return v;
}

value value::name_space(value_dict entries) {
  value v = dict(std::move(entries));
  v.kind_ = value_kind::name_space;
  return v;
}

value value::function(builtin_function fn) {
  value v;
  v.kind_ = value_kind::function;
  v.fn_ = std::make_shared<const builtin_function>(std::move(fn));
  return v;
}

value value::macro(const stmt* definition) {
  value v;
  v.kind_ = value_kind::macro;
  v.macro_ = definition;
  return v;
}

value value::from_json(const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return boolean(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return integer(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return json.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX) ? integer(json.get<int64_t>())
                                                                      : floating(json.get<double>());
    case nlohmann::ordered_json::value_t::number_float:
      return floating(json.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return string(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      value_list items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(from_json(item));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      value_dict entries;
      for (const auto& [k, v] : json.items()) entries.entries.emplace_back(k, from_json(v));
      return dict(std::move(entries));
    }
    default:
      return value();
  }
}

bool value::truthy() const {
  switch (kind_) {
    case value_kind::undefined:
    case value_kind::none:
      return false;
    case value_kind::boolean:
      return b_;
    case value_kind::integer:
      return i_ != 0;
    case value_kind::floating:
      return d_ != 0 && !std::isnan(d_);
    case value_kind::string:
      return !s_->empty();
    case value_kind::list:
      return !list_->empty();
    case value_kind::dict:
      return !dict_->entries.empty();
    default:
      return true;
  }
}

std::string value::to_output() const {
  switch (kind_) {
    case value_kind::undefined:
    case value_kind::none:
      return {};
    case value_kind::boolean:
      return b_ ? "true" : "false";
    case value_kind::integer:
      return std::to_string(i_);
    case value_kind::floating:
      if (std::isfinite(d_) && d_ == std::trunc(d_) && std::fabs(d_) < 1e21) {
        std::string text = std::signbit(d_) && d_ == 0 ? "-" : "";
        text += js_number(d_);
        text += ".0";
        return text;
      }
      return js_number(d_);
    case value_kind::string:
      return *s_;
    case value_kind::list:
    case value_kind::dict:
    case value_kind::name_space:
      return to_json_text(*this, json_format{}, false);
    default:
      throw chat_template_error("a function or macro cannot be printed; call it");
  }
}

std::string_view value::kind_name() const {
  switch (kind_) {
    case value_kind::undefined:
      return "undefined";
    case value_kind::none:
      return "none";
    case value_kind::boolean:
      return "boolean";
    case value_kind::integer:
      return "integer";
    case value_kind::floating:
      return "float";
    case value_kind::string:
      return "string";
    case value_kind::list:
      return "list";
    case value_kind::dict:
      return "dict";
    case value_kind::name_space:
      return "namespace";
    case value_kind::function:
      return "function";
    case value_kind::macro:
      return "macro";
  }
  return "value";
}

namespace {

bool numeric_like(const value& v) {
  return v.is_number() || v.is(value_kind::boolean);
}

double numeric(const value& v) {
  return v.is(value_kind::boolean) ? (v.as_bool() ? 1.0 : 0.0) : v.as_double();
}

bool is_nothing(const value& v) {
  return v.is_undefined() || v.is(value_kind::none);
}

}  // namespace

bool loosely_equal(const value& a, const value& b) {
  if (numeric_like(a) && numeric_like(b)) return numeric(a) == numeric(b);
  if (is_nothing(a) || is_nothing(b)) return is_nothing(a) && is_nothing(b);
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case value_kind::string:
      return a.as_string() == b.as_string();
    case value_kind::list:
      return &a.as_list() == &b.as_list();
    case value_kind::dict:
    case value_kind::name_space:
      return &a.as_dict() == &b.as_dict();
    case value_kind::macro:
      return a.as_macro() == b.as_macro();
    default:
      return false;
  }
}

bool strictly_equal(const value& a, const value& b) {
  if (a.is_number() && b.is_number()) return a.as_double() == b.as_double();
  if (a.kind() != b.kind()) return false;
  return loosely_equal(a, b);
}

int compare_values(const value& a, const value& b, bool case_sensitive) {
  if (numeric_like(a) && numeric_like(b)) {
    const double x = numeric(a), y = numeric(b);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is(value_kind::string) && b.is(value_kind::string)) {
    if (case_sensitive)
      return a.as_string().compare(b.as_string()) < 0 ? -1 : (a.as_string() == b.as_string() ? 0 : 1);
    const std::string x = to_lower(a.as_string()), y = to_lower(b.as_string());
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (is_nothing(a) && a.kind() == b.kind()) return 0;
  throw chat_template_error("cannot compare " + std::string(a.kind_name()) + " with " +
                            std::string(b.kind_name()));
}

namespace {

void write_json(std::string& out, const value& v, const json_format& f, int depth, bool undefined_as_null) {
  std::string pad, child_pad;
  if (f.indent > 0) {
    pad.assign(1, '\n').append(static_cast<size_t>(f.indent * depth), ' ');
    child_pad = pad;
    child_pad.append(static_cast<size_t>(f.indent), ' ');
  }
  switch (v.kind()) {
    case value_kind::undefined:
      out += undefined_as_null ? "null" : "undefined";
      return;
    case value_kind::none:
      out += "null";
      return;
    case value_kind::boolean:
      out += v.as_bool() ? "true" : "false";
      return;
    case value_kind::integer:
      out += std::to_string(v.as_int());
      return;
    case value_kind::floating:
      out += std::isfinite(v.as_double()) ? js_number(v.as_double()) : "null";
      return;
    case value_kind::string:
      out += json_quote(v.as_string(), f.ensure_ascii);
      return;
    case value_kind::list: {
      const auto& items = v.as_list();
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += f.item_separator;
        out += child_pad;
        write_json(out, items[i], f, depth + 1, undefined_as_null);
      }
      if (!items.empty()) out += pad;
      out += ']';
      return;
    }
    case value_kind::dict:
    case value_kind::name_space: {
      auto entries = v.as_dict().entries;
      if (f.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out += f.item_separator;
        out += child_pad;
        out += json_quote(entries[i].first, f.ensure_ascii);
        out += f.key_separator;
        write_json(out, entries[i].second, f, depth + 1, undefined_as_null);
      }
      if (!entries.empty()) out += pad;
      out += '}';
      return;
    }
    default: {
      std::string message = "tojson: a ";
      message += v.kind_name();
      throw chat_template_error(message + " cannot be written as JSON");
    }
  }
}

}  // namespace

std::string to_json_text(const value& v, const json_format& format, bool undefined_as_null) {
  std::string out;
  write_json(out, v, format, 0, undefined_as_null);
  return out;
}

}  // namespace mlxd::jinja
