#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "generation_flags.h"
#include "mlxd/engine/chat_session.h"
#include "mlxd/models/default_model.h"
#include "mlxd/models/llama.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"

namespace mlxd::app {

void add_chat_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("chat", "talk with a model: user lines from stdin, replies streamed to stdout");
  auto model = std::make_shared<std::string>();
  auto tokenizer_path = std::make_shared<std::string>();
  auto stop_ids = std::make_shared<std::string>();
  auto options = std::make_shared<engine::chat_options>();
  options->sampling.temperature = 0.0f;
  cmd->add_option("--model", *model, "model folder or GGUF file (default: the bundled model)");
  cmd->add_option("--tokenizer", *tokenizer_path,
                  "model folder, tokenizer.json, tokenizer.model or GGUF file (default: the model)");
  cmd->add_option("--system", options->system, "a system message before the conversation");
  cmd->add_option("--max-tokens", options->max_tokens, "most tokens of one reply")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--context", options->context,
                  "KV cache positions for the whole conversation (default: the model's, at most 4096)")
      ->check(CLI::Range(2, 1 << 24));
  cmd->add_option("--stop-ids", *stop_ids, "comma-separated ids that end a reply");
  cmd->add_flag("--ignore-eos", options->ignore_eos,
                "keep generating past the tokenizer's end-of-sequence ids");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json,
                "print each reply as one JSON line: text, tokens, prompt_tokens, reused_tokens (cached)");
  add_sampling_flags(cmd, options->sampling);
  auto mmap = std::make_shared<bool>(false);
  add_mmap_flag(cmd, *mmap);
  auto kv_dtype = std::make_shared<std::string>("f32");
  add_kv_dtype_flag(cmd, *kv_dtype);
  cmd->callback([=] {
    *model = models::model_or_default(*model);
    options->kv_dtype = kv_dtype_of(*kv_dtype);
    if (!stop_ids->empty()) options->stop_ids = parse_ids(*stop_ids);
    const models::llama_model m = models::load_llama(*model, {.mmap = *mmap});
    engine::chat_session session(m, load_tokenizer(tokenizer_path->empty() ? *model : *tokenizer_path),
                                 *options);
    // The prompt marker is for people; piped input gets the replies alone, one per line.
    const bool terminal = isatty(STDIN_FILENO);
    std::string line;
    while (true) {
      if (terminal) std::fputs("> ", stdout), std::fflush(stdout);
      if (!std::getline(std::cin, line)) break;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line == "/exit") break;
      if (line == "/reset") {
        session.reset();
        continue;
      }
      if (line.empty()) continue;
      try {
        const engine::chat_turn turn = session.reply(line, [&](std::string_view piece) {
          if (*json) return;
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        });
        if (*json) {
          const nlohmann::json j = {{"text", turn.text},
                                    {"tokens", turn.tokens},
                                    {"prompt_tokens", turn.prompt_tokens},
                                    {"reused_tokens", turn.reused_tokens},
                                    {"context_full", turn.context_full}};
          std::fputs(j.dump().c_str(), stdout);
        }
        std::printf("\n");
        if (turn.context_full) std::fprintf(stderr, "mlxd: the context is full; /reset to start over\n");
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "mlxd: error: %s\n", e.what());
      }
      std::fflush(stdout);
    }
    if (terminal) std::printf("\n");
  });
}

}  // namespace mlxd::app
