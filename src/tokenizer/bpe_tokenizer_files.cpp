// Writes a learned byte-level BPE vocabulary in the layout of Llama-3's tokenizer.json.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "mlxd/tokenizer/bpe_trainer.h"
#include "tokenizer/byte_level.h"

namespace mlxd {
namespace {

using ordered = nlohmann::ordered_json;

bool is_special(const bpe_vocabulary& vocab, const std::string& token) {
  return std::find(vocab.special_tokens.begin(), vocab.special_tokens.end(), token) !=
         vocab.special_tokens.end();
}

void check_options(const bpe_vocabulary& vocab, const tokenizer_files_options& options) {
  for (const auto* t : {&options.bos_token, &options.eos_token}) {
    if (!t->empty() && !is_special(vocab, *t))
      throw std::invalid_argument("[save_tokenizer_files] '" + *t + "' is not one of the special tokens");
  }
}

bool has_chatml(const bpe_vocabulary& vocab, const tokenizer_files_options& options) {
  return options.chat_template && is_special(vocab, "<|im_start|>") && is_special(vocab, "<|im_end|>");
}

// The vocabulary spelling: special tokens as written, the others in GPT-2's printable byte characters.
std::string spelling(const bpe_vocabulary& vocab, size_t id) {
  if (id < vocab.special_tokens.size()) return vocab.tokens[id];
  return tokenizer_detail::bytes_to_unicode(vocab.tokens[id]);
}

ordered byte_level(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", trim_offsets},
          {"use_regex", use_regex}};
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error(tmp.string() + ": cannot write");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error(path.string() + ": cannot write: " + ec.message());
}

}  // namespace

std::string tokenizer_json(const bpe_vocabulary& vocab, const tokenizer_files_options& options) {
  check_options(vocab, options);
  ordered added = ordered::array();
  for (size_t id = 0; id < vocab.special_tokens.size(); ++id) {
    added.push_back({{"id", id},
                     {"content", vocab.special_tokens[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  ordered post = nullptr;
  if (!options.bos_token.empty()) {
    const auto bos_id =
        std::find(vocab.tokens.begin(), vocab.tokens.end(), options.bos_token) - vocab.tokens.begin();
    const ordered bos = {{"SpecialToken", {{"id", options.bos_token}, {"type_id", 0}}}};
    post = {{"type", "TemplateProcessing"},
            {"single", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {bos,
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              bos,
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens",
             {{options.bos_token,
               {{"id", options.bos_token}, {"ids", {bos_id}}, {"tokens", {options.bos_token}}}}}}};
  }
  ordered vocab_map = ordered::object();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) vocab_map[spelling(vocab, id)] = id;
  ordered merges = ordered::array();
  for (const auto& [l, r] : vocab.merges) {
    merges.push_back(spelling(vocab, static_cast<size_t>(l)) + " " + spelling(vocab, static_cast<size_t>(r)));
  }
  ordered split = {{"type", "Split"},
                   {"pattern", {{"Regex", vocab.pattern}}},
                   {"behavior", "Isolated"},
                   {"invert", false}};
  ordered doc = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {split, byte_level(false, true, false)}}}},
      {"post_processor", post},
      {"decoder", byte_level(true, true, true)},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab_map},
        {"merges", merges}}}};
  return doc.dump(1) + "\n";
}

std::string tokenizer_config_json(const bpe_vocabulary& vocab, const tokenizer_files_options& options) {
  check_options(vocab, options);
  ordered doc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"bos_token", options.bos_token.empty() ? ordered(nullptr) : ordered(options.bos_token)},
                 {"eos_token", options.eos_token.empty() ? ordered(nullptr) : ordered(options.eos_token)},
                 {"clean_up_tokenization_spaces", false},
                 {"model_input_names", {"input_ids", "attention_mask"}}};
  if (has_chatml(vocab, options)) {
    doc["chat_template"] = std::string(options.bos_token.empty() ? "" : "{{ bos_token }}") +
                           "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
                           "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
                           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  }
  return doc.dump(2) + "\n";
}

void save_tokenizer_files(const bpe_vocabulary& vocab, const tokenizer_files_options& options,
                          const std::filesystem::path& dir) {
  const std::string tokenizer = tokenizer_json(vocab, options);
  const std::string config = tokenizer_config_json(vocab, options);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot create: " + ec.message());
  write_file(dir / "tokenizer.json", tokenizer);
  write_file(dir / "tokenizer_config.json", config);
  // Generation stops at EOS and, for chat, at the end of a turn.
  const auto id_of = [&](const std::string& t) {
    return std::find(vocab.tokens.begin(), vocab.tokens.end(), t) - vocab.tokens.begin();
  };
  ordered generation = {
      {"bos_token_id", options.bos_token.empty() ? ordered(nullptr) : ordered(id_of(options.bos_token))}};
  ordered eos = ordered::array();
  if (!options.eos_token.empty()) eos.push_back(id_of(options.eos_token));
  if (has_chatml(vocab, options)) eos.push_back(id_of("<|im_end|>"));
  generation["eos_token_id"] = eos;
  write_file(dir / "generation_config.json", generation.dump(2) + "\n");
}

}  // namespace mlxd
