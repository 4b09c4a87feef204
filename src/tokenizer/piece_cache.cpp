#include "tokenizer/piece_cache.h"

namespace mlxd::tokenizer_detail {

bool piece_cache::lookup(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() > max_piece_bytes) return false;
  shard& s = shard_of(piece);
  const std::lock_guard lock(s.mutex);
  const auto it = s.entries.find(piece);
  if (it == s.entries.end()) return false;
  ids.insert(ids.end(), it->second.begin(), it->second.end());
  return true;
}

void piece_cache::store(std::string_view piece, const std::vector<int32_t>& ids, size_t first) const {
  if (piece.size() > max_piece_bytes) return;
  shard& s = shard_of(piece);
  const std::lock_guard lock(s.mutex);
  if (s.entries.size() >= max_entries_per_shard) s.entries.clear();
  s.entries.try_emplace(std::string(piece), ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end());
}

}  // namespace mlxd::tokenizer_detail
