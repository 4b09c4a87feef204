#include "tokenizer/jinja/text.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/utf8.h"

namespace mlxd::jinja {
namespace {

using tokenizer_detail::append_utf8;
using tokenizer_detail::decode_code_point;
using tokenizer_detail::replacement_char;
using tokenizer_detail::utf8_sequence_length;

// Calls fn(code_point, byte_offset, byte_length) for each code point; ill-formed bytes give U+FFFD.
template <typename Fn>
void for_each_code_point(std::string_view s, Fn&& fn) {
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = utf8_sequence_length(s, pos);
    if (n == 0) {
      fn(replacement_char, pos, size_t{1});
      ++pos;
    } else {
      fn(decode_code_point(s, pos, n), pos, n);
      pos += n;
    }
  }
}

// JavaScript's String#trim set: White_Space plus the BOM, without U+0085 (which Python counts too).
bool is_space(char32_t c) {
  return c == 0xFEFF || (c != 0x85 && u_isUWhiteSpace(static_cast<UChar32>(c)));
}

template <typename Map>
std::string map_code_points(std::string_view s, Map&& map) {
  std::string out;
  out.reserve(s.size());
  for_each_code_point(s, [&](char32_t c, size_t, size_t) { append_utf8(out, map(c)); });
  return out;
}

}  // namespace

std::string to_lower(std::string_view s) {
  return map_code_points(
      s, [](char32_t c) { return static_cast<char32_t>(u_tolower(static_cast<UChar32>(c))); });
}

std::string to_upper(std::string_view s) {
  return map_code_points(
      s, [](char32_t c) { return static_cast<char32_t>(u_toupper(static_cast<UChar32>(c))); });
}

std::string title_case(std::string_view s) {
  bool word_start = true;
  return map_code_points(s, [&](char32_t c) {
    const auto u = static_cast<UChar32>(c);
    const char32_t mapped = static_cast<char32_t>(word_start ? u_toupper(u) : u_tolower(u));
    word_start = is_space(c) || c == '-' || c == '_' || c == '(' || c == '[' || c == '{';
    return mapped;
  });
}

std::string capitalize(std::string_view s) {
  bool first = true;
  return map_code_points(s, [&](char32_t c) {
    const char32_t mapped = first ? static_cast<char32_t>(u_toupper(static_cast<UChar32>(c))) : c;
    first = false;
    return mapped;
  });
}

