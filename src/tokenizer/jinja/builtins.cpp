#include "tokenizer/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/jinja/text.h"

namespace mlxd::jinja {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw chat_template_error(what);
}

std::string kind_of(const value& v) {
  return std::string(v.kind_name());
}

// Positional argument i, else keyword `name`, else null.
const value* arg(const call_args& args, size_t i, std::string_view name) {
  if (i < args.positional.size()) return &args.positional[i];
  return args.keyword_arg(name);
}

bool bool_arg(const call_args& args, size_t i, std::string_view name, bool fallback) {
  const value* v = arg(args, i, name);
  if (v == nullptr || v->is_undefined()) return fallback;
  if (!v->is(value_kind::boolean)) fail("the argument " + std::string(name) + " must be a boolean");
  return v->as_bool();
}

int64_t int_arg(const call_args& args, size_t i, std::string_view name, int64_t fallback) {
  const value* v = arg(args, i, name);
  if (v == nullptr || v->is_undefined() || v->is(value_kind::none)) return fallback;
  if (!v->is(value_kind::integer)) fail("the argument " + std::string(name) + " must be an integer");
  return v->as_int();
}

const std::string* string_arg(const call_args& args, size_t i, std::string_view name) {
  const value* v = arg(args, i, name);
  if (v == nullptr || v->is_undefined() || v->is(value_kind::none)) return nullptr;
  if (!v->is(value_kind::string)) fail("the argument " + std::string(name) + " must be a string");
  return &v->as_string();
}

value string_list(const std::vector<std::string>& parts) {
  value_list items;
  items.reserve(parts.size());
  for (const auto& p : parts) items.push_back(value::string(p));
  return value::list(std::move(items));
}

// The items a filter iterates: a list's items, a string's characters, a dict's keys.
value_list items_of(const value& v, std::string_view filter) {
  if (v.is(value_kind::list)) return v.as_list();
  if (v.is(value_kind::string)) return string_list(code_points(v.as_string())).as_list();
  if (v.is(value_kind::dict)) {
    value_list keys;
    for (const auto& [k, x] : v.as_dict().entries) keys.push_back(value::string(k));
    return keys;
  }
  fail("the filter " + std::string(filter) + " needs a list, a string or a dict, not a " + kind_of(v));
}

// "a.b.0": nested attribute lookups, as sort(attribute=) and map(attribute=) take.
value attribute_path(const value& v, const std::string& path) {
  const std::string dot = ".";
  value current = v;
  for (const auto& part : split(path, &dot, -1)) {
    const bool numeric = !part.empty() && part.size() < 18 &&
                         std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    current = numeric && current.is(value_kind::list)
                  ? get_item(current, value::integer(std::strtoll(part.c_str(), nullptr, 10)))
                  : get_attribute(current, part);
  }
  return current;
}

value sorted(const value& operand, const call_args& args) {
  const bool reverse = bool_arg(args, 0, "reverse", false);
  const bool case_sensitive = bool_arg(args, 1, "case_sensitive", false);
  const value* attribute = arg(args, 2, "attribute");
  value_list items = items_of(operand, "sort");
  auto key = [&](const value& v) {
    if (attribute == nullptr || attribute->is_undefined() || attribute->is(value_kind::none)) return v;
    return attribute_path(
        v, attribute->is(value_kind::integer) ? std::to_string(attribute->as_int()) : attribute->to_output());
  };
  std::stable_sort(items.begin(), items.end(), [&](const value& a, const value& b) {
    const int c = compare_values(key(a), key(b), case_sensitive);
    return reverse ? c > 0 : c < 0;
  });
  return value::list(std::move(items));
}

