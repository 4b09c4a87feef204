// Reading and writing safetensors checkpoints (https://github.com/huggingface/safetensors).
//
// File layout: an 8-byte little-endian header length N, N bytes of JSON header, then the data section. The
// header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (byte offsets into the
// data section) and may hold "__metadata__", a string-to-string map.
//
// Readers validate every field before using it and throw mlxd::io_error whose message starts with
// "safetensors: <file>: " and names the fault; no input file can make them crash or read out of bounds.
// What is accepted:
//   - dtypes F32, F16, BF16, I32, I64, U8 and BOOL load as mlxd arrays. Other dtypes of the format (F64, I8,
//     I16, U16, U32, U64, F8_*, ...) are recognised and validated, then rejected as unsupported; unknown
//     dtype names are format errors. BOOL bytes must be 0 or 1. U32 loads as bytes when asked (see
//     safetensors_load_options::u32_as_bytes).
//   - Tensor byte ranges must lie inside the data section, match product(shape) * element size, and not
//     overlap. Unused bytes between or after tensors ("holes") are accepted, although the reference writer
//     never makes them.
//   - Duplicate keys anywhere in the header are errors (JSON parsers differ on which duplicate wins).
//   - Unknown keys inside a tensor entry are ignored. The header is capped at 100 MB.
//   - The product of a shape's non-zero dimensions must fit in int64.
//
// Functions here are thread-safe with respect to each other as long as they touch different paths.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "mlxd/core/array.h"
#include "mlxd/io/io_error.h"

namespace mlxd {

// The contents of one safetensors file (or of a sharded checkpoint).
struct safetensors_file {
  std::map<std::string, array> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__"; empty if the file has none
};

struct safetensors_load_options {
  // true: tensor bytes are read into memory the process owns (array::buffer()->owns_memory()), and the file
  // is closed on return. This is the default because the host may evict and refault mmapped pages at any
  // time.
  // false: the file is mapped read-only (MAP_PRIVATE, PROT_READ) and tensors are zero-copy views of the
  // mapping, which stays mapped while any of them lives. Writing through such a view faults. A tensor whose
  // bytes are not aligned to its element size is copied instead, as are the tensors of a file whose data
  // section is empty (there is nothing to map). Truncating the file while it is mapped raises SIGBUS on
  // access.
  bool copy = true;
  // true: U32 tensors load as U8 arrays of the same little-endian bytes, their last dimension times 4 (a
  // scalar becomes [4]). For packed integer formats read byte by byte, such as MLX's quantized weights.
  bool u32_as_bytes = false;
};

// Loads every tensor and the metadata of the safetensors file at `path`. Throws io_error when the file cannot
// be read, is malformed, or holds a dtype mlxd does not support.
safetensors_file load_safetensors(const std::filesystem::path& path,
                                  const safetensors_load_options& options = {});

// Writes `tensors` (any layout; non-contiguous views are written in row-major order) and `metadata` to
// `path`. The header lists "__metadata__" (when non-empty) and then the tensors in data order: by element
// size, largest first, then by name, which keeps every tensor aligned to its element size. Offsets are
// contiguous from 0 and the header is padded with spaces so the data section starts at a multiple of 8 bytes.
// Atomic: the bytes go to a temporary file in the same directory, which is fsynced and renamed over `path`,
// and the directory is fsynced. On failure the temporary file is removed, `path` is left as it was (unless
// only the final directory fsync failed), and io_error is thrown. A tensor named "__metadata__", a
// block-quantized tensor, or a name or metadata string that is not valid UTF-8 throws std::invalid_argument
// before anything is written.
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, array>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Loads a sharded checkpoint. `folder_or_index` is either the index file itself or a folder holding
// "model.safetensors.index.json". The index's "weight_map" maps tensor names to shard file names, which must
// be plain names in the index's folder (no path separators, no ".."). Each shard is loaded once; the result
// is the union of all shards' tensors (a shard's tensors that the map does not list are included too). Throws
// io_error when a mapped tensor is missing from its shard or a tensor appears in two shards. Metadata is the
// union of the shards' metadata; on conflicting values the shard whose name sorts first wins. The index's own
// "metadata" (e.g. total_size) is not returned.
safetensors_file load_safetensors_index(const std::filesystem::path& folder_or_index,
                                        const safetensors_load_options& options = {});

// Loads the weights of a model folder: the sharded checkpoint if "model.safetensors.index.json" exists, else
// "model.safetensors". Throws io_error if neither exists.
safetensors_file load_model_weights(const std::filesystem::path& folder,
                                    const safetensors_load_options& options = {});

}  // namespace mlxd
