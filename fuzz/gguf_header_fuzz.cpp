// libFuzzer target for the GGUF header parser and validator. The input is a whole file; the seeds in
// fuzz/gguf_corpus are the golden files of tests/io. Whatever the parser accepts is checked against the
// promises the loader relies on; a broken one traps.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "io/gguf_header.h"
#include "mlxd/io/io_error.h"

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

void check_accepted(const mlxd::detail::gguf_header& h, std::span<const std::byte> file) {
  require(h.version == 2 || h.version == 3);
  require(std::has_single_bit(h.alignment) && h.data_offset % h.alignment == 0);
  std::vector<const mlxd::gguf_tensor_info*> nonempty;
  unsigned touched = 0;
  for (const auto& t : h.tensor_infos) {
    require(!t.dims.empty() && t.dims.size() <= 4 && t.shape.size() == t.dims.size());
    require(t.offset % h.alignment == 0 && t.type_name == mlxd::ggml_traits(t.type).name);
    if (t.nbytes == 0) continue;
    require(h.data_offset + t.offset + t.nbytes <= file.size());
    touched += static_cast<unsigned>(file[h.data_offset + t.offset]);
    touched += static_cast<unsigned>(file[h.data_offset + t.offset + t.nbytes - 1]);
    nonempty.push_back(&t);
  }
  std::sort(nonempty.begin(), nonempty.end(),
            [](const auto* a, const auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < nonempty.size(); ++i) {
    require(nonempty[i - 1]->offset + nonempty[i - 1]->nbytes <= nonempty[i]->offset);
  }
  for (const auto& [key, value] : h.metadata) {
    require(h.metadata.find(key) == &value);
    touched += static_cast<unsigned>(mlxd::describe(value).size());
  }
  require(touched != ~0u);  // keeps the reads alive
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  try {
    check_accepted(mlxd::detail::parse_gguf_header(file, size, "fuzz input"), file);
  } catch (const mlxd::io_error&) {
    // Rejecting malformed input is the expected outcome; anything else escaping is a bug libFuzzer reports.
  }
  return 0;
}
