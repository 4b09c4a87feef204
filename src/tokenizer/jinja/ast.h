// The syntax tree of a parsed template: expressions and statements. Built once by parse(), then read-only,
// so one parsed template renders on any number of threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace mlxd::jinja {

struct expr;
struct stmt;
using expr_ptr = std::unique_ptr<expr>;
using stmt_ptr = std::unique_ptr<stmt>;

enum class expr_kind {
  literal,  // `constant`
  name,     // `name`
  list,     // [items...]
  tuple,    // (items...)
  dict,     // {items[0]: items[1], items[2]: items[3], ...}
  member,   // a.name (b null) or a[b]
  slice,    // a[b:c:d]; b, c, d may be null
  call,     // a(args)
  unary,    // `name` a, for "not", "-", "+"
  binary,   // a `name` b
  filter,   // a | name(args); a is null in a {% filter %} block
  test,     // a is [not] name(args)
  ternary,  // b if a else c
  select,   // b if a (undefined when a is false; in a for loop, a filter on the items)
};

// A call argument: positional when keyword is empty.
struct argument {
  std::string keyword;
  expr_ptr value;
};

struct expr {
  expr_kind kind;
  int line = 0;
  value constant;
  std::string name;
  bool negate = false;  // `is not`
  expr_ptr a, b, c, d;
  std::vector<expr_ptr> items;
  std::vector<argument> args;
};

enum class stmt_kind {
  text,          // literal text
  output,        // {{ expression }}
  set,           // {% set target = expression %}
  set_block,     // {% set target %}body{% endset %}
  if_block,      // {% if expression %}body{% else %}alternate{% endif %} (elif nests in alternate)
  for_block,     // {% for target in expression if condition %}body{% else %}alternate{% endfor %}
  macro,         // {% macro name(params) %}body{% endmacro %}
  call_block,    // {% call(params) expression %}body{% endcall %}: body is the macro's caller()
  filter_block,  // {% filter expression %}body{% endfilter %}
  break_loop,
  continue_loop,
};

struct parameter {
  std::string name;
  expr_ptr default_value;  // may be null
};

struct stmt {
  stmt_kind kind;
  int line = 0;
  std::string text;
  expr_ptr target;
  expr_ptr expression;
  expr_ptr condition;
  std::vector<stmt_ptr> body;
  std::vector<stmt_ptr> alternate;
  std::string name;
  std::vector<parameter> params;
};

struct program {
  std::vector<stmt_ptr> body;
};

}  // namespace mlxd::jinja
