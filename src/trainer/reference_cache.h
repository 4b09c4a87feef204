// The reference model's summed log-probs of preference pairs, kept on disk so that later epochs and later
// runs skip the reference forward. Files are named by a hash of the reference's weights and config, the
// tokenizer and the settings that change the tokens (seq_len), and hold one JSON line per pair keyed by a
// hash of the record's bytes; each rank appends to its own file and reads them all. Internal to the trainer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mlxd::trainer {

// Hex FNV-1a of the files' bytes and of `extra`, in order (a missing file is an io_error).
std::string content_hash(const std::vector<std::filesystem::path>& files, const std::string& extra);

class reference_cache {
 public:
  // Reads every "<name>.rank*.jsonl" in `dir` (a torn last line from a killed run is skipped) and appends
  // new entries to "<name>.rank<rank>.jsonl".
  reference_cache(const std::filesystem::path& dir, const std::string& name, int rank);
  ~reference_cache();
  reference_cache(const reference_cache&) = delete;
  reference_cache& operator=(const reference_cache&) = delete;

  std::optional<std::pair<float, float>> find(uint64_t key) const;
  void add(uint64_t key, float chosen, float rejected);
  size_t size() const { return entries_.size(); }

 private:
  std::unordered_map<uint64_t, std::pair<float, float>> entries_;
  std::filesystem::path file_;
  std::FILE* out_ = nullptr;
};

}  // namespace mlxd::trainer