value to_json_filter(const value& operand, const call_args& args) {
  json_format format;
  format.indent = static_cast<int>(int_arg(args, 0, "indent", 0));
  format.ensure_ascii = bool_arg(args, 99, "ensure_ascii", false);
  format.sort_keys = bool_arg(args, 99, "sort_keys", false);
  if (format.indent > 0) format.item_separator = ",";
  if (const value* sep = args.keyword_arg("separators"); sep != nullptr && !sep->is(value_kind::none)) {
    if (!sep->is(value_kind::list) || sep->as_list().size() != 2 ||
        !sep->as_list()[0].is(value_kind::string) || !sep->as_list()[1].is(value_kind::string)) {
      fail("tojson: separators must be a pair of strings");
    }
    format.item_separator = sep->as_list()[0].as_string();
    format.key_separator = sep->as_list()[1].as_string();
  }
  return value::string(to_json_text(operand, format));
}

value indent(const value& operand, const call_args& args) {
  const int64_t width = int_arg(args, 0, "width", 4);
  const bool first = bool_arg(args, 1, "first", false);
  const bool blank = bool_arg(args, 2, "blank", false);
  const std::string pad(static_cast<size_t>(std::clamp<int64_t>(width, 0, 1024)), ' ');
  const std::string newline = "\n";
  const auto lines = split(operand.as_string(), &newline, -1);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    if ((i > 0 || first) && (blank || !lines[i].empty())) out += pad;
    out += lines[i];
  }
  return value::string(std::move(out));
}

value to_number(const value& operand, const call_args& args, bool integer) {
  const value* fallback = arg(args, 0, "default");
  const value zero = integer ? value::integer(0) : value::floating(0.0);
  switch (operand.kind()) {
    case value_kind::integer:
    case value_kind::floating:
      if (integer) return value::integer(static_cast<int64_t>(std::trunc(operand.as_double())));
      return value::floating(operand.as_double());
    case value_kind::boolean:
      return integer ? value::integer(operand.as_bool()) : value::floating(operand.as_bool() ? 1.0 : 0.0);
    case value_kind::string: {
      const std::string s = strip(operand.as_string(), true, true);
      char* end = nullptr;
      if (integer) {
        const long long n = std::strtoll(s.c_str(), &end, 10);
        if (!s.empty() && *end == '\0') return value::integer(n);
      } else {
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && *end == '\0') return value::floating(d);
      }
      return fallback != nullptr ? *fallback : zero;
    }
    default:
      return fallback != nullptr ? *fallback : zero;
  }
}

// select/reject(test, args...) and selectattr/rejectattr(attribute, test, args...).
value select_items(const value& operand, const call_args& args, bool keep, bool by_attribute,
                   std::string_view filter) {
  if (!operand.is(value_kind::list)) fail(std::string(filter) + " needs a list, not a " + kind_of(operand));
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    const std::string* a = string_arg(args, next++, "attribute");
    if (a == nullptr) fail(std::string(filter) + " needs an attribute name");
    attribute = *a;
  }
  const std::string* test = string_arg(args, next++, "test");
  call_args test_args;
  for (size_t i = next; i < args.positional.size(); ++i) test_args.positional.push_back(args.positional[i]);
  value_list out;
  for (const auto& item : operand.as_list()) {
    const value subject = by_attribute ? attribute_path(item, attribute) : item;
    const bool passed = test == nullptr ? subject.truthy() : apply_test(*test, subject, test_args);
    if (passed == keep) out.push_back(item);
  }
  return value::list(std::move(out));
}

value map_items(const value& operand, const call_args& args) {
  if (!operand.is(value_kind::list)) fail("map needs a list, not a " + kind_of(operand));
  value_list out;
  if (const value* attribute = args.keyword_arg("attribute")) {
    const value* fallback = args.keyword_arg("default");
    for (const auto& item : operand.as_list()) {
      value v = attribute_path(item, attribute->to_output());
      out.push_back(v.is_undefined() && fallback != nullptr ? *fallback : v);
    }
    return value::list(std::move(out));
  }
  const std::string* filter = string_arg(args, 0, "filter");
  if (filter == nullptr) fail("map needs attribute= or the name of a filter");
  call_args rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  for (const auto& item : operand.as_list()) out.push_back(apply_filter(*filter, item, rest));
  return value::list(std::move(out));
}

