// Added tokens of tokenizer.json ("added_tokens"): strings matched in the text before the model runs, so that
// "<|im_start|>" written literally becomes its one id. Matching is leftmost-longest. Tokens with
// normalized=false are matched in the raw text; those with normalized=true in the normalized text of each
// remaining section. lstrip/rstrip swallow the whitespace beside a match; single_word accepts a match only
// when no word character touches it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mlxd::tokenizer_detail {

struct added_token {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A piece of text: either an added token (id >= 0) or text for the normalizer and model (id == -1).
struct text_section {
  std::string text;
  int32_t id = -1;
};

class added_vocabulary {
 public:
  // Reads the "added_tokens" array. Throws tokenizer_error when an entry lacks id or content.
  explicit added_vocabulary(const nlohmann::json& added_tokens);

  const std::vector<added_token>& tokens() const { return tokens_; }

  // Splits `text` at the added tokens whose `normalized` flag equals `normalized`; empty sections are
  // dropped.
  std::vector<text_section> split(std::string_view text, bool normalized) const;

 private:
  struct trie_node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // index into tokens_ of the token that ends here
  };
  void insert(int32_t trie, const std::string& content, int32_t token);
  int32_t child(int32_t node, unsigned char c) const;
  bool word_boundaries_ok(std::string_view text, size_t begin, size_t end) const;

  std::vector<added_token> tokens_;
  std::vector<trie_node> nodes_;  // nodes_[0]: raw-text trie root, nodes_[1]: normalized-text trie root
};

}  // namespace mlxd::tokenizer_detail
