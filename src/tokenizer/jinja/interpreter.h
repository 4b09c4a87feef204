// Renders a parsed template: statements write text, expressions evaluate to values. Scoping follows the
// reference: a for loop has its own scope (a set inside it does not leak), if blocks do not, and a macro
// body runs in a scope of its own whose parent is the caller's.
#pragma once

#include <string>

#include "tokenizer/jinja/ast.h"

namespace mlxd::jinja {

// Renders `tree` with `variables` (and the globals of builtins.h beneath them). Throws chat_template_error
// naming the line and the construct when evaluation fails, when the template calls raise_exception, or
// when it exceeds the limits on output size, loop iterations or macro recursion.
std::string render(const program& tree, const value_dict& variables);

}  // namespace mlxd::jinja