value dict_items(const value& d) {
  value_list out;
  for (const auto& [k, v] : d.as_dict().entries) out.push_back(value::list({value::string(k), v}));
  return value::list(std::move(out));
}

value dictsort(const value& d, const call_args& args) {
  const bool case_sensitive = bool_arg(args, 0, "case_sensitive", false);
  const std::string* by = string_arg(args, 1, "by");
  const bool reverse = bool_arg(args, 2, "reverse", false);
  const size_t index = by != nullptr && *by == "value" ? 1 : 0;
  if (by != nullptr && *by != "key" && *by != "value") fail("dictsort: by must be 'key' or 'value'");
  value_list items = dict_items(d).as_list();
  std::stable_sort(items.begin(), items.end(), [&](const value& a, const value& b) {
    const int c = compare_values(a.as_list()[index], b.as_list()[index], case_sensitive);
    return reverse ? c > 0 : c < 0;
  });
  return value::list(std::move(items));
}

value join(const value& operand, const call_args& args) {
  const std::string* sep = string_arg(args, 0, "d");
  if (sep == nullptr) sep = string_arg(args, 99, "separator");
  const value* attribute = args.keyword_arg("attribute");
  std::string out;
  bool first = true;
  for (const auto& item : items_of(operand, "join")) {
    if (!first && sep != nullptr) out += *sep;
    first = false;
    out += (attribute != nullptr ? attribute_path(item, attribute->to_output()) : item).to_output();
  }
  return value::string(std::move(out));
}

value string_replace(const std::string& s, const call_args& args) {
  const std::string* from = string_arg(args, 0, "old");
  const std::string* to = string_arg(args, 1, "new");
  if (from == nullptr || to == nullptr) fail("replace needs two strings");
  return value::string(replace(s, *from, *to, int_arg(args, 2, "count", -1)));
}

value string_method(const value& object, const std::string& name) {
  const std::string s = object.as_string();
  auto method = [](auto fn) { return value::function(std::move(fn)); };
  if (name == "length") return value::integer(static_cast<int64_t>(code_points(s).size()));
  if (name == "upper") return method([s](const call_args&) { return value::string(to_upper(s)); });
  if (name == "lower") return method([s](const call_args&) { return value::string(to_lower(s)); });
  if (name == "title") return method([s](const call_args&) { return value::string(title_case(s)); });
  if (name == "capitalize") return method([s](const call_args&) { return value::string(capitalize(s)); });
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip", right = name != "lstrip";
    return method([s, left, right](const call_args& a) {
      return value::string(strip(s, left, right, string_arg(a, 0, "chars")));
    });
  }
  if (name == "startswith" || name == "endswith") {
    const bool start = name == "startswith";
    return method([s, start, name](const call_args& a) {
      const value* p = arg(a, 0, "prefix");
      if (p == nullptr) fail(name + "() needs an argument");
      auto matches = [&](const value& x) {
        if (!x.is(value_kind::string)) fail(name + "() takes a string or a tuple of strings");
        const std::string& t = x.as_string();
        return t.size() <= s.size() &&
               (start ? s.compare(0, t.size(), t) == 0 : s.compare(s.size() - t.size(), t.size(), t) == 0);
      };
      if (p->is(value_kind::list))
        return value::boolean(std::any_of(p->as_list().begin(), p->as_list().end(), matches));
      return value::boolean(matches(*p));
    });
  }
  if (name == "split") {
    return method([s](const call_args& a) {
      const std::string* sep = string_arg(a, 0, "sep");
      if (sep != nullptr && sep->empty()) fail("split(): empty separator");
      return string_list(split(s, sep, static_cast<long>(int_arg(a, 1, "maxsplit", -1))));
    });
  }
  if (name == "replace") return method([s](const call_args& a) { return string_replace(s, a); });
  if (name == "join") {
    return method([s](const call_args& a) {
      const value* items = arg(a, 0, "iterable");
      if (items == nullptr) fail("join() needs a list");
      call_args sep;
      sep.positional.push_back(value::string(s));
      return join(*items, sep);
    });
  }
  return value();
}

