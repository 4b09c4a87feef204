#include <unistd.h>

#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "generation_flags.h"
#include "mlxd/engine/perplexity.h"
#include "mlxd/io/file_text.h"
#include "mlxd/models/default_model.h"
#include "mlxd/models/llama.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"

namespace mlxd::app {

void add_perplexity_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("perplexity", "perplexity of a model on a text file (sliding windows)");
  auto model = std::make_shared<std::string>();
  auto tokenizer_path = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  auto options = std::make_shared<engine::perplexity_options>();
  auto max_tokens = std::make_shared<int64_t>(0);
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--model", *model, "model folder or GGUF file (default: the bundled model)");
  cmd->add_option("--tokenizer", *tokenizer_path, "tokenizer (default: the model)");
  cmd->add_option("--file", *file, "UTF-8 text to score")->required();
  cmd->add_option("--context", options->context, "tokens per window (default: the model's context)")
      ->check(CLI::Range(2, 1 << 24));
  cmd->add_option("--stride", options->stride, "tokens between windows (default: --context)")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--max-tokens", *max_tokens, "score only the first N tokens of the file")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  cmd->add_flag("--json", *json, "print one JSON object");
  auto mmap = std::make_shared<bool>(false);
  add_mmap_flag(cmd, *mmap);
  cmd->callback([=] {
    const auto text = io::read_file(*file);
    if (!text) throw std::invalid_argument("cannot read " + *file);
    *model = models::model_or_default(*model);
    const models::llama_model m = models::load_llama(*model, {.mmap = *mmap});
    const tokenizer tok = load_tokenizer(tokenizer_path->empty() ? *model : *tokenizer_path);
    std::vector<int32_t> ids = tok.encode(*text, true);
    if (*max_tokens > 0 && static_cast<int64_t>(ids.size()) > *max_tokens) ids.resize(*max_tokens);
    // A progress line on a terminal only; redirected output stays one clean result.
    if (isatty(STDERR_FILENO)) {
      options->on_progress = [](int64_t done, int64_t total) {
        std::fprintf(stderr, "\r%lld/%lld tokens", static_cast<long long>(done),
                     static_cast<long long>(total));
      };
    }
    const auto start = std::chrono::steady_clock::now();
    const engine::perplexity_result r = engine::evaluate_perplexity(m, ids, *options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options->on_progress) std::fprintf(stderr, "\n");
    if (*json) {
      const nlohmann::json j = {{"perplexity", r.perplexity()},
                                {"nll_per_token", r.nll / static_cast<double>(r.tokens)},
                                {"tokens_scored", r.tokens},
                                {"tokens", ids.size()},
                                {"windows", r.windows},
                                {"seconds", seconds},
                                {"tokens_per_s", static_cast<double>(ids.size()) / seconds}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("perplexity %.4f over %lld tokens (%d windows, %.1f s)\n", r.perplexity(),
                  static_cast<long long>(r.tokens), r.windows, seconds);
    }
  });
}

}  // namespace mlxd::app
