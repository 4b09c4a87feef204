#include "mlxd/tokenizer/chat_template.h"

namespace mlxd {

std::string apply_chat_template(const tokenizer& tok, const chat_request& request,
                                const chat_template* templ) {
  std::optional<chat_template> own;
  if (templ == nullptr) {
    if (tok.chat_template().empty()) {
      throw chat_template_error("the tokenizer has no chat template; pass one with --chat-template");
    }
    own.emplace(tok.chat_template());
    templ = &*own;
  }
  if (!request.messages.is_array()) throw chat_template_error("messages must be a JSON list");
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
