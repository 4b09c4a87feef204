// The reference tokenizers' expected outputs (expected.json, written by the tokenizer_reference fixture) and
// the helpers the reference tests read them with.
#pragma once

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd::test {

inline const nlohmann::json& reference_expected() {
  static const nlohmann::json data = [] {
    const std::string path = std::string(MLXD_TOKENIZER_REFERENCE_DIR) + "/expected.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + " is missing: the tokenizer_reference fixture did not run");
    return nlohmann::json::parse(in);
  }();
  return data;
}

// A case's input: its "text", or its raw "bytes" where the text is not valid UTF-8.
inline std::string reference_case_text(const nlohmann::json& c) {
  if (!c.contains("bytes")) return c["text"].get<std::string>();
  std::string bytes;
  for (const auto& b : c["bytes"]) bytes.push_back(static_cast<char>(b.get<int>()));
  return bytes;
}

// Ids as one JSON line, so that a mismatch prints readably.
inline std::string show_ids(const std::vector<token_id>& ids) {
  return nlohmann::json(ids).dump();
}

}  // namespace mlxd::test
