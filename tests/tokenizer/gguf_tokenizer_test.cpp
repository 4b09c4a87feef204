// The GGUF tokenizer reader on hand-made metadata (written with save_gguf): the keys it reads, the defaults
// it applies, the chat template, and a clear tokenizer_error for files without a tokenizer, keys of the
// wrong type, unknown models, ids outside the vocabulary and damaged files.
#include <gtest/gtest.h>

#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"
#include "support/temp_dir.h"

namespace mlxd {
namespace {

using ids = std::vector<token_id>;

// A byte-level vocabulary: a b c, "Ġ", "ab", "Ġab", and <|end|> as a control token.
gguf_metadata byte_level_metadata() {
  gguf_metadata m;
  m.insert("general.architecture", "llama");
  m.insert("tokenizer.ggml.model", "gpt2");
  m.insert("tokenizer.ggml.pre", "llama-bpe");
  m.insert("tokenizer.ggml.tokens",
           gguf_value::array_of<std::string>(gguf_type::string,
                                             {"a", "b", "c", "\u0120", "ab", "\u0120ab", "<|end|>"}));
  m.insert("tokenizer.ggml.token_type", gguf_value::array_of<int32_t>(gguf_type::i32, {1, 1, 1, 1, 1, 1, 3}));
  m.insert("tokenizer.ggml.merges",
           gguf_value::array_of<std::string>(gguf_type::string, {"a b", "\u0120 ab"}));
  m.insert("tokenizer.ggml.bos_token_id", uint32_t{6});
  m.insert("tokenizer.ggml.eos_token_id", uint32_t{6});
  m.insert("tokenizer.ggml.eot_token_id", uint32_t{2});
  m.insert("tokenizer.chat_template", "{{ bos_token }}");
  return m;
}

std::string load_error(const std::filesystem::path& path) {
  try {
    load_tokenizer(path);
  } catch (const tokenizer_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(gguf_tokenizer, reads_the_vocabulary_and_its_settings) {
  test::temp_dir folder;
  save_gguf(folder.path() / "t.gguf", byte_level_metadata(), {});
  const tokenizer tok = load_tokenizer(folder.path() / "t.gguf");
  EXPECT_EQ(tok.vocab_size(), 7);
  EXPECT_EQ(tok.encode("ab ab<|end|>", true), (ids{6, 4, 5, 6}));  // llama-bpe adds BOS unless told not to
  EXPECT_EQ(tok.decode(ids{4, 5, 6}), "ab ab<|end|>");
  EXPECT_EQ(tok.decode(ids{4, 5, 6}, true), "ab ab");
  EXPECT_EQ(tok.eos_ids(), (ids{6, 2}));
  EXPECT_EQ(tok.chat_template(), "{{ bos_token }}");
  EXPECT_TRUE(tok.is_special(6));

  gguf_metadata m = byte_level_metadata();
  m.insert("tokenizer.ggml.add_bos_token", false);
  save_gguf(folder.path() / "t.gguf", m, {});
  EXPECT_EQ(load_tokenizer(folder.path() / "t.gguf").encode("ab", true), (ids{4}));
}

TEST(gguf_tokenizer, faults_name_the_file_and_the_key) {
  test::temp_dir folder;
  const auto path = folder.path() / "t.gguf";
  auto fails_with = [&](const gguf_metadata& m, const std::string& fault) {
    save_gguf(path, m, {});
    const std::string error = load_error(path);
    EXPECT_NE(error.find(fault), std::string::npos) << error;
    EXPECT_NE(error.find("t.gguf"), std::string::npos) << error;
  };
  gguf_metadata none;
  none.insert("general.architecture", "llama");
  fails_with(none, "the GGUF metadata has no tokenizer (no tokenizer.ggml.model)");
  gguf_metadata m = byte_level_metadata();
  m.set("tokenizer.ggml.model", "bert");
  fails_with(m, "unsupported tokenizer.ggml.model 'bert'");
  m = byte_level_metadata();
  m.set("tokenizer.ggml.tokens", gguf_value::array_of<int32_t>(gguf_type::i32, {1, 2}));
  fails_with(m, "tokenizer.ggml.tokens must be an array of strings, got array");
  m = byte_level_metadata();
  m.set("tokenizer.ggml.bos_token_id", "one");
  fails_with(m, "tokenizer.ggml.bos_token_id must be an integer token id, got string");
  m = byte_level_metadata();
  m.set("tokenizer.ggml.eos_token_id", uint32_t{7});
  fails_with(m, "eos token id 7 is outside the vocabulary (size 7)");
  m = byte_level_metadata();
  m.set("tokenizer.ggml.pre", "falcon");
  fails_with(m, "unsupported pre-tokenizer 'falcon'");
  m = byte_level_metadata();
  m.set("tokenizer.ggml.model", "llama");
  fails_with(m, "token scores: 0 for 7 tokens");
  m = byte_level_metadata();
  m.set("tokenizer.ggml.add_bos_token", uint32_t{1});
  fails_with(m, "tokenizer.ggml.add_bos_token must be a bool, got u32");

  save_gguf(path, byte_level_metadata(), {});
  std::filesystem::resize_file(path, 100);  // cut inside the tokens
  const std::string cut = load_error(path);
  EXPECT_EQ(cut.rfind("gguf: ", 0), 0u) << cut;
  EXPECT_NE(cut.find("t.gguf"), std::string::npos) << cut;
}

TEST(gguf_tokenizer, load_tokenizer_reads_other_sources_with_tokenizer_load) {
  test::temp_dir folder;
  EXPECT_NE(load_error(folder.path()).find("has no tokenizer.json or tokenizer.model"), std::string::npos);
  EXPECT_NE(load_error(folder.path() / "missing.gguf").find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace mlxd
