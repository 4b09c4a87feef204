// The tokenizer of a GGUF file against the tokenizer it was converted from: the fixture writes GGUF files
// from the real Llama-3 and Qwen3 tokenizer.json (byte-level, "gpt2"), Mistral's tokenizer.json and the real
// Llama-2 tokenizer.model (SentencePiece BPE by score, "llama"), as llama.cpp's converter does
// (make_tokenizer_gguf.py). Each must give the reference's ids and text on every test input.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer.h"
#include "mlxd/tokenizer/tokenizer_error.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer_export.h"
#include "reference_cases.h"
#include "support/temp_dir.h"

namespace mlxd {
namespace {

using test::reference_expected;

const tokenizer& load(const std::string& name) {
  static std::map<std::string, tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const std::string file = std::string(MLXD_TOKENIZER_REFERENCE_DIR) + "/gguf/" + name + ".gguf";
    it = cache.emplace(name, load_tokenizer(file)).first;
  }
  return it->second;
}

class gguf_reference : public ::testing::TestWithParam<std::string> {};

// The tokenizer.json folder of `name` as add_gguf_tokenizer writes it (what `mlxd convert` embeds), read
// back.
const tokenizer& exported(const std::string& name) {
  static std::map<std::string, tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    gguf_metadata metadata;
    metadata.set("general.architecture", "llama");
    add_gguf_tokenizer(reference_expected()["models"][name]["dir"].get<std::string>(), metadata);
    const std::string file = std::string(MLXD_TOKENIZER_REFERENCE_DIR) + "/gguf/exported_" + name + ".gguf";
    save_gguf(file, metadata, {});
    it = cache.emplace(name, load_tokenizer(file)).first;
  }
  return it->second;
}

// Every reference case of `name`: the same ids, and the same decoded text, with and without special tokens.
void check_cases(const tokenizer& tok, const std::string& name) {
  const auto& cases = reference_expected()["models"][name]["cases"];
  ASSERT_GE(cases.size(), 300u);
  int failures = 0;
  for (const auto& c : cases) {
    const std::string text = test::reference_case_text(c);
    const auto ids = tok.encode(text, true);
    const auto plain = tok.encode(text, false);
    const std::string label = nlohmann::json(c.contains("text") ? c["text"] : c["bytes"]).dump();
    const auto want_ids = c["ids"].get<std::vector<token_id>>();
    const auto want_plain = c["plain"].get<std::vector<token_id>>();
    EXPECT_EQ(test::show_ids(ids), test::show_ids(want_ids)) << label;
    EXPECT_EQ(test::show_ids(plain), test::show_ids(want_plain)) << label;
    const bool ok = ids == want_ids && plain == want_plain &&
                    tok.decode(want_ids) == c["decoded"].get<std::string>() &&
                    tok.decode(want_ids, true) == c["decoded_skip"].get<std::string>() &&
                    tok.decode(want_plain) == c["decoded_plain"].get<std::string>();
    EXPECT_EQ(tok.decode(want_ids), c["decoded"].get<std::string>()) << label;
    EXPECT_EQ(tok.decode(want_ids, true), c["decoded_skip"].get<std::string>()) << label;
    EXPECT_EQ(tok.decode(want_plain), c["decoded_plain"].get<std::string>()) << label;
    if (!ok && ++failures >= 10) FAIL() << "stopping after 10 failing inputs";
  }
}

// The GGUF of a tokenizer.json, as llama.cpp's converter writes it (make_tokenizer_gguf.py).
TEST_P(gguf_reference, ids_and_text_match_the_tokenizer_json) {
  check_cases(load(GetParam()), GetParam());
}

INSTANTIATE_TEST_SUITE_P(tokenizers, gguf_reference, ::testing::Values("llama3", "qwen3", "llama2"));

// The byte-level tokenizer.json files written by add_gguf_tokenizer: the same cases, special ids and
// template.
TEST(gguf_export, byte_level_tokenizers_round_trip) {
  for (const char* name : {"llama3", "qwen3"}) {
    const tokenizer& tok = exported(name);
    check_cases(tok, name);
    const tokenizer json = tokenizer::load(reference_expected()["models"][name]["dir"].get<std::string>());
    EXPECT_EQ(tok.bos_id(), json.bos_id()) << name;
    EXPECT_EQ(tok.eos_id(), json.eos_id()) << name;
    EXPECT_EQ(tok.vocab_size(), json.vocab_size()) << name;
    EXPECT_EQ(tok.chat_template(), json.chat_template()) << name;
  }
}

// Mistral's tokenizer.json is SentencePiece-style BPE (a normalizer, byte fallback): GGUF's byte-level model
// cannot hold it, and the error says so rather than writing a tokenizer that encodes differently.
TEST(gguf_export, sentencepiece_style_tokenizer_json_is_refused) {
  gguf_metadata metadata;
  try {
    add_gguf_tokenizer(reference_expected()["models"]["llama2"]["dir"].get<std::string>(), metadata);
    ADD_FAILURE() << "exported";
  } catch (const tokenizer_error& e) {
    EXPECT_NE(std::string(e.what()).find("normalizer"), std::string::npos) << e.what();
  }
  EXPECT_EQ(metadata.find("tokenizer.ggml.model"), nullptr);
}

