// Remembers the ids of short pre-tokenized pieces, because real text repeats its words: BPE over a word is
// hundreds of nanoseconds, a lookup tens. Sharded, each shard behind its own mutex, so encode() stays
// thread-safe without making threads queue on one lock. A full shard is cleared, which bounds memory.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mlxd::tokenizer_detail {

class piece_cache {
 public:
  static constexpr size_t max_piece_bytes = 64;  // longer pieces are rare and not worth the memory

  // Appends the cached ids of `piece` to `ids` and returns true, or returns false if it is not cached.
  bool lookup(std::string_view piece, std::vector<int32_t>& ids) const;
  // Caches ids[first..] as the ids of `piece` (ignored for pieces longer than max_piece_bytes).
  void store(std::string_view piece, const std::vector<int32_t>& ids, size_t first) const;

 private:
  static constexpr size_t n_shards = 16;
  static constexpr size_t max_entries_per_shard = 8192;
  // Lets find() take a string_view without building a std::string.
  struct text_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, text_hash, std::equal_to<>> entries;
  };
  shard& shard_of(std::string_view piece) const { return shards_[text_hash{}(piece) % n_shards]; }

  mutable std::array<shard, n_shards> shards_;
};

}  // namespace mlxd::tokenizer_detail
