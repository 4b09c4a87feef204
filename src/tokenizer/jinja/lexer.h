// Splits a Jinja template into tokens, after the whitespace handling transformers applies to chat templates
// (trim_blocks, lstrip_blocks, one trailing newline dropped, {%- -%} control) and the removal of its
// {% generation %} markers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mlxd::jinja {

enum class token_kind {
  text,        // literal template text
  open_stmt,   // {%
  close_stmt,  // %}
  open_expr,   // {{
  close_expr,  // }}
  number,      // 12, 1.5
  string,      // 'a' or "a", escapes resolved
  name,        // identifiers and keywords
  op,          // ( ) [ ] { } , . : | = + - ~ * / // % ** == != < > <= >=
  end,         // end of input
};

struct token {
  token_kind kind;
  std::string text;
  int line;  // 1-based, in the template after whitespace handling
};

// Throws chat_template_error naming the line for an unterminated tag, string or comment, a bad escape, or a
// character outside the language.
std::vector<token> tokenize(std::string_view source);

}  // namespace mlxd::jinja
