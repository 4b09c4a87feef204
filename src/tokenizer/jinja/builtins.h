// Jinja's built-in filters, tests, attributes (str, list and dict methods) and global functions, as the
// chat templates of Llama, Mistral, Qwen, SmolLM, Phi and Gemma use them.
#pragma once

#include <string>
#include <string_view>

#include "tokenizer/jinja/value.h"

namespace mlxd::jinja {

// `operand | name(args)`. Throws chat_template_error for an unknown filter or one that does not apply to the
// operand's kind.
value apply_filter(std::string_view name, const value& operand, const call_args& args);

// `operand is name(args)`.
bool apply_test(std::string_view name, const value& operand, const call_args& args);

// `object.name`: a dict's key, else a method ("abc".upper, d.items, ...); undefined when there is none.
value get_attribute(const value& object, const std::string& name);

// `object[key]`: dict keys, list and string indices (negative from the end); undefined when out of range.
value get_item(const value& object, const value& key);

// `object[start:stop:step]` of a list or a string (by code points), with Python's rules.
value get_slice(const value& object, const value& start, const value& stop, const value& step);

// The global names every template sees: range, namespace, raise_exception, strftime_now and the constants.
value_dict make_globals();

}  // namespace mlxd::jinja