// The GGUF of the real Llama-2 tokenizer.model, with its own scores, against SentencePiece: the same ids and
// text, except that (as in llama.cpp) control tokens written in the text are matched, so inputs holding
// "<s>", "</s>" or "<unk>" are left out.
TEST(gguf_reference_sentencepiece, ids_match_sentencepiece_outside_literal_control_tokens) {
  const tokenizer& tok = load("llama2_spm");
  int compared = 0, failures = 0;
  for (const auto& c : reference_expected()["models"]["llama2_spm"]["cases"]) {
    const std::string text = test::reference_case_text(c);
    if (text.find("<s>") != std::string::npos || text.find("</s>") != std::string::npos ||
        text.find("<unk>") != std::string::npos) {
      continue;
    }
    ++compared;
    const auto plain = tok.encode(text, false);
    const auto want_plain = c["plain"].get<std::vector<token_id>>();
    EXPECT_EQ(test::show_ids(plain), test::show_ids(want_plain)) << text;
    EXPECT_EQ(test::show_ids(tok.encode(text, true)), test::show_ids(c["ids"].get<std::vector<token_id>>()))
        << text;
    EXPECT_EQ(tok.decode(want_plain), c["decoded_plain"].get<std::string>()) << text;
    if (plain != want_plain && ++failures >= 10) FAIL() << "stopping after 10 failing inputs";
  }
  EXPECT_GE(compared, 300);
}

// A folder with only the Llama-2 tokenizer.model, as add_gguf_tokenizer writes it (what `mlxd convert`
// embeds): every tokenizer.ggml key equals what the independent Python converter wrote, and the result
// encodes the reference cases as SentencePiece does.
TEST(gguf_export, a_sentencepiece_model_gives_the_converters_metadata) {
  const std::string dir = std::string(MLXD_TOKENIZER_REFERENCE_DIR);
  const test::temp_dir folder("spm_export");
  std::filesystem::copy_file(dir + "/spm/tokenizer.model", folder.path() / "tokenizer.model");
  gguf_metadata metadata;
  metadata.set("general.architecture", "llama");
  add_gguf_tokenizer(folder.path(), metadata);
  const gguf_file want = load_gguf(dir + "/gguf/llama2_spm.gguf", {.read_tensors = false});
  int keys = 0;
  for (const auto& [key, value] : want.metadata) {
    if (!key.starts_with("tokenizer.")) continue;
    ++keys;
    const gguf_value* got = metadata.find(key);
    ASSERT_NE(got, nullptr) << key;
    EXPECT_TRUE(*got == value) << key << ": " << describe(*got) << " vs " << describe(value);
  }
  EXPECT_GE(keys, 10);
  const std::string file = dir + "/gguf/exported_llama2_spm.gguf";
  save_gguf(file, metadata, {});
  const tokenizer tok = load_tokenizer(file);
  int compared = 0;
  for (const auto& c : reference_expected()["models"]["llama2_spm"]["cases"]) {
    const std::string text = test::reference_case_text(c);
    if (text.find("<s>") != std::string::npos || text.find("</s>") != std::string::npos ||
        text.find("<unk>") != std::string::npos)
      continue;
    ++compared;
    ASSERT_EQ(test::show_ids(tok.encode(text, true)), test::show_ids(c["ids"].get<std::vector<token_id>>()))
        << text;
  }
  EXPECT_GE(compared, 300);
}

// Malformed or unigram tokenizer.model bytes are refused naming the file and what is wrong.
TEST(gguf_export, malformed_or_unigram_sentencepiece_models_are_refused) {
  const test::temp_dir folder("spm_bad");
  const std::string piece = std::string("\x0a\x03\x0a\x01") + "a";  // ModelProto.pieces {piece: "a"}
  const std::pair<std::string, const char*> cases[] = {
      {std::string("\x0a\x05\x0a\x01", 4), "runs past the end"},
      {std::string("\x0a\x80", 2), "truncated varint"},
      {piece + std::string("\x12\x02\x18\x01", 4), "model type 1 is not BPE"},
      {piece, "model type 1 is not BPE"},  // unigram is the default
      {std::string("\x12\x02\x18\x02", 4), "no pieces"},
      {piece + std::string("\x12\x04\x18\x02\xc8\x02", 6) + std::string("\x05", 1), "truncated varint"},
      {std::string("\x0a\x02\x18\x09", 4) + std::string("\x12\x02\x18\x02", 4), "piece type 9"},
  };
  for (const auto& [bytes, message] : cases) {
    folder.write("tokenizer.model", bytes);
    gguf_metadata metadata;
    try {
      add_gguf_tokenizer(folder.path(), metadata);
      ADD_FAILURE() << "accepted: " << message;
    } catch (const tokenizer_error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << e.what();
    }
    EXPECT_EQ(metadata.size(), 0u) << "nothing added after: " << message;
  }
}

TEST(gguf_reference_config, special_ids_and_template_match_the_tokenizer_json) {
  for (const char* name : {"llama3", "qwen3", "llama2"}) {
    const tokenizer json = tokenizer::load(reference_expected()["models"][name]["dir"].get<std::string>());
    const tokenizer& gguf = load(name);
    EXPECT_EQ(gguf.bos_id(), json.bos_id()) << name;
    EXPECT_EQ(gguf.eos_id(), json.eos_id()) << name;
    EXPECT_EQ(gguf.pad_id(), json.pad_id()) << name;
    EXPECT_EQ(gguf.vocab_size(), json.vocab_size()) << name;
    EXPECT_EQ(gguf.chat_template(), json.chat_template()) << name;
    for (const token_id id : {0, 1, 2, 13, 1000, static_cast<token_id>(json.vocab_size() - 1)}) {
      EXPECT_EQ(gguf.id_to_token(id), json.id_to_token(id)) << name << " " << id;
      EXPECT_EQ(gguf.is_special(id), json.is_special(id)) << name << " " << id;
    }
  }
  const tokenizer& spm = load("llama2_spm");
  EXPECT_EQ(spm.bos_id(), 1);
  EXPECT_EQ(spm.eos_id(), 2);
  EXPECT_EQ(spm.unk_id(), 0);
  EXPECT_EQ(spm.vocab_size(), 32000);
}

}  // namespace
}  // namespace mlxd
