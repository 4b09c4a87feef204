// The records a rank reads, in order: the non-empty lines of one or more files (plain text: one sample a
// line; JSONL: one JSON object a line), in file order or shuffled per epoch from a seed, minus the other
// split (train/validation by a hash of the line's bytes), dealt round-robin to the ranks, with a cursor
// that a checkpoint stores as JSON and that restores the stream exactly.
//
// Order: epoch e visits every non-empty line once. Unshuffled, in file order, streaming from the cursor's
// byte offset. Shuffled, in a permutation drawn from (seed, e) with a portable generator (splitmix64 +
// Fisher-Yates, the same on every platform), over an index of line offsets and splits built by one streaming
// pass at construction (32 bytes per line; the text itself is read line by line when needed).
// Split: a line is in the validation split when fnv1a64(line bytes) / 2^64 < validation_fraction, so a line
// keeps its split whatever the order or the rank. Sharding: the k-th line of the split in the stream (counted
// over epochs) belongs to rank k % world_size, so the ranks' parts of an epoch are disjoint and together
// cover the split, and N ranks taking one record each in turn see exactly one process's sequence, with or
// without a validation split.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mlxd::data {

enum class split { train, validation };

struct source_options {
  std::vector<std::filesystem::path> files;
  bool shuffle = false;
  uint64_t seed = 0;
  double validation_fraction = 0.0;  // in [0, 1]
  split which = split::train;
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t max_epochs = 1;  // 0: endless
};

// Where a stream stands: the next line to consider. epoch and position (in the epoch's order, all ranks'
// lines counted) say it for both orders; file, offset and line locate it in the files (the unshuffled
// stream reopens there). token_offset is for the batch loader: tokens of that line's sample already batched.
// dealt: the lines of the split (all ranks') before this point since the stream began; says whose the next
// is.
struct cursor {
  int64_t epoch = 0;
  uint64_t position = 0;
  uint64_t file = 0;
  uint64_t offset = 0;
  uint64_t line = 1;
  uint64_t token_offset = 0;
  uint64_t dealt = 0;

  nlohmann::json to_json() const;
  // Throws data_error naming the key for a missing or mistyped field. A cursor written before `dealt`
  // existed (when lines were dealt before the split) gets dealt = position.
  static cursor from_json(const nlohmann::json& j);
  // As integers, in the order of the fields (for gathering cursors over ranks).
  static constexpr size_t n_fields = 7;
  std::vector<int64_t> to_row() const;
  static cursor from_row(const int64_t* row);
  bool operator==(const cursor&) const = default;
};

struct record {
  std::string text;           // the line without its newline
  uint64_t file = 0;          // index into source_options::files
  uint64_t line = 0;          // 1-based line number
  std::string where() const;  // "path:line"
  const std::filesystem::path* path = nullptr;
};

class record_source {
 public:
  // Throws std::invalid_argument for bad options (no files, rank outside [0, world_size), a fraction outside
  // [0, 1]) and data_error for a file that cannot be read.
  explicit record_source(source_options options);
  ~record_source();
  record_source(record_source&&) noexcept;

  // The next record of this rank and split; nullopt after max_epochs epochs, or when a whole epoch held none.
  std::optional<record> next();

  // The position before the record next() returns next.
  cursor position() const;
  // Continues from a cursor position() returned (with the same options). Throws data_error when the cursor
  // does not fit the files (an offset past the end, a position past the epoch).
  void restore(const cursor& c);

  const source_options& options() const { return options_; }

 private:
  struct impl;
  void ensure_order() const;
  bool in_validation(std::string_view line) const;
  source_options options_;
  std::unique_ptr<impl> impl_;
};

// FNV-1a, 64 bits: the split hash.
uint64_t fnv1a64(std::string_view bytes);

}  // namespace mlxd::data