value dict_method(const value& object, const std::string& name) {
  if (name == "items") return value::function([object](const call_args&) { return dict_items(object); });
  if (name == "keys")
    return value::function([object](const call_args&) { return value::list(items_of(object, "keys")); });
  if (name == "values") {
    return value::function([object](const call_args&) {
      value_list out;
      for (const auto& [k, v] : object.as_dict().entries) out.push_back(v);
      return value::list(std::move(out));
    });
  }
  if (name == "get") {
    return value::function([object](const call_args& a) {
      const std::string* key = string_arg(a, 0, "key");
      if (key == nullptr) fail("get() needs a string key");
      const value* found = object.as_dict().find(*key);
      const value* fallback = arg(a, 1, "default");
      return found != nullptr ? *found : (fallback != nullptr ? *fallback : value::none());
    });
  }
  if (name == "dictsort")
    return value::function([object](const call_args& a) { return dictsort(object, a); });
  return value();
}

}  // namespace

value apply_filter(std::string_view name, const value& operand, const call_args& args) {
  const auto needs = [&](value_kind kind, std::string_view what) {
    if (!operand.is(kind))
      fail("the filter " + std::string(name) + " needs " + std::string(what) + ", not a " + kind_of(operand));
  };
  if (name == "safe") return operand;
  if (name == "tojson") return to_json_filter(operand, args);
  if (name == "default" || name == "d") {
    const value* fallback = arg(args, 0, "default_value");
    const bool boolean = bool_arg(args, 1, "boolean", false);
    if (operand.is_undefined() || (boolean && !operand.truthy()))
      return fallback != nullptr ? *fallback : value::string("");
    return operand;
  }
  if (name == "length" || name == "count") {
    if (operand.is(value_kind::string))
      return value::integer(static_cast<int64_t>(code_points(operand.as_string()).size()));
    return value::integer(static_cast<int64_t>(items_of(operand, name).size()));
  }
  if (name == "list") return value::list(items_of(operand, name));
  if (name == "first" || name == "last") {
    const value_list items = items_of(operand, name);
    if (items.empty()) return value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    value_list items = items_of(operand, name);
    std::reverse(items.begin(), items.end());
    if (!operand.is(value_kind::string)) return value::list(std::move(items));
    std::string out;
    for (const auto& c : items) out += c.as_string();
    return value::string(std::move(out));
  }
  if (name == "sort") return sorted(operand, args);
  if (name == "unique") {
    value_list out;
    for (const auto& item : items_of(operand, name)) {
      if (std::none_of(out.begin(), out.end(), [&](const value& seen) { return strictly_equal(seen, item); }))
        out.push_back(item);
    }
    return value::list(std::move(out));
  }
  if (name == "join") return join(operand, args);
  if (name == "string") return value::string(operand.to_output());
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    needs(value_kind::string, "a string");
    return get_attribute(operand, std::string(name)).as_function()(call_args{});
  }
  if (name == "trim") {
    needs(value_kind::string, "a string");
    return value::string(strip(operand.as_string(), true, true, string_arg(args, 0, "chars")));
  }
  if (name == "indent") {
    needs(value_kind::string, "a string");
    return indent(operand, args);
  }
  if (name == "replace") {
    needs(value_kind::string, "a string");
    return string_replace(operand.as_string(), args);
  }
  if (name == "int" || name == "float") return to_number(operand, args, name == "int");
  if (name == "abs") {
    if (operand.is(value_kind::integer))
      return value::integer(operand.as_int() < 0 ? -operand.as_int() : operand.as_int());
    if (operand.is(value_kind::floating)) return value::floating(std::fabs(operand.as_double()));
    fail("the filter abs needs a number, not a " + kind_of(operand));
  }
  if (name == "bool") return value::boolean(operand.truthy());
  if (name == "items") {
    needs(value_kind::dict, "a dict");
    return dict_items(operand);
  }
  if (name == "dictsort") {
    needs(value_kind::dict, "a dict");
    return dictsort(operand, args);
  }
  if (name == "select" || name == "reject") return select_items(operand, args, name == "select", false, name);
  if (name == "selectattr" || name == "rejectattr")
    return select_items(operand, args, name == "selectattr", true, name);
  if (name == "map") return map_items(operand, args);
  fail("the filter '" + std::string(name) + "' is not supported by mlxd's Jinja interpreter");
}

