#include "io/gguf_header.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "io/strict_json.h"

namespace mlxd::detail {

namespace {

constexpr uint64_t max_key_bytes = 65535;
constexpr uint64_t max_tensor_name_bytes = 64;
constexpr uint32_t max_dims = 4;
// The fewest bytes a metadata pair (key length, type, 1-byte value) and a tensor info (name length, n_dims,
// one dim, type, offset) can take, to reject absurd counts before reserving anything.
constexpr uint64_t min_kv_bytes = 8 + 4 + 1;
constexpr uint64_t min_tensor_info_bytes = 8 + 4 + 8 + 4 + 8;

// Reads the header byte by byte from `prefix`, checking every length against the whole file first.
class cursor {
 public:
  cursor(std::span<const std::byte> prefix, uint64_t file_size, std::string_view origin)
      : prefix_(prefix), file_size_(file_size), origin_(origin) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return file_size_ - pos_; }
  std::string_view origin() const { return origin_; }

  const std::byte* take(uint64_t n, std::string_view what) {
    if (n > remaining()) {
      throw_gguf_error(origin_, std::string(what) + " at byte " + std::to_string(pos_) +
                                    " runs past the end of the file (" + std::to_string(file_size_) +
                                    " bytes)");
    }
    if (pos_ + n > prefix_.size()) throw gguf_need_more{pos_ + n};
    const std::byte* p = prefix_.data() + pos_;
    pos_ += n;
    return p;
  }
  template <class T>
  T read(std::string_view what) {
    const std::byte* p = take(sizeof(T), what);
    std::make_unsigned_t<std::conditional_t<std::is_floating_point_v<T>,
                                            std::conditional_t<sizeof(T) == 4, int32_t, int64_t>, T>>
        bits = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      bits |= static_cast<decltype(bits)>(static_cast<uint64_t>(p[i]) << (8 * i));
    return std::bit_cast<T>(bits);
  }
  std::string read_string(std::string_view what, uint64_t max_bytes = std::numeric_limits<uint64_t>::max()) {
    const auto n = read<uint64_t>(what);
    if (n > max_bytes) {
      throw_gguf_error(origin_, std::string(what) + " of " + std::to_string(n) + " bytes exceeds the " +
                                    std::to_string(max_bytes) + "-byte limit");
    }
    if (n > remaining()) {
      throw_gguf_error(origin_, std::string(what) + " length " + std::to_string(n) + " at byte " +
                                    std::to_string(pos_ - 8) + " runs past the end of the file (" +
                                    std::to_string(file_size_) + " bytes)");
    }
    const std::byte* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), n);
  }

 private:
  std::span<const std::byte> prefix_;
  uint64_t file_size_;
  std::string_view origin_;
  uint64_t pos_ = 0;
};

uint64_t min_value_bytes(gguf_type t) {
  switch (t) {
    case gguf_type::u8:
    case gguf_type::i8:
    case gguf_type::boolean:
      return 1;
    case gguf_type::u16:
    case gguf_type::i16:
      return 2;
    case gguf_type::u32:
    case gguf_type::i32:
    case gguf_type::f32:
      return 4;
    case gguf_type::string:
      return 8;
    case gguf_type::array:
      return 12;
    default:
      return 8;
  }
}

gguf_type read_type(cursor& c, const std::string& where, std::string_view what) {
  const auto id = c.read<uint32_t>(where + ": " + std::string(what));
  if (id >= static_cast<uint32_t>(gguf_type::count)) {
    throw_gguf_error(c.origin(), where + ": unknown " + std::string(what) + " " + std::to_string(id));
  }
  return static_cast<gguf_type>(id);
}

