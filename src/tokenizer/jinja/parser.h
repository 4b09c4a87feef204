// Parses template tokens into a program, with Jinja's precedence as @huggingface/jinja implements it.
#pragma once

#include <memory>
#include <string_view>

#include "tokenizer/jinja/ast.h"

namespace mlxd::jinja {

// Throws chat_template_error naming the line and the construct for a syntax error or a statement outside
// the supported set (for, if, set, macro, call, filter, break, continue; not include/extends/import/block).
std::unique_ptr<const program> parse(std::string_view source);

}  // namespace mlxd::jinja
