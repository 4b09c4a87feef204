#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "io/gguf_header.h"
#include "io/mapped_file.h"
#include "io/posix_file.h"
#include "io/strict_json.h"
#include "mlxd/core/quantized.h"
#include "mlxd/io/gguf.h"

namespace mlxd {

namespace {

using detail::throw_gguf_error;

constexpr uint64_t first_header_read = uint64_t{1} << 20;

std::optional<dtype> plain_dtype(ggml_type t) {
  switch (t) {
    case ggml_type::f32:
      return dtype::f32;
    case ggml_type::f16:
      return dtype::f16;
    case ggml_type::bf16:
      return dtype::bf16;
    case ggml_type::i32:
      return dtype::i32;
    case ggml_type::i64:
      return dtype::i64;
    default:
      return std::nullopt;
  }
}

// The block-quantized types mlxd holds natively (same bytes as the file).
std::optional<dtype> quantized_dtype(ggml_type t) {
  switch (t) {
    case ggml_type::q8_0:
      return dtype::q8_0;
    case ggml_type::q4_0:
      return dtype::q4_0;
    case ggml_type::q4_k:
      return dtype::q4_k;
    case ggml_type::q6_k:
      return dtype::q6_k;
    default:
      return std::nullopt;
  }
}

// The header's size is known only once it is parsed, so read a prefix and grow it until the parser is done.
detail::gguf_header read_header(int fd, uint64_t size, std::string_view origin, std::string_view context) {
  std::vector<std::byte> prefix;
  uint64_t want = std::min(size, first_header_read);
  for (;;) {
    const size_t have = prefix.size();
    prefix.resize(want);
    detail::read_exact_at(fd, have, prefix.data() + have, want - have, context);
    try {
      return detail::parse_gguf_header(prefix, size, origin);
    } catch (const detail::gguf_need_more& more) {
      want = std::min(size, std::max<uint64_t>(more.needed, 2 * want));
    }
  }
}

array allocate(const gguf_tensor_info& t, dtype type, std::string_view origin) {
  try {
    return array::empty(t.shape, type);
  } catch (const std::invalid_argument& e) {
    throw_gguf_error(origin, "tensor " + detail::quote(t.name) + ": " + e.what());
  }
}

// `bytes` holds the tensor's t.nbytes bytes (at any alignment).
array decode(const gguf_tensor_info& t, const std::byte* bytes, bool keep_quantized,
             std::string_view origin) {
  const auto plain = plain_dtype(t.type);
  if (plain || keep_quantized) {
    array a = allocate(t, plain ? *plain : *quantized_dtype(t.type), origin);
    std::memcpy(a.mutable_data<std::byte>(), bytes, t.nbytes);
    return a;
  }
  std::vector<std::byte> aligned;  // the block structs need 2-byte alignment
  if (reinterpret_cast<uintptr_t>(bytes) % 2 != 0) {
    aligned.assign(bytes, bytes + t.nbytes);
    bytes = aligned.data();
  }
  array a = allocate(t, dtype::f32, origin);
  dequantize_blocks(*quantized_dtype(t.type), bytes, a.mutable_data<float>(), a.size());
  return a;
}

array read_tensor(int fd, const gguf_tensor_info& t, uint64_t data_offset, bool keep_quantized,
                  std::string_view origin, std::string_view context) {
  const auto plain = plain_dtype(t.type);
  if (plain || keep_quantized) {
    array a = allocate(t, plain ? *plain : *quantized_dtype(t.type), origin);
    detail::read_exact_at(fd, data_offset + t.offset, a.mutable_data<std::byte>(), t.nbytes, context);
    return a;
  }
  std::vector<std::byte> bytes(t.nbytes);
  detail::read_exact_at(fd, data_offset + t.offset, bytes.data(), bytes.size(), context);
  return decode(t, bytes.data(), false, origin);
}

array view_tensor(const gguf_tensor_info& t, const std::shared_ptr<const detail::mapped_file>& mapping,
                  uint64_t data_offset, bool keep_quantized, std::string_view origin) {
  const std::byte* bytes = mapping->bytes().data() + data_offset + t.offset;
  auto type = plain_dtype(t.type);
  if (!type && keep_quantized) type = quantized_dtype(t.type);
  // Quantized blocks hold 2-byte fields; plain elements need their own size.
  const size_t alignment = type && is_quantized(*type) ? 2 : (type ? size_of(*type) : 1);
  if (!type || t.nbytes == 0 || reinterpret_cast<uintptr_t>(bytes) % alignment != 0) {
    return decode(t, bytes, keep_quantized, origin);
  }
  // Arrays are never written through (see array.h), and the mapping is PROT_READ so a stray write faults.
  return array::wrap(const_cast<std::byte*>(bytes), t.shape, *type, mapping);
}

}  // namespace

gguf_file load_gguf(const std::filesystem::path& path, const gguf_load_options& options) {
  const std::string origin = path.string();
  const std::string context = "gguf: " + origin;
  const detail::unique_fd fd = detail::open_for_read(path, context);
  const uint64_t size = detail::file_size(fd.get(), context);
  std::shared_ptr<const detail::mapped_file> mapping;
  if (!options.copy && options.read_tensors && size > 0)
    mapping = detail::mapped_file::map(fd.get(), size, context);
  detail::gguf_header header = mapping ? detail::parse_gguf_header(mapping->bytes(), size, origin)
                                       : read_header(fd.get(), size, origin, context);

  gguf_file out{header.version,   std::move(header.metadata), std::move(header.tensor_infos),
                header.alignment, header.data_offset,         {}};
  if (!options.read_tensors) return out;
  const bool load_quantized = options.dequantize || options.keep_quantized;
  for (const auto& t : out.tensor_infos) {
    if (load_quantized && !plain_dtype(t.type) && !quantized_dtype(t.type)) {
      throw_gguf_error(origin, "tensor " + detail::quote(t.name) + " has type " + std::string(t.type_name) +
                                   ", which mlxd cannot load (it reads F32, F16, BF16, I32, I64, Q8_0, Q4_0, "
                                   "Q4_K and Q6_K)");
    }
  }
  for (const auto& t : out.tensor_infos) {
    if (!plain_dtype(t.type) && !load_quantized) continue;
    out.tensors.emplace(
        t.name, mapping ? view_tensor(t, mapping, out.data_offset, options.keep_quantized, origin)
                        : read_tensor(fd.get(), t, out.data_offset, options.keep_quantized, origin, context));
  }
  return out;
}

}  // namespace mlxd
