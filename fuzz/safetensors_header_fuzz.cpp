// libFuzzer target for the safetensors header parser and validator.
//
// Input starting with '{' is header JSON: the harness wraps it into a file (length prefix, the text, 256 data
// bytes), so mutations of the JSON keep the prefix consistent. Any other input is used as a whole file.
// Whatever the parser accepts is checked against the promises the loader relies on; a broken one traps.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "io/safetensors_header.h"
#include "mlxd/io/io_error.h"

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

std::vector<std::byte> wrap_json(const uint8_t* data, size_t size) {
  std::vector<std::byte> file(8 + size + 256, std::byte{0x5a});
  for (size_t i = 0; i < 8; ++i) file[i] = static_cast<std::byte>(static_cast<uint64_t>(size) >> (8 * i));
  std::copy_n(reinterpret_cast<const std::byte*>(data), size, file.begin() + 8);
  return file;
}

void check_accepted(const mlxd::detail::safetensors_header& header, std::span<const std::byte> file) {
  require(header.data_start >= 8 && header.data_start + header.data_size == file.size());
  std::vector<const mlxd::detail::safetensors_entry*> nonempty;
  unsigned touched = 0;
  for (const auto& t : header.tensors) {
    require(t.begin <= t.end && t.end <= header.data_size);
    uint64_t n_elements = 1;
    for (const int64_t d : t.shape) {
      require(d >= 0);
      require(!__builtin_mul_overflow(n_elements, static_cast<uint64_t>(d), &n_elements));
    }
    if (t.type) require(n_elements * mlxd::size_of(*t.type) == t.end - t.begin);
    if (t.end > t.begin) {
      nonempty.push_back(&t);
      // Touch both ends so AddressSanitizer sees any range that escapes the buffer.
      touched += static_cast<unsigned>(file[header.data_start + t.begin]);
      touched += static_cast<unsigned>(file[header.data_start + t.end - 1]);
    }
  }
  std::sort(nonempty.begin(), nonempty.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < nonempty.size(); ++i) require(nonempty[i - 1]->end <= nonempty[i]->begin);
  require(touched != ~0u);  // keeps the reads alive
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::byte> wrapped;
  std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  if (size > 0 && data[0] == '{') {
    wrapped = wrap_json(data, size);
    file = wrapped;
  }
  try {
    check_accepted(mlxd::detail::parse_safetensors_header(file, "fuzz input"), file);
  } catch (const mlxd::io_error&) {
    // Rejecting malformed input is the expected outcome; anything else escaping is a bug libFuzzer reports.
  }
  return 0;
}
