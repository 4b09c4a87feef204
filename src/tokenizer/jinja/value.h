// The values a chat template computes with: Jinja's undefined, none, booleans, integers, floats, strings,
// lists, dicts (insertion-ordered, as Python's), namespaces (mutable attribute bags), built-in functions and
// macros. Semantics follow @huggingface/jinja, the renderer of transformers.js, which tests compare against.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mlxd::jinja {

struct stmt;
class value;

using value_list = std::vector<value>;

// A dict: keys in insertion order. Templates hold a handful of keys, so lookup is a linear scan.
struct value_dict {
  std::vector<std::pair<std::string, value>> entries;
  const value* find(std::string_view key) const;
  void set(std::string key, value v);
};

// Arguments of a call: positional, then keyword in the order written.
struct call_args {
  std::vector<value> positional;
  std::vector<std::pair<std::string, value>> keyword;
  const value* keyword_arg(std::string_view name) const;
};

using builtin_function = std::function<value(const call_args&)>;

enum class value_kind {
  undefined,
  none,
  boolean,
  integer,
  floating,
  string,
  list,
  dict,
  name_space,
  function,
  macro
};

class value {
 public:
  value() = default;  // undefined
  static value none();
  static value boolean(bool b);
  static value integer(int64_t i);
  static value floating(double d);
  static value string(std::string s);
  static value list(value_list items);
  static value dict(value_dict entries);
  static value name_space(value_dict entries);
  static value function(builtin_function fn);
  static value macro(const stmt* definition);
  static value from_json(const nlohmann::ordered_json& json);

  value_kind kind() const { return kind_; }
  bool is(value_kind k) const { return kind_ == k; }
  bool is_undefined() const { return kind_ == value_kind::undefined; }
  bool is_number() const { return kind_ == value_kind::integer || kind_ == value_kind::floating; }
  bool is_mapping() const { return kind_ == value_kind::dict || kind_ == value_kind::name_space; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_double() const { return kind_ == value_kind::floating ? d_ : static_cast<double>(i_); }
  const std::string& as_string() const { return *s_; }
  const value_list& as_list() const { return *list_; }
  const value_dict& as_dict() const { return *dict_; }
  value_dict& mutable_dict() const { return *dict_; }  // namespaces are mutable through every copy
  const builtin_function& as_function() const { return *fn_; }
  const stmt* as_macro() const { return macro_; }

  // Python truthiness: empty strings, lists and dicts, zero, none and undefined are false.
  bool truthy() const;
  // Jinja's "{{ x }}": none and undefined print nothing, lists and dicts print as JSON.
  std::string to_output() const;
  // The kind's name for error messages ("string", "list", ...).
  std::string_view kind_name() const;

 private:
  value_kind kind_ = value_kind::undefined;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const value_list> list_;
  std::shared_ptr<value_dict> dict_;
  std::shared_ptr<const builtin_function> fn_;
  const stmt* macro_ = nullptr;
};

// ==, as the reference: numbers (and booleans) by value, strings by content, undefined equals none,
// lists and dicts by identity.
bool loosely_equal(const value& a, const value& b);
// Strict membership test used by `in` over lists: same kind and value.
bool strictly_equal(const value& a, const value& b);
// Ordering for sort and comparisons: numbers with numbers, strings with strings (optionally
// case-insensitive); anything else throws chat_template_error.
int compare_values(const value& a, const value& b, bool case_sensitive);

struct json_format {
  int indent = 0;  // 0: one line
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
};
// The `tojson` filter (Python's json.dumps as transformers configures it: insertion order, non-ASCII kept).
std::string to_json_text(const value& v, const json_format& format, bool undefined_as_null = true);

}  // namespace mlxd::jinja
