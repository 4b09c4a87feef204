// Parsing and validation of a GGUF header (everything before the data section) into plain structs. Depends
// only on the gguf value and type tables, so the fuzzer can build it alone. Every check runs in every build
// type; see include/mlxd/io/gguf.h for what is accepted.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "mlxd/io/gguf.h"

namespace mlxd::detail {

struct gguf_header {
  uint32_t version = 0;
  gguf_metadata metadata;
  std::vector<gguf_tensor_info> tensor_infos;  // file order
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // file offset of the data section
};

// Thrown (not an io_error) when `prefix` ends before the header does but the file holds more bytes: the
// caller reads at least `needed` bytes of the file and parses again.
struct gguf_need_more {
  uint64_t needed = 0;
};

// Parses the header of a file of `file_size` bytes whose first bytes are `prefix` (all of them, or enough to
// hold the header). Every tensor is checked to lie inside the file. Throws io_error("gguf: <origin>: ...").
gguf_header parse_gguf_header(std::span<const std::byte> prefix, uint64_t file_size, std::string_view origin);

[[noreturn]] void throw_gguf_error(std::string_view origin, std::string_view what);

}  // namespace mlxd::detail
