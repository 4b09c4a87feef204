#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "commands.h"
#include "mlxd/io/file_text.h"
#include "mlxd/tokenizer/chat_template.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"

namespace mlxd::app {
namespace {

std::string read_text(const std::string& path) {
  auto text = io::read_file(path);
  if (!text) throw std::runtime_error(path + ": cannot open");
  return std::move(*text);
}

nlohmann::ordered_json read_json(const std::string& path) {
  try {
    return nlohmann::ordered_json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
}

// "name=JSON" (a number, true, a quoted string...) or "name=text" when the value is not JSON.
std::pair<std::string, nlohmann::ordered_json> parse_variable(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::runtime_error("--var wants NAME=VALUE, got '" + assignment + "'");
  const std::string text = assignment.substr(eq + 1);
  auto parsed = nlohmann::ordered_json::parse(text, nullptr, false);
  return {assignment.substr(0, eq), parsed.is_discarded() ? nlohmann::ordered_json(text) : parsed};
}

}  // namespace

void add_chat_template_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("chat-template", "print the prompt that a model's chat template makes of messages");
  struct options {
    std::string tokenizer, messages, tools, override_template;
    std::vector<std::string> vars;
    bool add_generation_prompt = false;
  };
  auto opt = std::make_shared<options>();
  cmd->add_option("--tokenizer", opt->tokenizer,
                  "a model folder, tokenizer.json or GGUF file (template and special tokens)")
      ->required();
  cmd->add_option("--messages", opt->messages, "a JSON file with the list of {role, content} messages")
      ->required();
  cmd->add_flag("--add-generation-prompt", opt->add_generation_prompt,
                "end with the assistant's turn header");
  cmd->add_option("--tools", opt->tools, "a JSON file with the list of tool schemas");
  cmd->add_option("--chat-template", opt->override_template,
                  "a Jinja file to use instead of the model's template");
  cmd->add_option("--var", opt->vars, "NAME=VALUE, a further template variable (e.g. enable_thinking=false)");
  cmd->callback([opt] {
    const tokenizer tok = load_tokenizer(opt->tokenizer);
    chat_request request;
    request.messages = read_json(opt->messages);
    if (!request.messages.is_array())
      throw std::runtime_error(opt->messages + ": messages must be a JSON list");
    if (!opt->tools.empty()) request.tools = read_json(opt->tools);
    request.add_generation_prompt = opt->add_generation_prompt;
    for (const auto& v : opt->vars) {
      auto [name, value] = parse_variable(v);
      request.extra[name] = std::move(value);
    }
    std::optional<chat_template> override_template;
    if (!opt->override_template.empty()) override_template.emplace(read_text(opt->override_template));
    const std::string prompt =
        apply_chat_template(tok, request, override_template ? &*override_template : nullptr);
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  });
}

}  // namespace mlxd::app
