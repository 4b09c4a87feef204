// Parsing and validation of a safetensors header into plain structs. Depends only on dtype and nlohmann json,
// so the fuzzer can build it alone. Every check runs in every build type; see include/mlxd/io/safetensors.h
// for what is accepted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mlxd/core/dtype.h"

namespace mlxd::detail {

// Same cap as the reference implementation; real headers are at most a few MB.
inline constexpr uint64_t max_safetensors_header_bytes = 100'000'000;

// One validated tensor entry.
struct safetensors_entry {
  std::string name;
  std::string dtype_name;     // as spelled in the file, e.g. "F32"
  std::optional<dtype> type;  // empty for format dtypes mlxd has no equivalent of (F64, I8, ...)
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte range [begin, end) in the data section
  uint64_t end = 0;
};

struct safetensors_header {
  std::vector<safetensors_entry> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // file offset of the data section: 8 + header length
  uint64_t data_size = 0;   // bytes in the data section
};

// Reads the little-endian header length from the first 8 bytes of a file of `file_size` bytes and checks it
// against the cap and the file size. `prefix` holds at least the first min(8, file_size) bytes.
uint64_t parse_safetensors_header_length(std::span<const std::byte> prefix, uint64_t file_size,
                                         std::string_view origin);
// Parses and validates the header JSON of a file whose data section holds `data_size` bytes. The returned
// struct's data_start is 8 + json.size().
safetensors_header parse_safetensors_header_json(std::string_view json, uint64_t data_size,
                                                 std::string_view origin);
// Both steps over a whole file held in memory.
safetensors_header parse_safetensors_header(std::span<const std::byte> file, std::string_view origin);

// The safetensors name of an mlxd dtype: "F32", "F16", "BF16", "I32", "I64", "U8", "BOOL".
std::string_view safetensors_dtype_name(dtype t);

// Throws io_error("safetensors: <origin>: <what>").
[[noreturn]] void throw_safetensors_error(std::string_view origin, std::string_view what);

}  // namespace mlxd::detail
