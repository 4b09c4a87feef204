#include <cstdio>
#include <stdexcept>

#include "commands.h"
#include "mlxd/io/file_text.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"

namespace mlxd::app {

void add_tokenize_commands(CLI::App& app) {
  auto* enc = app.add_subcommand("tokenize", "print the token ids of a text as a JSON array");
  auto enc_path = std::make_shared<std::string>();
  auto special = std::make_shared<bool>(false);
  auto file = std::make_shared<std::string>();
  auto text = std::make_shared<std::string>();
  enc->add_option("--tokenizer", *enc_path, "a model folder, tokenizer.json, tokenizer.model or GGUF file")
      ->required();
  enc->add_flag("--special", *special, "add the special tokens of the post-processor (BOS/EOS)");
  auto* file_opt = enc->add_option("--file", *file, "read the text from this file (bytes as they are)");
  enc->add_option("text", *text, "the text")->excludes(file_opt);
  enc->callback([enc_path, special, file, text] {
    std::string input = *text;
    if (!file->empty()) {
      auto bytes = io::read_file(*file);
      if (!bytes) throw std::runtime_error(*file + ": cannot open");
      input = std::move(*bytes);
    }
    const auto ids = load_tokenizer(*enc_path).encode(input, *special);
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) out += (i > 0 ? "," : "") + std::to_string(ids[i]);
    std::printf("%s]\n", out.c_str());
  });

  auto* dec = app.add_subcommand("detokenize", "print the text of token ids");
  auto dec_path = std::make_shared<std::string>();
  auto ids = std::make_shared<std::vector<token_id>>();
  auto skip = std::make_shared<bool>(false);
  dec->add_option("--tokenizer", *dec_path, "a model folder, tokenizer.json, tokenizer.model or GGUF file")
      ->required();
  dec->add_flag("--skip-special", *skip, "leave out special tokens");
  dec->add_option("ids", *ids, "token ids");
  dec->callback([dec_path, ids, skip] {
    const std::string out = load_tokenizer(*dec_path).decode(*ids, *skip);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::printf("\n");
  });
}

}  // namespace mlxd::app