// `depth` counts the arrays around this value.
gguf_value read_value(cursor& c, gguf_type t, int depth, const std::string& where) {
  switch (t) {
    case gguf_type::u8:
      return c.read<uint8_t>(where);
    case gguf_type::i8:
      return c.read<int8_t>(where);
    case gguf_type::u16:
      return c.read<uint16_t>(where);
    case gguf_type::i16:
      return c.read<int16_t>(where);
    case gguf_type::u32:
      return c.read<uint32_t>(where);
    case gguf_type::i32:
      return c.read<int32_t>(where);
    case gguf_type::f32:
      return c.read<float>(where);
    case gguf_type::u64:
      return c.read<uint64_t>(where);
    case gguf_type::i64:
      return c.read<int64_t>(where);
    case gguf_type::f64:
      return c.read<double>(where);
    case gguf_type::string:
      return c.read_string(where + ": string");
    case gguf_type::boolean: {
      const auto b = c.read<uint8_t>(where);
      if (b > 1) throw_gguf_error(c.origin(), where + ": bool byte is " + std::to_string(b) + ", not 0 or 1");
      return b == 1;
    }
    case gguf_type::array: {
      if (depth + 1 > max_gguf_array_depth) {
        throw_gguf_error(c.origin(), where + ": arrays nested more than " +
                                         std::to_string(max_gguf_array_depth) + " deep");
      }
      gguf_array a{read_type(c, where, "array element type"), {}};
      const auto n = c.read<uint64_t>(where + ": array length");
      if (n > c.remaining() / min_value_bytes(a.type)) {
        throw_gguf_error(c.origin(), where + ": array of " + std::to_string(n) + " " +
                                         std::string(gguf_type_name(a.type)) +
                                         " elements cannot fit in the " + std::to_string(c.remaining()) +
                                         " bytes left in the file");
      }
      a.values.reserve(n);
      for (uint64_t i = 0; i < n; ++i) a.values.push_back(read_value(c, a.type, depth + 1, where));
      return a;
    }
    case gguf_type::count:
      break;
  }
  throw_gguf_error(c.origin(), where + ": unknown value type");
}

void read_magic(cursor& c) {
  const std::byte* magic = c.take(4, "magic");
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    throw_gguf_error(c.origin(), "bad magic " +
                                     quote(std::string_view(reinterpret_cast<const char*>(magic), 4)) +
                                     ", not a GGUF file");
  }
}

gguf_tensor_info read_tensor_info(cursor& c) {
  gguf_tensor_info t;
  t.name = c.read_string("tensor name", max_tensor_name_bytes);
  const std::string where = "tensor " + quote(t.name);
  const auto n_dims = c.read<uint32_t>(where + ": n_dims");
  if (n_dims == 0 || n_dims > max_dims) {
    throw_gguf_error(c.origin(), where + ": n_dims is " + std::to_string(n_dims) + ", not 1 to 4");
  }
  uint64_t n_elements = 1;
  for (uint32_t i = 0; i < n_dims; ++i) {
    const auto d = c.read<uint64_t>(where + ": dimension");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(n_elements, d, &n_elements) ||
        n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw_gguf_error(c.origin(), where + ": element count overflows int64");
    }
    t.dims.push_back(d);
  }
  t.shape.assign(t.dims.rbegin(), t.dims.rend());
  const auto type_id = c.read<uint32_t>(where + ": type");
  const ggml_type_traits* traits = find_ggml_type(type_id);
  if (!traits) throw_gguf_error(c.origin(), where + ": unknown ggml type id " + std::to_string(type_id));
  t.type = static_cast<ggml_type>(type_id);
  t.type_name = traits->name;
  if (t.dims[0] % traits->block_size != 0) {
    throw_gguf_error(c.origin(), where + ": first dimension " + std::to_string(t.dims[0]) +
                                     " is not a multiple of the " + std::string(traits->name) +
                                     " block size " + std::to_string(traits->block_size));
  }
  if (__builtin_mul_overflow(n_elements / traits->block_size, uint64_t{traits->type_size}, &t.nbytes)) {
    throw_gguf_error(c.origin(), where + ": byte size overflows");
  }
  t.offset = c.read<uint64_t>(where + ": offset");
  return t;
}

uint64_t read_alignment(const gguf_metadata& metadata, std::string_view origin) {
  const gguf_value* v = metadata.find("general.alignment");
  if (!v) return 32;
  if (v->type() != gguf_type::u32) {
    throw_gguf_error(origin, "general.alignment is " + std::string(gguf_type_name(v->type())) + ", not u32");
  }
  const uint32_t a = v->as<uint32_t>();
  if (!std::has_single_bit(a)) {
    throw_gguf_error(origin, "general.alignment " + std::to_string(a) + " is not a power of two");
  }
  return a;
}

