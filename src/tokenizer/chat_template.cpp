#include "mlxd/tokenizer/chat_template.h"

#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/parser.h"

namespace mlxd {

chat_template::chat_template(std::string_view source) : source_(source), program_(jinja::parse(source)) {}

std::string chat_template::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) throw chat_template_error("the chat template context must be a JSON object");
  const jinja::value variables = jinja::value::from_json(context);
  return jinja::render(*program_, variables.as_dict());
}

}  // namespace mlxd
