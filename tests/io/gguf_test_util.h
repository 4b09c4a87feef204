// Byte builders for hand-made GGUF files in the io tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io_test_util.h"

namespace mlxd::test {

inline std::string le32(uint32_t n) {
  return le64(n).substr(0, 4);
}
// A GGUF string: u64 length and the bytes.
inline std::string gguf_str(const std::string& s) {
  return le64(s.size()) + s;
}
// One metadata pair: key, value type id, value bytes.
inline std::string gguf_kv(const std::string& key, uint32_t type, const std::string& value) {
  return gguf_str(key) + le32(type) + value;
}
// One tensor info; `dims` in GGUF order (fastest first).
inline std::string gguf_tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t type,
                               uint64_t offset) {
  std::string s = gguf_str(name) + le32(static_cast<uint32_t>(dims.size()));
  for (const uint64_t d : dims) s += le64(d);
  return s + le32(type) + le64(offset);
}
// A whole file: the 24-byte prefix, `body` (metadata then tensor infos), zero padding to `alignment`, `data`.
inline std::string gguf_file_bytes(uint64_t n_tensors, uint64_t n_kv, const std::string& body,
                                   const std::string& data = {}, uint32_t version = 3,
                                   size_t alignment = 32) {
  std::string s = "GGUF" + le32(version) + le64(n_tensors) + le64(n_kv) + body;
  s.append((alignment - s.size() % alignment) % alignment, '\0');
  return s + data;
}

}  // namespace mlxd::test
