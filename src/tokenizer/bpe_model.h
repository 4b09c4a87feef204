// The BPE model of tokenizer.json: a vocabulary, merges ranked by their order, and the options real files use
// (ignore_merges, byte_fallback to <0xNN> tokens, unk_token).
//
// Encoding a piece starts from its code points and repeatedly applies the lowest-ranked merge present (the
// leftmost one on ties). A heap of candidate pairs over a linked list of symbols makes this O(n log n) in the
// length of the piece, so a megabyte without a space costs no more per byte than a short word.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mlxd::tokenizer_detail {

class bpe_model {
 public:
  // Reads a tokenizer.json "model" object of type BPE. Merges may be "a b" strings or ["a", "b"] pairs.
  // Throws tokenizer_error when it is malformed, or sets an option none of the supported model families use
  // (dropout, continuing_subword_prefix, end_of_word_suffix): refusing beats silently giving other ids.
  explicit bpe_model(const nlohmann::json& config);

  // Appends the ids of `piece` (one pre-token) to `ids`.
  void encode(std::string_view piece, std::vector<int32_t>& ids) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  std::optional<int32_t> unk_id() const { return unk_id_; }

 private:
  struct merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void append_unknown(std::string_view symbol, std::vector<int32_t>& ids) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, merge> merges_;  // (left id, right id) -> rank and id of the merged token
  std::array<int32_t, 256> byte_ids_{};         // id of <0xNN>, or -1
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
};

}  // namespace mlxd::tokenizer_detail
