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

#include "tokenizer/piece_cache.h"

namespace mlxd::tokenizer_detail {

// One merge rule: the pair (left, right) becomes left + right. Lower ranks apply first; pairs of equal rank
// apply leftmost first.
struct bpe_merge {
  std::string left, right;
  int32_t rank = 0;
};

struct bpe_options {
  bool byte_fallback = false;  // spell symbols outside the vocabulary as <0xNN> tokens
  bool ignore_merges = false;  // a piece that is itself in the vocabulary is taken whole
  std::optional<std::string> unk_token;
};

class bpe_model {
 public:
  // Reads a tokenizer.json "model" object of type BPE. Merges may be "a b" strings or ["a", "b"] pairs and
  // rank by their order. Throws tokenizer_error when it is malformed, or sets an option none of the supported
  // model families use (dropout, continuing_subword_prefix, end_of_word_suffix): refusing beats silently
  // giving other ids.
  explicit bpe_model(const nlohmann::json& config);
  // From parts. Merges whose parts or result are not in `vocab` are dropped (they can never apply); of two
  // merges of the same pair, the first one given counts.
  bpe_model(std::unordered_map<std::string, int32_t> vocab, const std::vector<bpe_merge>& merges,
            const bpe_options& options);

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
  void encode_uncached(std::string_view piece, std::vector<int32_t>& ids) const;
  void append_unknown(std::string_view symbol, std::vector<int32_t>& ids) const;
  void add_merge(const std::string& left, const std::string& right, int32_t rank);
  void set_options(const bpe_options& options);

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, merge> merges_;  // (left id, right id) -> rank and id of the merged token
  std::array<int32_t, 256> byte_ids_{};         // id of <0xNN>, or -1
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  piece_cache cache_;  // ids of recently seen short pieces
};

}  // namespace mlxd::tokenizer_detail