bool apply_test(std::string_view name, const value& operand, const call_args& args) {
  const value* other = arg(args, 0, "other");
  auto need_other = [&]() -> const value& {
    if (other == nullptr) fail("the test " + std::string(name) + " needs an argument");
    return *other;
  };
  if (name == "defined") return !operand.is_undefined();
  if (name == "undefined") return operand.is_undefined();
  if (name == "none") return operand.is(value_kind::none);
  if (name == "boolean") return operand.is(value_kind::boolean);
  if (name == "true") return operand.is(value_kind::boolean) && operand.as_bool();
  if (name == "false") return operand.is(value_kind::boolean) && !operand.as_bool();
  if (name == "integer") return operand.is(value_kind::integer);
  if (name == "float") return operand.is(value_kind::floating);
  if (name == "number") return operand.is_number();
  if (name == "string") return operand.is(value_kind::string);
  if (name == "mapping") return operand.is(value_kind::dict);
  if (name == "iterable")
    return operand.is(value_kind::list) || operand.is(value_kind::string) || operand.is(value_kind::dict);
  if (name == "sequence")
    return operand.is(value_kind::list) || operand.is(value_kind::string) || operand.is(value_kind::dict);
  if (name == "callable") return operand.is(value_kind::function) || operand.is(value_kind::macro);
  if (name == "lower")
    return operand.is(value_kind::string) && to_lower(operand.as_string()) == operand.as_string();
  if (name == "upper")
    return operand.is(value_kind::string) && to_upper(operand.as_string()) == operand.as_string();
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!operand.is(value_kind::integer))
      fail("the test " + std::string(name) + " needs an integer, not a " + kind_of(operand));
    const int64_t n = name == "divisibleby" ? need_other().as_int() : 2;
    if (n == 0) fail("divisibleby(0)");
    const bool divisible = operand.as_int() % n == 0;
    return name == "odd" ? !divisible : divisible;
  }
  if (name == "equalto" || name == "eq" || name == "sameas") return loosely_equal(operand, need_other());
  if (name == "ne") return !loosely_equal(operand, need_other());
  if (name == "lt") return compare_values(operand, need_other(), true) < 0;
  if (name == "le") return compare_values(operand, need_other(), true) <= 0;
  if (name == "gt") return compare_values(operand, need_other(), true) > 0;
  if (name == "ge") return compare_values(operand, need_other(), true) >= 0;
  if (name == "in") {
    const value& seq = need_other();
    if (seq.is(value_kind::string) && operand.is(value_kind::string))
      return seq.as_string().find(operand.as_string()) != std::string::npos;
    if (seq.is(value_kind::dict))
      return operand.is(value_kind::string) && seq.as_dict().find(operand.as_string()) != nullptr;
    const value_list items = items_of(seq, "in");
    return std::any_of(items.begin(), items.end(),
                       [&](const value& x) { return strictly_equal(x, operand); });
  }
  fail("the test '" + std::string(name) + "' is not supported by mlxd's Jinja interpreter");
}

value get_attribute(const value& object, const std::string& name) {
  switch (object.kind()) {
    case value_kind::dict:
      if (const value* v = object.as_dict().find(name)) return *v;
      return dict_method(object, name);
    case value_kind::name_space:
      if (const value* v = object.as_dict().find(name)) return *v;
      return value();
    case value_kind::string:
      return string_method(object, name);
    case value_kind::list:
      if (name == "length") return value::integer(static_cast<int64_t>(object.as_list().size()));
      return value();
    default:
      return value();
  }
}

