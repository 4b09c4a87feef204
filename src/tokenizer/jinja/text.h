// String helpers for the Jinja interpreter: Unicode case mapping and whitespace (as JavaScript and Python
// see them), JSON quoting, number formatting and Python's str methods.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mlxd::jinja {

std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);
std::string title_case(std::string_view s);  // first letter of each word upper, the rest lower
std::string capitalize(std::string_view s);  // first character upper, the rest unchanged

// str.strip/lstrip/rstrip: without `chars`, Unicode whitespace; with it, any of its code points.
std::string strip(std::string_view s, bool left, bool right, const std::string* chars = nullptr);

// str.split(sep, maxsplit): sep null splits on whitespace runs and drops empty ends.
std::vector<std::string> split(std::string_view s, const std::string* sep, long maxsplit);
// str.replace(old, new, count); count < 0 replaces all. An empty `old` inserts between code points.
std::string replace(std::string_view s, std::string_view from, std::string_view to, long count);

// The code points of `s` as separate UTF-8 strings (ill-formed bytes become one U+FFFD each).
std::vector<std::string> code_points(std::string_view s);

// A double as JavaScript's Number#toString prints it (shortest round trip; exponent past 1e21 / below 1e-7).
std::string js_number(double d);
// A JSON string literal: quotes, backslash and control characters escaped; non-ASCII as \uXXXX if asked.
std::string json_quote(std::string_view s, bool ensure_ascii);

}  // namespace mlxd::jinja
