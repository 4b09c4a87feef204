// Chat templates come inside model files, so they are untrusted: any bytes must parse and render to a string
// or fail with chat_template_error, within the interpreter's limits — never crash, hang or throw anything
// else.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "mlxd/tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi <think>x</think>"},
                 {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                 {"role": "tool", "content": "42"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "n": 3, "x": 2.5, "flag": false})");
  try {
    const mlxd::chat_template templ(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)templ.render(context);
  } catch (const mlxd::chat_template_error&) {
  }
  return 0;
}
