#include "io/safetensors_header.h"

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>

#include "io/strict_json.h"
#include "mlxd/io/io_error.h"

namespace mlxd::detail {

namespace {

struct format_dtype {
  std::string_view name;
  uint64_t bits;              // per element
  std::optional<dtype> type;  // the mlxd dtype with the same bytes, if any
};

constexpr std::array<format_dtype, 20> format_dtypes = {{
    {"BOOL", 8, dtype::boolean},  {"U8", 8, dtype::u8},         {"I8", 8, std::nullopt},
    {"F8_E5M2", 8, std::nullopt}, {"F8_E4M3", 8, std::nullopt}, {"F8_E8M0", 8, std::nullopt},
    {"I16", 16, std::nullopt},    {"U16", 16, std::nullopt},    {"F16", 16, dtype::f16},
    {"BF16", 16, dtype::bf16},    {"I32", 32, dtype::i32},      {"U32", 32, std::nullopt},
    {"F32", 32, dtype::f32},      {"F64", 64, std::nullopt},    {"I64", 64, dtype::i64},
    {"U64", 64, std::nullopt},    {"C64", 64, std::nullopt},    {"F4", 4, std::nullopt},
    {"F6_E2M3", 6, std::nullopt}, {"F6_E3M2", 6, std::nullopt},
}};

// The block-quantized dtypes (from dtype::q8_0 on) have no safetensors name.
constexpr bool names_every_plain_dtype_once() {
  for (int i = 0; i < n_dtypes; ++i) {
    int hits = 0;
    for (const auto& f : format_dtypes) hits += f.type == static_cast<dtype>(i) ? 1 : 0;
    if (hits != (i < static_cast<int>(dtype::q8_0) ? 1 : 0)) return false;
  }
  return true;
}
static_assert(names_every_plain_dtype_once(), "every plain mlxd dtype needs exactly one safetensors name");

// Valid headers nest 3 deep (header, entry, shape); a little slack tolerates unknown keys with small values.
constexpr int max_header_depth = 8;
constexpr uint64_t max_elements = std::numeric_limits<int64_t>::max();

const format_dtype* find_format_dtype(std::string_view name) {
  for (const auto& f : format_dtypes) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// The strings are built by appending: GCC 12 warns falsely (-Wrestrict) on `"literal" + std::string&&`.
std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string range_string(uint64_t begin, uint64_t end) {
  std::string s = "[";
  s.append(std::to_string(begin)).append(", ").append(std::to_string(end)).append("]");
  return s;
}

// A JSON value for an error message, cut short.
std::string brief(const nlohmann::json& v) {
  const std::string s = v.dump();
  return s.size() <= 40 ? s : s.substr(0, 40) + "...";
}

// A JSON integer in [0, max]; nullopt for anything else (floats, negatives, strings, ...).
std::optional<uint64_t> as_count(const nlohmann::json& v, uint64_t max) {
  uint64_t x = 0;
  if (v.is_number_unsigned()) {
    x = v.get<uint64_t>();
  } else if (v.is_number_integer() && v.get<int64_t>() >= 0) {  // "-0" parses as a signed integer
    x = static_cast<uint64_t>(v.get<int64_t>());
  } else {
    return std::nullopt;
  }
  if (x > max) return std::nullopt;
  return x;
}

safetensors_entry parse_entry(const std::string& name, const nlohmann::json& j, uint64_t data_size,
                              std::string_view origin) {
  const std::string where = "tensor " + quote(name) + ": ";
  auto fail = [&](const std::string& what) { throw_safetensors_error(origin, where + what); };
  if (!j.is_object()) fail("entry is not a JSON object");
  safetensors_entry e;
  e.name = name;

  const auto dtype_it = j.find("dtype");
  if (dtype_it == j.end()) fail("missing 'dtype'");
  if (!dtype_it->is_string()) fail("'dtype' is not a string");
  e.dtype_name = dtype_it->get<std::string>();
  const format_dtype* format = find_format_dtype(e.dtype_name);
  if (format == nullptr) fail("unknown dtype " + quote(e.dtype_name));
  e.type = format->type;

  const auto shape_it = j.find("shape");
  if (shape_it == j.end()) fail("missing 'shape'");
  if (!shape_it->is_array()) fail("'shape' is not an array");
  for (size_t i = 0; i < shape_it->size(); ++i) {
    const auto dim = as_count((*shape_it)[i], max_elements);
    if (!dim) {
      fail("shape dim " + std::to_string(i) + " is " + brief((*shape_it)[i]) +
           ", not an integer in [0, 2^63)");
    }
    e.shape.push_back(static_cast<int64_t>(*dim));
  }
  // Strides are products of the non-zero dims, so those must fit in int64 even when the tensor is empty.
  uint64_t nonzero_product = 1;
  bool has_zero_dim = false;
  for (const int64_t d : e.shape) {
    has_zero_dim = has_zero_dim || d == 0;
    if (d != 0 && (__builtin_mul_overflow(nonzero_product, static_cast<uint64_t>(d), &nonzero_product) ||
                   nonzero_product > max_elements)) {
      fail("shape " + shape_string(e.shape) + " has too many elements");
    }
  }
  const uint64_t n_elements = has_zero_dim ? 0 : nonzero_product;

  const auto offsets_it = j.find("data_offsets");
  if (offsets_it == j.end()) fail("missing 'data_offsets'");
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    fail("'data_offsets' " + brief(*offsets_it) + " is not a [begin, end] pair");
  }
  const auto begin = as_count((*offsets_it)[0], std::numeric_limits<uint64_t>::max());
  const auto end = as_count((*offsets_it)[1], std::numeric_limits<uint64_t>::max());
  if (!begin || !end) fail("'data_offsets' " + brief(*offsets_it) + " are not non-negative integers");
  e.begin = *begin;
  e.end = *end;
  const std::string offsets = "data_offsets " + range_string(e.begin, e.end);
  if (e.begin > e.end) fail(offsets + " have begin after end");
  if (e.end > data_size) {
    fail(offsets + " run past the end of the " + std::to_string(data_size) + "-byte data section");
  }

  uint64_t n_bits = 0;
  if (__builtin_mul_overflow(n_elements, format->bits, &n_bits)) {
    fail("shape " + shape_string(e.shape) + " has too many elements");
  }
  const std::string shape_of = "shape " + shape_string(e.shape) + " of " + e.dtype_name;
  if (n_bits % 8 != 0) fail(shape_of + " is not a whole number of bytes");
  if (n_bits / 8 != e.end - e.begin) {
    fail(offsets + " hold " + std::to_string(e.end - e.begin) + " bytes but " + shape_of + " needs " +
         std::to_string(n_bits / 8));
  }
  return e;
}

std::map<std::string, std::string> parse_metadata(const nlohmann::json& j, std::string_view origin) {
  if (!j.is_object()) throw_safetensors_error(origin, "'__metadata__' is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) {
      throw_safetensors_error(origin, "'__metadata__' value of " + quote(key) + " is not a string");
    }
    metadata.emplace(key, value.get<std::string>());
  }
  return metadata;
}

// Two tensors overlap when they share a byte; empty ranges share none.
void check_no_overlap(const std::vector<safetensors_entry>& tensors, std::string_view origin) {
  std::vector<const safetensors_entry*> by_begin;
  for (const auto& t : tensors) {
    if (t.end > t.begin) by_begin.push_back(&t);
  }
  std::sort(by_begin.begin(), by_begin.end(), [](const safetensors_entry* a, const safetensors_entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_begin.size(); ++i) {
    const safetensors_entry& prev = *by_begin[i - 1];
    const safetensors_entry& next = *by_begin[i];
    if (next.begin < prev.end) {
      throw_safetensors_error(origin, "tensor " + quote(prev.name) + " bytes " +
                                          range_string(prev.begin, prev.end) + " overlap tensor " +
                                          quote(next.name) + " bytes " + range_string(next.begin, next.end));
    }
  }
}

}  // namespace

void throw_safetensors_error(std::string_view origin, std::string_view what) {
  std::string message = "safetensors: ";
  message.append(origin).append(": ").append(what);
  throw io_error(message);
}

std::string_view safetensors_dtype_name(dtype t) {
  for (const auto& f : format_dtypes) {
    if (f.type == t) return f.name;
  }
  throw std::invalid_argument("[safetensors_dtype_name] invalid dtype " +
                              std::to_string(static_cast<int>(t)));
}

uint64_t parse_safetensors_header_length(std::span<const std::byte> prefix, uint64_t file_size,
                                         std::string_view origin) {
  if (file_size < 8) {
    throw_safetensors_error(
        origin, "file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length");
  }
  if (prefix.size() < 8)
    throw std::invalid_argument("[parse_safetensors_header_length] needs the first 8 bytes");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint64_t>(prefix[static_cast<size_t>(i)]);
  if (n > max_safetensors_header_bytes) {
    throw_safetensors_error(origin, "header length " + std::to_string(n) + " exceeds the " +
                                        std::to_string(max_safetensors_header_bytes) + "-byte limit");
  }
  if (n > file_size - 8) {
    throw_safetensors_error(origin, "header length " + std::to_string(n) +
                                        " runs past the end of the file (" + std::to_string(file_size) +
                                        " bytes)");
  }
  return n;
}

safetensors_header parse_safetensors_header_json(std::string_view json, uint64_t data_size,
                                                 std::string_view origin) {
  // The spec requires '{' first; checking it also makes any JSON that parses an object.
  if (json.empty() || json.front() != '{') {
    throw_safetensors_error(origin, "header is not a JSON object (it must start with '{')");
  }
  std::string error;
  const auto root = parse_strict_json(json, max_header_depth, error);
  if (!root) throw_safetensors_error(origin, "header is not valid JSON: " + error);

  safetensors_header header;
  header.data_start = 8 + json.size();
  header.data_size = data_size;
  for (const auto& [key, value] : root->items()) {
    if (key == "__metadata__") {
      header.metadata = parse_metadata(value, origin);
    } else {
      header.tensors.push_back(parse_entry(key, value, data_size, origin));
    }
  }
  check_no_overlap(header.tensors, origin);
  return header;
}

safetensors_header parse_safetensors_header(std::span<const std::byte> file, std::string_view origin) {
  const uint64_t n = parse_safetensors_header_length(file, file.size(), origin);
  const std::string_view json(reinterpret_cast<const char*>(file.data()) + 8, n);
  return parse_safetensors_header_json(json, file.size() - 8 - n, origin);
}

}  // namespace mlxd::detail
