// Shared by the data tests: a scratch folder, and a small byte-level BPE tokenizer with ChatML special
// tokens, trained once from a fixed text with mlxd's own trainer.
#pragma once

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <unistd.h>

#include "mlxd/tokenizer/bpe_trainer.h"
#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd::test {

class scratch {
 public:
  scratch() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("mlxd_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
             std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path_);
  }
  ~scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& bytes) const {
    std::ofstream out(path_ / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

// Special tokens: <s> 0, </s> 1, <|im_start|> 2, <|im_end|> 3.
inline const tokenizer& test_tokenizer() {
  static const tokenizer tok = [] {
    bpe_trainer_options o;
    o.vocab_size = 400;
    bpe_trainer trainer(o);
    for (int i = 0; i < 20; ++i) {
      trainer.add_text(
          "In the beginning God created the heaven and the earth. And the earth was without form, and void.\n"
          "What is the capital of France? The capital of France is Paris. Hello, how are you today?\n"
          "user assistant system You are a helpful assistant.\n");
    }
    static scratch dir;
    save_tokenizer_files(trainer.train(), {}, dir.path());
    return tokenizer::load(dir.path());
  }();
  return tok;
}

}  // namespace mlxd::test
