// Chat templates: the Jinja template a model ships (tokenizer_config.json's chat_template, or GGUF's
// tokenizer.chat_template) that turns OpenAI-style messages into the prompt text the model was trained on.
//
// mlxd's Jinja interpreter covers what the templates of Llama-2/3.x, Mistral, Qwen2.5/3, SmolLM, Phi-3 and
// Gemma use: {% for %} (with loop.*, else, inline if), {% if/elif/else %}, {% set %} (also block form and
// namespace attributes), {% macro %}, {% call %}, {% filter %}, break/continue; expressions with Jinja's
// precedence, slices, tests (`is defined`, `is string`, ...), the common filters (trim, tojson, length,
// join, map, selectattr, default, ...) and str/dict methods (startswith, split, strip, items, get, ...).
// Output is exact against @huggingface/jinja, the renderer of transformers.js, including transformers'
// trim_blocks/lstrip_blocks whitespace handling.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "mlxd/tokenizer/tokenizer.h"
#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd {

namespace jinja {
struct program;
}

class chat_template {
 public:
  // Parses `source`. Throws chat_template_error naming the line and the construct for a syntax error or an
  // unsupported statement (include, extends, import, block).
  explicit chat_template(std::string_view source);

  // Renders with the variables of `context` (a JSON object; key order is kept, as tojson shows). Throws
  // chat_template_error for evaluation errors and the template's own raise_exception(message). Const and
  // thread-safe: one parsed template serves every request.
  std::string render(const nlohmann::ordered_json& context) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::program> program_;
};

// What transformers' apply_chat_template takes.
struct chat_request {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{"role": ..., "content": ...}, ...]
  nlohmann::ordered_json tools;                                       // null or a list of tool schemas
  bool add_generation_prompt = false;
  // More variables for the template, e.g. {"enable_thinking": false} for Qwen3 or {"date_string": ...}.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

// Renders `request` with `templ` (or the tokenizer's own template when null) and the context transformers
// gives: messages, tools, add_generation_prompt, bos_token/eos_token/unk_token/pad_token spelled as in the
// vocabulary, then `extra`. Throws chat_template_error if there is no template or rendering fails.
std::string apply_chat_template(const tokenizer& tok, const chat_request& request,
                                const chat_template* templ = nullptr);

}  // namespace mlxd