void check_data_ranges(const gguf_header& h, uint64_t file_size, std::string_view origin) {
  const uint64_t data_size = file_size > h.data_offset ? file_size - h.data_offset : 0;
  std::vector<const gguf_tensor_info*> nonempty;
  for (const auto& t : h.tensor_infos) {
    const std::string where = "tensor " + quote(t.name);
    if (t.offset % h.alignment != 0) {
      throw_gguf_error(origin, where + ": offset " + std::to_string(t.offset) +
                                   " is not a multiple of the alignment " + std::to_string(h.alignment));
    }
    if (t.nbytes == 0) continue;
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      throw_gguf_error(origin, where + ": data [" + std::to_string(t.offset) + ", +" +
                                   std::to_string(t.nbytes) + ") lies outside the data section (" +
                                   std::to_string(data_size) + " bytes)");
    }
    nonempty.push_back(&t);
  }
  std::sort(nonempty.begin(), nonempty.end(),
            [](const auto* a, const auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < nonempty.size(); ++i) {
    if (nonempty[i - 1]->offset + nonempty[i - 1]->nbytes > nonempty[i]->offset) {
      throw_gguf_error(origin, "tensors " + quote(nonempty[i - 1]->name) + " and " +
                                   quote(nonempty[i]->name) + " overlap");
    }
  }
}

}  // namespace

void throw_gguf_error(std::string_view origin, std::string_view what) {
  std::string message = "gguf: ";
  message.append(origin).append(": ").append(what);
  throw io_error(message);
}

gguf_header parse_gguf_header(std::span<const std::byte> prefix, uint64_t file_size,
                              std::string_view origin) {
  cursor c(prefix.first(std::min<uint64_t>(prefix.size(), file_size)), file_size, origin);
  gguf_header h;
  read_magic(c);
  h.version = c.read<uint32_t>("version");
  if (h.version == 1)
    throw_gguf_error(origin, "GGUF version 1 is not supported (mlxd reads versions 2 and 3)");
  if (h.version != 2 && h.version != 3) {
    const bool big_endian = (h.version & 0xffffu) == 0;
    throw_gguf_error(origin, "unsupported GGUF version " + std::to_string(h.version) +
                                 (big_endian ? " (a big-endian file?)" : "") +
                                 " (mlxd reads versions 2 and 3)");
  }
  const auto n_tensors = c.read<uint64_t>("tensor count");
  const auto n_kv = c.read<uint64_t>("metadata count");
  if (n_kv > c.remaining() / min_kv_bytes ||
      n_tensors > (c.remaining() - n_kv * min_kv_bytes) / min_tensor_info_bytes) {
    throw_gguf_error(origin, "header claims " + std::to_string(n_tensors) + " tensors and " +
                                 std::to_string(n_kv) + " metadata pairs, more than the " +
                                 std::to_string(c.remaining()) + " bytes left in the file can hold");
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("metadata key", max_key_bytes);
    const std::string where = "metadata key " + quote(key);
    const gguf_type t = read_type(c, where, "value type");
    gguf_value v = read_value(c, t, 0, where);
    if (!h.metadata.insert(std::move(key), std::move(v))) throw_gguf_error(origin, "duplicate " + where);
  }
  h.tensor_infos.reserve(n_tensors);
  std::vector<std::string_view> names;
  for (uint64_t i = 0; i < n_tensors; ++i) h.tensor_infos.push_back(read_tensor_info(c));
  for (const auto& t : h.tensor_infos) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  if (const auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end()) {
    throw_gguf_error(origin, "duplicate tensor name " + quote(*dup));
  }
  h.alignment = read_alignment(h.metadata, origin);
  h.data_offset = (c.pos() + h.alignment - 1) / h.alignment * h.alignment;
  check_data_ranges(h, file_size, origin);
  return h;
}

}  // namespace mlxd::detail
