// Reading and writing GGUF files, versions 2 and 3
// (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
//
// File layout, all little-endian: "GGUF", u32 version, u64 tensor count, u64 metadata count; the metadata
// key/value pairs (a string is a u64 byte length and the bytes); the tensor infos (name, u32 n_dims, u64 dims
// with the fastest-varying first, u32 ggml type, u64 offset); zero padding to the alignment; the data
// section. Tensor offsets are relative to the data section and multiples of the alignment
// (`general.alignment`, a u32 power of two, default 32).
//
// Readers validate every field before using it and throw mlxd::io_error whose message starts with
// "gguf: <file>: " and names the fault; no input file can make them crash or read out of bounds. Rejected:
// a bad magic, versions other than 2 and 3 (big-endian files included), counts or lengths that cannot fit in
// the rest of the file, unknown value or tensor types, bool bytes other than 0 and 1, arrays nested more than
// `max_gguf_array_depth` deep, duplicate metadata keys or tensor names, keys over 65535 bytes, tensor names
// over 64 bytes, n_dims outside 1..4, element counts that overflow int64, a first dimension that is not a
// multiple of the type's block size, misaligned offsets, tensors outside the file, and overlapping tensors.
// Unused bytes between tensors are accepted.
//
// Functions here are thread-safe with respect to each other as long as they touch different paths.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/io/io_error.h"

namespace mlxd {

// Metadata value types; the numbers are the file's type ids.
enum class gguf_type : uint32_t {
  u8,
  i8,
  u16,
  i16,
  u32,
  i32,
  f32,
  boolean,
  string,
  array,
  u64,
  i64,
  f64,
  count
};
static_assert(static_cast<int>(gguf_type::count) == 13, "update gguf_type_name and the value variant");
// "u8", "i8", ..., "bool", "string", "array", ..., "f64".
std::string_view gguf_type_name(gguf_type t);

inline constexpr int max_gguf_array_depth = 8;  // an array of scalars has depth 1

class gguf_value;
// An array value: the element type (kept even when empty) and the elements, all of that type.
struct gguf_array {
  gguf_type type = gguf_type::u8;
  std::vector<gguf_value> values;
  bool operator==(const gguf_array&) const;
};

// One typed metadata value. The variant's alternatives are in type-id order, so index() == type id.
class gguf_value {
 public:
  using variant = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, gguf_array, uint64_t, int64_t, double>;

  gguf_value() = default;  // u8 0
  // Implicit from any alternative, e.g. gguf_value(uint32_t{32}) or gguf_value("llama"), which is a string.
  template <class T>
  requires(!std::is_same_v<std::remove_cvref_t<T>, gguf_value> && std::is_constructible_v<variant, T> &&
           !std::is_convertible_v<T, std::string_view>) gguf_value(T v)
      : v_(std::move(v)) {}                               // NOLINT(google-explicit-constructor)
  gguf_value(std::string s) : v_(std::move(s)) {}         // NOLINT(google-explicit-constructor)
  gguf_value(std::string_view s) : v_(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  gguf_value(const char* s) : v_(std::string(s)) {}       // NOLINT(google-explicit-constructor)
  // An array of `type` from plain values, e.g. gguf_value::array_of<std::string>(tokens).
  template <class T>
  static gguf_value array_of(gguf_type type, const std::vector<T>& values) {
    gguf_array a{type, {}};
    a.values.reserve(values.size());
    for (const T& v : values) a.values.emplace_back(v);
    return gguf_value(std::move(a));
  }

  gguf_type type() const { return static_cast<gguf_type>(v_.index()); }
  const variant& value() const { return v_; }
  // The value as T (one of the variant's types); throws io_error naming both types on a mismatch.
  template <class T>
  const T& as() const {
    if (const T* p = std::get_if<T>(&v_)) return *p;
    throw_type_mismatch(static_cast<gguf_type>(variant(std::in_place_type<T>).index()));
  }
  // For arrays: the elements as T, checking the element type; throws io_error on a mismatch.
  template <class T>
  std::vector<T> as_vector_of() const {
    const auto& a = as<gguf_array>();
    std::vector<T> out;
    out.reserve(a.values.size());
    for (const gguf_value& v : a.values) out.push_back(v.as<T>());
    return out;
  }
  bool operator==(const gguf_value&) const = default;

 private:
  [[noreturn]] void throw_type_mismatch(gguf_type wanted) const;
  variant v_;
};

// Metadata in file order, with lookup by key. Keys are unique.
class gguf_metadata {
 public:
  using entry = std::pair<std::string, gguf_value>;
  // Appends; returns false (and changes nothing) if `key` is already present.
  bool insert(std::string key, gguf_value value);
  // Replaces the value of an existing key or appends a new one.
  void set(const std::string& key, gguf_value value);
  const gguf_value* find(std::string_view key) const;  // nullptr when absent
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  // The value of `key`; throws io_error when it is absent or (for the typed getters) of another type.
  const gguf_value& at(std::string_view key) const;
  const std::string& get_string(std::string_view key) const { return at(key).as<std::string>(); }
  uint32_t get_u32(std::string_view key) const { return at(key).as<uint32_t>(); }
  int32_t get_i32(std::string_view key) const { return at(key).as<int32_t>(); }
  uint64_t get_u64(std::string_view key) const { return at(key).as<uint64_t>(); }
  float get_f32(std::string_view key) const { return at(key).as<float>(); }
  bool get_bool(std::string_view key) const { return at(key).as<bool>(); }
  const gguf_array& get_array(std::string_view key) const { return at(key).as<gguf_array>(); }
  std::vector<std::string> get_array_of_strings(std::string_view key) const {
    return at(key).as_vector_of<std::string>();
  }

