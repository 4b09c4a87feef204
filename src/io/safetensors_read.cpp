#include <array>
#include <cstring>
#include <stdexcept>

#include "io/mapped_file.h"
#include "io/posix_file.h"
#include "io/safetensors_header.h"
#include "io/strict_json.h"
#include "mlxd/io/safetensors.h"

namespace mlxd {

namespace {

using detail::safetensors_entry;
using detail::throw_safetensors_error;

detail::safetensors_header read_header(int fd, uint64_t file_size, std::string_view origin,
                                       std::string_view context) {
  std::array<std::byte, 8> prefix{};
  if (file_size >= prefix.size()) detail::read_exact_at(fd, 0, prefix.data(), prefix.size(), context);
  const uint64_t n = detail::parse_safetensors_header_length(prefix, file_size, origin);
  std::string json(n, '\0');
  detail::read_exact_at(fd, 8, json.data(), n, context);
  return detail::parse_safetensors_header_json(json, file_size - 8 - n, origin);
}

// With u32_as_bytes, U32 entries become U8 entries over the same byte range.
void check_supported(detail::safetensors_header& header, std::string_view origin,
                     const safetensors_load_options& options) {
  for (auto& t : header.tensors) {
    if (!t.type && options.u32_as_bytes && t.dtype_name == "U32") {
      t.type = dtype::u8;
      if (t.shape.empty()) t.shape.push_back(1);
      // Only an empty tensor (a zero dimension elsewhere) can have a last dimension near the int64 limit.
      if (__builtin_mul_overflow(t.shape.back(), int64_t{4}, &t.shape.back())) {
        throw_safetensors_error(origin, "tensor " + detail::quote(t.name) + ": U32 dimension too large");
      }
    }
    if (!t.type) {
      throw_safetensors_error(origin, "unsupported dtype " + t.dtype_name + " for tensor " +
                                          detail::quote(t.name) +
                                          " (mlxd reads F32, F16, BF16, I32, I64, U8 and BOOL)");
    }
  }
}

// mlxd kernels read BOOL elements as C++ bool, for which any byte but 0 and 1 is undefined behaviour.
void check_bool_bytes(const safetensors_entry& t, const std::byte* bytes, std::string_view origin) {
  if (t.type != dtype::boolean) return;
  for (uint64_t i = 0; i < t.end - t.begin; ++i) {
    const auto b = static_cast<unsigned>(bytes[i]);
    if (b > 1) {
      throw_safetensors_error(origin, "tensor " + detail::quote(t.name) + ": BOOL element " +
                                          std::to_string(i) + " is byte " + std::to_string(b) +
                                          ", not 0 or 1");
    }
  }
}

// The header validated the byte count against the format's element sizes; the array must agree with it.
const array& check_bytes_match(const array& a, const safetensors_entry& t) {
  if (a.nbytes() != t.end - t.begin) {
    throw std::logic_error("[load_safetensors] tensor " + detail::quote(t.name) + " of " + t.dtype_name +
                           " maps to " + a.to_string() + " of " + std::to_string(a.nbytes()) + " bytes");
  }
  return a;
}

array allocate(const safetensors_entry& t, std::string_view origin) {
  try {
    return check_bytes_match(array::empty(t.shape, *t.type), t);
  } catch (const std::invalid_argument& e) {
    throw_safetensors_error(origin, "tensor " + detail::quote(t.name) + ": " + e.what());
  }
}

array read_tensor(int fd, const safetensors_entry& t, uint64_t data_start, std::string_view origin,
                  std::string_view context) {
  array a = allocate(t, origin);
  detail::read_exact_at(fd, data_start + t.begin, a.mutable_data<std::byte>(), a.nbytes(), context);
  check_bool_bytes(t, a.data<std::byte>(), origin);
  return a;
}

array view_tensor(const safetensors_entry& t, const std::shared_ptr<const detail::mapped_file>& mapping,
                  uint64_t data_start, std::string_view origin) {
  const std::byte* bytes = mapping->bytes().data() + data_start + t.begin;
  check_bool_bytes(t, bytes, origin);
  if (reinterpret_cast<uintptr_t>(bytes) % size_of(*t.type) != 0) {
    array a = allocate(t, origin);
    std::memcpy(a.mutable_data<std::byte>(), bytes, a.nbytes());
    return a;
  }
  // Arrays are never written through (see array.h), and the mapping is PROT_READ so a stray write faults.
  return check_bytes_match(array::wrap(const_cast<std::byte*>(bytes), t.shape, *t.type, mapping), t);
}

}  // namespace

safetensors_file load_safetensors(const std::filesystem::path& path,
                                  const safetensors_load_options& options) {
  const std::string origin = path.string();
  const std::string context = "safetensors: " + origin;
  const detail::unique_fd fd = detail::open_for_read(path, context);
  const uint64_t size = detail::file_size(fd.get(), context);
  detail::safetensors_header header = read_header(fd.get(), size, origin, context);
  check_supported(header, origin, options);

  std::shared_ptr<const detail::mapped_file> mapping;
  if (!options.copy && header.data_size > 0) mapping = detail::mapped_file::map(fd.get(), size, context);
  safetensors_file out;
  out.metadata = std::move(header.metadata);
  for (const auto& t : header.tensors) {
    out.tensors.emplace(t.name, mapping ? view_tensor(t, mapping, header.data_start, origin)
                                        : read_tensor(fd.get(), t, header.data_start, origin, context));
  }
  return out;
}

}  // namespace mlxd
