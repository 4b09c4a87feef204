#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "mlxd/tokenizer/bpe_trainer.h"

namespace mlxd::app {

void add_tokenizer_train_command(CLI::App& app) {
  auto* group = app.add_subcommand("tokenizer", "tokenizer tools");
  group->require_subcommand(1);
  auto* train =
      group->add_subcommand("train", "learn a byte-level BPE vocabulary and write a tokenizer folder");
  struct flags {
    std::vector<std::string> corpus;
    std::string out, special = "<s>,</s>,<|im_start|>,<|im_end|>", bos = "<s>", eos = "</s>",
                     pattern = "llama3";
    int64_t vocab_size = 8000, min_frequency = 2;
    bool no_chat_template = false;
  };
  auto f = std::make_shared<flags>();
  train->add_option("--corpus", f->corpus, "text files to learn from (UTF-8)")
      ->required()
      ->check(CLI::ExistingFile);
  train->add_option("--vocab-size", f->vocab_size, "tokens in all: special + 256 bytes + merges")
      ->capture_default_str();
  train
      ->add_option("--out", f->out,
                   "folder for tokenizer.json, tokenizer_config.json, generation_config.json")
      ->required();
  train->add_option("--min-frequency", f->min_frequency, "never merge a pair seen fewer times")
      ->capture_default_str();
  train->add_option("--special", f->special, "special tokens, comma-separated (ids 0, 1, ...)")
      ->capture_default_str();
  train->add_option("--bos", f->bos, "the BOS token (one of --special; empty: none)")->capture_default_str();
  train->add_option("--eos", f->eos, "the EOS token (one of --special; empty: none)")->capture_default_str();
  train->add_option("--pattern", f->pattern, "pre-tokenizer regex: llama3, gpt2 or a PCRE pattern")
      ->capture_default_str();
  train->add_flag("--no-chat-template", f->no_chat_template, "write no ChatML chat template");
  train->callback([f] {
    bpe_trainer_options o;
    o.vocab_size = f->vocab_size;
    o.min_frequency = f->min_frequency;
    o.special_tokens.clear();
    for (size_t begin = 0; begin <= f->special.size() && !f->special.empty();) {
      const size_t end = std::min(f->special.find(',', begin), f->special.size());
      o.special_tokens.push_back(f->special.substr(begin, end - begin));
      begin = end + 1;
    }
    o.pattern = f->pattern == "llama3" ? std::string(llama3_pattern)
                : f->pattern == "gpt2" ? std::string(gpt2_pattern)
                                       : f->pattern;
    for (const auto* t : {&f->bos, &f->eos}) {  // fail before training, not after
      if (!t->empty() &&
          std::find(o.special_tokens.begin(), o.special_tokens.end(), *t) == o.special_tokens.end())
        throw std::invalid_argument("'" + *t + "' is not one of the special tokens (--special)");
    }
    const auto start = std::chrono::steady_clock::now();
    bpe_trainer trainer(o);
    add_files(trainer, {f->corpus.begin(), f->corpus.end()});
    const auto counted = std::chrono::steady_clock::now();
    const auto vocab = trainer.train();
    const auto trained = std::chrono::steady_clock::now();
    tokenizer_files_options files;
    files.bos_token = f->bos;
    files.eos_token = f->eos;
    files.chat_template = !f->no_chat_template;
    save_tokenizer_files(vocab, files, f->out);
    const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    const nlohmann::ordered_json summary = {{"out", f->out},
                                            {"vocab_size", vocab.tokens.size()},
                                            {"merges", vocab.merges.size()},
                                            {"distinct_pieces", trainer.n_words()},
                                            {"count_seconds", seconds(start, counted)},
                                            {"merge_seconds", seconds(counted, trained)}};
    std::printf("%s\n", summary.dump().c_str());
  });
}

}  // namespace mlxd::app
