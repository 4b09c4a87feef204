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

std::string apply_chat_template(const tokenizer& tok, const chat_request& request,
                                const chat_template* templ) {
  std::optional<chat_template> own;
  if (templ == nullptr) {
    const auto source = tok.chat_template();
    if (!source)
      throw chat_template_error("the tokenizer has no chat template; pass one with --chat-template");
    own.emplace(*source);
    templ = &*own;
  }
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = request.messages;
  context["tools"] = request.tools;
  context["add_generation_prompt"] = request.add_generation_prompt;
  const std::pair<const char*, std::optional<token_id>> special[] = {{"bos_token", tok.bos_id()},
                                                                     {"eos_token", tok.eos_id()},
                                                                     {"unk_token", tok.unk_id()},
                                                                     {"pad_token", tok.pad_id()}};
  for (const auto& [name, id] : special) {
    if (id) context[name] = tok.id_to_token(*id);
  }
  for (const auto& [key, v] : request.extra.items()) context[key] = v;
  return templ->render(context);
}

}  // namespace mlxd
