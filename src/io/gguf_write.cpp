#include <bit>
#include <stdexcept>

#include "io/atomic_file.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/gguf.h"

namespace mlxd {

namespace {

[[noreturn]] void misuse(const std::string& what) {
  throw std::invalid_argument("[save_gguf] " + what);
}

ggml_type ggml_type_of(const std::string& name, dtype t) {
  switch (t) {
    case dtype::f32:
      return ggml_type::f32;
    case dtype::f16:
      return ggml_type::f16;
    case dtype::bf16:
      return ggml_type::bf16;
    case dtype::i32:
      return ggml_type::i32;
    case dtype::i64:
      return ggml_type::i64;
    case dtype::q8_0:
      return ggml_type::q8_0;
    case dtype::q4_0:
      return ggml_type::q4_0;
    case dtype::q4_k:
      return ggml_type::q4_k;
    case dtype::q6_k:
      return ggml_type::q6_k;
    default:
      misuse("tensor '" + name + "' is " + std::string(mlxd::name(t)) +
             "; GGUF files hold f32, f16, bf16, i32, i64, q8_0, q4_0, q4_k, q6_k");
  }
}

// The header bytes, little-endian.
class header_writer {
 public:
  template <class T>
  void put(T v) {
    const auto bits = std::bit_cast<
        std::conditional_t<sizeof(T) == 1, uint8_t,
                           std::conditional_t<sizeof(T) == 2, uint16_t,
                                              std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>>(v);
    for (size_t i = 0; i < sizeof(T); ++i)
      bytes_.push_back(static_cast<char>((static_cast<uint64_t>(bits) >> (8 * i)) & 0xff));
  }
  void put_string(std::string_view s) {
    put(uint64_t{s.size()});
    bytes_.append(s);
  }
  void put_value(const gguf_value& v, int depth) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
          } else if constexpr (std::is_same_v<T, gguf_array>) {
            if (depth + 1 > max_gguf_array_depth)
              misuse("arrays nest more than " + std::to_string(max_gguf_array_depth) + " deep");
            put(static_cast<uint32_t>(x.type));
            put(uint64_t{x.values.size()});
            for (const gguf_value& e : x.values) {
              if (e.type() != x.type) {
                misuse("an array<" + std::string(gguf_type_name(x.type)) + "> holds a " +
                       std::string(gguf_type_name(e.type())));
              }
              put_value(e, depth + 1);
            }
          } else if constexpr (std::is_same_v<T, bool>) {
            put(uint8_t{x ? uint8_t{1} : uint8_t{0}});
          } else {
            put(x);
          }
        },
        v.value());
  }
  void pad_to(uint64_t alignment) {
    bytes_.append((alignment - bytes_.size() % alignment) % alignment, '\0');
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

uint64_t alignment_of(const gguf_metadata& metadata) {
  const gguf_value* v = metadata.find("general.alignment");
  if (!v) return 32;
  if (v->type() != gguf_type::u32 || !std::has_single_bit(v->as<uint32_t>())) {
    misuse("general.alignment must be a u32 power of two");
  }
  return v->as<uint32_t>();
}

}  // namespace

void save_gguf(const std::filesystem::path& path, const gguf_metadata& metadata,
               const std::map<std::string, array>& tensors) {
  const uint64_t alignment = alignment_of(metadata);
  header_writer h;
  h.put(uint32_t{0x46554747});  // "GGUF"
  h.put(uint32_t{3});
  h.put(uint64_t{tensors.size()});
  h.put(uint64_t{metadata.size()});
  for (const auto& [key, value] : metadata) {
    if (key.size() > 65535) misuse("a metadata key is longer than 65535 bytes");
    h.put_string(key);
    h.put(static_cast<uint32_t>(value.type()));
    h.put_value(value, 0);
  }
  uint64_t offset = 0;
  for (const auto& [name, a] : tensors) {
    if (name.size() > 64) misuse("tensor name '" + name + "' is longer than 64 bytes");
    if (a.ndim() > 4)
      misuse("tensor '" + name + "' has " + std::to_string(a.ndim()) + " dimensions, more than 4");
    h.put_string(name);
    h.put(static_cast<uint32_t>(std::max(a.ndim(), 1)));
    if (a.ndim() == 0) h.put(uint64_t{1});
    for (int i = a.ndim() - 1; i >= 0; --i) h.put(static_cast<uint64_t>(a.shape(i)));
    h.put(static_cast<uint32_t>(ggml_type_of(name, a.type())));
    h.put(offset);
    offset += (a.nbytes() + alignment - 1) / alignment * alignment;
  }
  h.pad_to(alignment);

  detail::atomic_file file(path, "gguf: " + path.string());
  file.write(h.bytes().data(), h.bytes().size());
  const std::string padding(alignment, '\0');
  for (const auto& [name, a] : tensors) {
    const array bytes = contiguous(a);
    file.write(bytes.raw_data(), bytes.nbytes());
    file.write(padding.data(), (alignment - bytes.nbytes() % alignment) % alignment);
  }
  file.commit();
}

}  // namespace mlxd