  const std::vector<entry>& entries() const { return entries_; }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  size_t size() const { return entries_.size(); }
  bool operator==(const gguf_metadata& o) const { return entries_ == o.entries_; }

 private:
  std::vector<entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// A one-line rendering for listings: scalars as values, strings quoted (long ones cut), arrays summarised as
// "array<string>[32000]" followed by their first few elements.
std::string describe(const gguf_value& v);

// ggml tensor types; the numbers are the file's type ids. Ids 4, 5 and 31-33, 36-38 were removed from ggml
// and are rejected like unknown ids.
enum class ggml_type : uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq2_xxs = 16,
  iq2_xs = 17,
  iq3_xxs = 18,
  iq1_s = 19,
  iq4_nl = 20,
  iq3_s = 21,
  iq2_s = 22,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  iq1_m = 29,
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
  mxfp4 = 39,
  count = 40
};

// Elements per block and bytes per block of a ggml type (1 and the element size for plain types).
struct ggml_type_traits {
  std::string_view name;  // as llama.cpp spells it: "F32", "Q4_0", "Q6_K", "IQ2_XXS", ...
  uint32_t block_size = 0;
  uint32_t type_size = 0;
};
// nullptr for an id that is not (or no longer) a ggml type.
const ggml_type_traits* find_ggml_type(uint32_t id);
const ggml_type_traits& ggml_traits(ggml_type t);

struct gguf_tensor_info {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] varies fastest
  shape_t shape;               // the row-major mlxd shape: dims reversed
  ggml_type type = ggml_type::f32;
  std::string_view type_name;  // e.g. "Q8_0"
  uint64_t offset = 0;         // from the start of the data section
  uint64_t nbytes = 0;
};

struct gguf_file {
  uint32_t version = 3;
  gguf_metadata metadata;
  std::vector<gguf_tensor_info> tensor_infos;  // file order
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // file offset of the data section
  // The loaded tensors by name (see gguf_load_options); every info of a loaded type has an entry.
  std::map<std::string, array> tensors;
};

struct gguf_load_options {
  // false: only the header is read; `tensors` stays empty.
  bool read_tensors = true;
  // F32, F16, BF16, I32 and I64 tensors always load as f32, f16, bf16, i32, i64 arrays. Q8_0, Q4_0, Q4_K and
  // Q6_K tensors load as set here; when either option is true, a tensor of any other type throws io_error
  // naming it. With both false, tensors of other types are listed in tensor_infos but not loaded.
  // dequantize: Q8_0, Q4_0, Q4_K and Q6_K tensors are dequantized to f32 arrays.
  bool dequantize = false;
  // keep_quantized (wins over dequantize): they load as q8_0, q4_0, q4_k and q6_k arrays holding the file's
  // bytes unchanged.
  bool keep_quantized = false;
  // As in safetensors_load_options: true reads into memory the process owns (the default); false maps the
  // file and makes plain and kept-quantized tensors zero-copy views of it (copied when not aligned to their
  // element size, or to 2 bytes for quantized blocks). Dequantized tensors are always owned.
  bool copy = true;
};

// Reads the GGUF file at `path`. Throws io_error when it cannot be read or is malformed.
gguf_file load_gguf(const std::filesystem::path& path, const gguf_load_options& options = {});

// Writes a GGUF v3 file holding `metadata` (in its order) and `tensors` (f32, f16, bf16, i32, i64, q8_0,
// q4_0, q4_k or q6_k arrays of 0 to 4 dimensions, any layout; in name order, each at an aligned offset; a 0-d
// array is written with dims {1}; quantized arrays as their blocks, with the ggml type of their dtype). The
// alignment is metadata's "general.alignment" (a u32 power of two) or 32. Atomic, like save_safetensors.
// Throws std::invalid_argument before writing anything for another dtype, more than 4 dimensions, a tensor
// name over 64 bytes, a key over 65535 bytes or a bad general.alignment; io_error when writing fails.
void save_gguf(const std::filesystem::path& path, const gguf_metadata& metadata,
               const std::map<std::string, array>& tensors);

}  // namespace mlxd