value get_item(const value& object, const value& key) {
  if (object.is_mapping()) {
    if (!key.is(value_kind::string)) fail("a dict key must be a string, not a " + kind_of(key));
    return get_attribute(object, key.as_string());
  }
  if (object.is(value_kind::list) || object.is(value_kind::string)) {
    if (key.is(value_kind::string)) return get_attribute(object, key.as_string());
    if (!key.is(value_kind::integer)) fail("an index must be an integer, not a " + kind_of(key));
    const value_list items = object.is(value_kind::list) ? object.as_list() : items_of(object, "[]");
    const auto n = static_cast<int64_t>(items.size());
    const int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
    if (i < 0 || i >= n) return value();
    return items[static_cast<size_t>(i)];
  }
  return value();
}

value get_slice(const value& object, const value& start, const value& stop, const value& step) {
  if (!object.is(value_kind::list) && !object.is(value_kind::string))
    fail("only lists and strings can be sliced, not a " + kind_of(object));
  auto bound = [](const value& v, std::string_view what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is(value_kind::none)) return std::nullopt;
    if (!v.is(value_kind::integer)) fail("a slice " + std::string(what) + " must be an integer");
    return v.as_int();
  };
  const value_list items = object.is(value_kind::list) ? object.as_list() : items_of(object, "[]");
  const auto n = static_cast<int64_t>(items.size());
  const int64_t by = bound(step, "step").value_or(1);
  if (by == 0) fail("a slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t x = *v < 0 ? *v + n : *v;
    return by > 0 ? std::clamp<int64_t>(x, 0, n) : std::clamp<int64_t>(x, -1, n - 1);
  };
  const int64_t from = clamp(bound(start, "start"), by > 0 ? 0 : n - 1);
  const int64_t to = clamp(bound(stop, "stop"), by > 0 ? n : -1);
  value_list out;
  for (int64_t i = from; by > 0 ? i < to : i > to; i += by) out.push_back(items[static_cast<size_t>(i)]);
  if (object.is(value_kind::list)) return value::list(std::move(out));
  std::string s;
  for (const auto& c : out) s += c.as_string();
  return value::string(std::move(s));
}

value_dict make_globals() {
  value_dict g;
  for (const char* name : {"true", "True"}) g.set(name, value::boolean(true));
  for (const char* name : {"false", "False"}) g.set(name, value::boolean(false));
  for (const char* name : {"none", "None"}) g.set(name, value::none());
  g.set("raise_exception", value::function([](const call_args& a) -> value {
          const value* message = arg(a, 0, "message");
          throw chat_template_error("the chat template raised an error: " +
                                    (message != nullptr ? message->to_output() : std::string()));
        }));
  g.set("range", value::function([](const call_args& a) {
          int64_t start = 0, stop = 0, step = 1;
          if (a.positional.size() == 1) {
            stop = int_arg(a, 0, "stop", 0);
          } else {
            start = int_arg(a, 0, "start", 0);
            stop = int_arg(a, 1, "stop", 0);
            step = int_arg(a, 2, "step", 1);
          }
          if (step == 0) fail("range() step must not be zero");
          constexpr int64_t max_items = 1'000'000;
          value_list out;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (static_cast<int64_t>(out.size()) >= max_items) fail("range() of more than a million items");
            out.push_back(value::integer(i));
          }
          return value::list(std::move(out));
        }));
  g.set("namespace", value::function([](const call_args& a) {
          value_dict entries;
          if (!a.positional.empty()) {
            if (!a.positional[0].is(value_kind::dict)) fail("namespace() takes a dict and keyword arguments");
            entries = a.positional[0].as_dict();
          }
          for (const auto& [k, v] : a.keyword) entries.set(k, v);
          return value::name_space(std::move(entries));
        }));
  g.set("strftime_now", value::function([](const call_args& a) {
          const std::string* format = string_arg(a, 0, "format");
          if (format == nullptr) fail("strftime_now() needs a format");
          const std::time_t now = std::time(nullptr);
          std::tm local{};
          localtime_r(&now, &local);
          char buf[256];
          const size_t n = std::strftime(buf, sizeof buf, format->c_str(), &local);
          return value::string(std::string(buf, n));
        }));
  return g;
}

}  // namespace mlxd::jinja