std::string strip(std::string_view s, bool left, bool right, const std::string* chars) {
  std::vector<char32_t> set;
  if (chars != nullptr) for_each_code_point(*chars, [&](char32_t c, size_t, size_t) { set.push_back(c); });
  auto strippable = [&](char32_t c) {
    return chars == nullptr ? is_space(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t begin = s.size(), end = 0;
  bool seen = false;
  for_each_code_point(s, [&](char32_t c, size_t pos, size_t n) {
    if (strippable(c)) return;
    if (!seen) begin = pos;
    seen = true;
    end = pos + n;
  });
  if (!seen) return {};
  if (!left) begin = 0;
  if (!right) end = s.size();
  return std::string(s.substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view s, const std::string* sep, long maxsplit) {
  std::vector<std::string> parts;
  if (sep != nullptr) {
    size_t last = 0;
    for (size_t pos = s.find(*sep); pos != std::string_view::npos; pos = s.find(*sep, last)) {
      if (maxsplit >= 0 && static_cast<long>(parts.size()) >= maxsplit) break;
      parts.emplace_back(s.substr(last, pos - last));
      last = pos + sep->size();
    }
    parts.emplace_back(s.substr(last));
    return parts;
  }
  // Whitespace runs separate; once maxsplit parts are out, the rest (left-stripped) is the last part.
  std::string_view rest = s;
  size_t word_start = 0;
  bool in_word = false;
  bool done = false;
  for_each_code_point(rest, [&](char32_t c, size_t pos, size_t) {
    if (done) return;
    if (is_space(c)) {
      if (in_word) parts.emplace_back(rest.substr(word_start, pos - word_start));
      in_word = false;
      return;
    }
    if (!in_word) {
      if (maxsplit >= 0 && static_cast<long>(parts.size()) >= maxsplit) {
        parts.emplace_back(rest.substr(pos));
        done = true;
        return;
      }
      word_start = pos;
      in_word = true;
    }
  });
  if (in_word && !done) parts.emplace_back(rest.substr(word_start));
  return parts;
}

std::string replace(std::string_view s, std::string_view from, std::string_view to, long count) {
  std::string out;
  if (from.empty()) {
    long done = 0;
    auto insert = [&] {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
    };
    for_each_code_point(s, [&](char32_t, size_t pos, size_t n) {
      insert();
      out.append(s.substr(pos, n));
    });
    insert();
    return out;
  }
  size_t last = 0;
  long done = 0;
  for (size_t pos = s.find(from); pos != std::string_view::npos && (count < 0 || done < count);
       pos = s.find(from, last), ++done) {
    out.append(s.substr(last, pos - last));
    out.append(to);
    last = pos + from.size();
  }
  out.append(s.substr(last));
  return out;
}

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  for_each_code_point(s, [&](char32_t c, size_t, size_t) {
    std::string one;
    append_utf8(one, c);
    out.push_back(std::move(one));
  });
  return out;
}

std::string js_number(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (d == 0) return "0";
  // Shortest round-trip digits and exponent, then JavaScript's layout rules.
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, std::fabs(d), std::chars_format::scientific);
  const std::string sci(buf, result.ptr);
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::atoi(sci.c_str() + e + 1);
  const int n_digits = static_cast<int>(digits.size());
  std::string out = d < 0 ? "-" : "";
  if (exponent >= 21 || exponent < -6) {
    out += digits.substr(0, 1);
    if (n_digits > 1) {
      out += '.';
      out += digits.substr(1);
    }
    out += exponent > 0 ? "e+" : "e-";
    out += std::to_string(std::abs(exponent));
  } else if (exponent >= n_digits - 1) {
    out += digits + std::string(static_cast<size_t>(exponent - n_digits + 1), '0');
  } else if (exponent >= 0) {
    out += digits.substr(0, static_cast<size_t>(exponent + 1)) + "." +
           digits.substr(static_cast<size_t>(exponent + 1));
  } else {
    out += "0.";
    out.append(static_cast<size_t>(-exponent - 1), '0');
    out += digits;
  }
  return out;
}

std::string json_quote(std::string_view s, bool ensure_ascii) {
  std::string out = "\"";
  char esc[16];
  auto unicode_escape = [&](unsigned unit) {
    std::snprintf(esc, sizeof esc, "\\u%04x", unit);
    out += esc;
  };
  for_each_code_point(s, [&](char32_t c, size_t pos, size_t n) {
    switch (c) {
      case '"':
        out += "\\\"";
        return;
      case '\\':
        out += "\\\\";
        return;
      case '\b':
        out += "\\b";
        return;
      case '\f':
        out += "\\f";
        return;
      case '\n':
        out += "\\n";
        return;
      case '\r':
        out += "\\r";
        return;
      case '\t':
        out += "\\t";
        return;
      default:
        break;
    }
    if (c < 0x20) {
      unicode_escape(c);
    } else if (ensure_ascii && c >= 0x7F) {
      if (c > 0xFFFF) {
        const char32_t v = c - 0x10000;
        unicode_escape(0xD800 + (v >> 10));
        unicode_escape(0xDC00 + (v & 0x3FF));
      } else {
        unicode_escape(c);
      }
    } else if (c == replacement_char && utf8_sequence_length(s, pos) == 0) {
      append_utf8(out, c);
    } else {
      out.append(s.substr(pos, n));
    }
  });
  out += '"';
  return out;
}

}  // namespace mlxd::jinja
