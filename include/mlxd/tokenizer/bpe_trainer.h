// Learning a byte-level BPE vocabulary (GPT-2 / Llama-3 style) from a text corpus, and writing it as a
// Hugging Face tokenizer folder (tokenizer.json + tokenizer_config.json) that tokenizer::load reads.
//
// Training: the corpus is cut into pieces by the pre-tokenizer regex (Llama-3's by default) and each
// distinct piece is counted once with its frequency. Every piece starts as its bytes; the trainer then
// repeatedly merges the adjacent pair with the highest count (summed over pieces, weighted by frequency)
// into a new token. Ties go to the pair whose (left bytes, right bytes) compare smallest, bytewise
// lexicographic. Counts are kept incrementally: a pair -> pieces index and a max-heap with lazy deletion
// (a pair's count only falls once pushed), so a merge touches only the pieces that hold its pair.
//
// Ids: the special tokens first (in the order given), then the 256 bytes in byte order, then the merges in
// the order learned. Every byte is a token, so any text encodes without an unknown token.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mlxd {

namespace tokenizer_detail {
class regex;
}

// Llama-3's pre-tokenizer regex: contractions, letters with one leading non-letter, numbers of 1-3 digits,
// punctuation runs, newlines and other whitespace.
inline constexpr std::string_view llama3_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2's regex.
inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct bpe_trainer_options {
  // Size of the finished vocabulary: special tokens + 256 bytes + merges. Training stops earlier when no
  // pair reaches min_frequency.
  int64_t vocab_size = 8000;
  // A pair seen fewer times than this is never merged.
  int64_t min_frequency = 2;
  std::vector<std::string> special_tokens = {"<s>", "</s>", "<|im_start|>", "<|im_end|>"};
  std::string pattern = std::string(llama3_pattern);
};

// A learned vocabulary. Tokens are raw bytes (not GPT-2's printable spelling); merges refer to ids.
struct bpe_vocabulary {
  std::vector<std::string> special_tokens;          // ids 0 .. n-1
  std::vector<std::string> tokens;                  // every token by id, special tokens included
  std::vector<std::pair<int32_t, int32_t>> merges;  // in rank order; merge k created token n + 256 + k
  std::string pattern;
};

class bpe_trainer {
 public:
  // Throws std::invalid_argument when vocab_size leaves no room for the special tokens and the bytes, a
  // special token is empty or repeated; tokenizer_error when the pattern does not compile.
  explicit bpe_trainer(bpe_trainer_options options);

  // Counts the pieces of `text` (ill-formed UTF-8 replaced by U+FFFD, as encoding does). Text may come in
  // chunks; cut them where the regex would cut anyway (e.g. after a newline followed by a letter) to count
  // exactly what one call on the whole text would.
  void add_text(std::string_view text);

  // Learns the merges from everything added so far.
  bpe_vocabulary train() const;

  // Number of distinct pieces counted so far.
  size_t n_words() const { return words_.size(); }

 private:
  bpe_trainer_options options_;
  std::shared_ptr<const tokenizer_detail::regex> regex_;
  std::unordered_map<std::string, int64_t> words_;  // piece bytes -> frequency
};

// Reads each file in chunks (cut after a newline followed by a non-space character) into `trainer`.
// Throws std::runtime_error naming a file that cannot be read.
void add_files(bpe_trainer& trainer, const std::vector<std::filesystem::path>& files);

struct tokenizer_files_options {
  std::string bos_token = "<s>";  // must be one of the special tokens; empty: none
  std::string eos_token = "</s>";
  // Written as a ChatML template (<|im_start|>role\ncontent<|im_end|>\n) when both markers are special
  // tokens of the vocabulary; otherwise no chat template.
  bool chat_template = true;
};

// The tokenizer.json text of `vocab`: Split(pattern) + ByteLevel pre-tokenizer, BPE model, ByteLevel
// decoder, and a TemplateProcessing post-processor that adds BOS (when there is one).
std::string tokenizer_json(const bpe_vocabulary& vocab, const tokenizer_files_options& options);
// The matching tokenizer_config.json: bos/eos tokens, clean_up_tokenization_spaces false (so decoding is
// lossless), the chat template.
std::string tokenizer_config_json(const bpe_vocabulary& vocab, const tokenizer_files_options& options);
// Writes both files, and generation_config.json (bos_token_id; eos_token_id: EOS and, with the chat
// template, <|im_end|>), into `dir` (created if needed). Throws std::invalid_argument for a BOS/EOS that is
// not a special token, std::runtime_error when a file cannot be written.
void save_tokenizer_files(const bpe_vocabulary& vocab, const tokenizer_files_options& options,
                          const std::filesystem::path& dir);

}  // namespace mlxd
