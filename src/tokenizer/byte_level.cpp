#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace mlxd::tokenizer_detail {
namespace {

struct byte_map {
  std::array<char32_t, 256> to_cp{};
  std::array<std::string, 256> to_utf8;
  std::array<int, 512> from_cp{};  // every mapped code point is below 0x144

  byte_map() {
    from_cp.fill(-1);
    // Printable bytes keep their own code point; the rest take 256, 257, ... in byte order.
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(to_utf8[b], to_cp[b]);
      from_cp[to_cp[b]] = b;
    }
  }
};

const byte_map& the_map() {
  static const byte_map map;
  return map;
}

}  // namespace

const std::string& byte_to_unicode(unsigned char byte) {
  return the_map().to_utf8[byte];
}

std::string bytes_to_unicode(std::string_view text) {
  const byte_map& map = the_map();
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += map.to_utf8[static_cast<unsigned char>(c)];
  return out;
}

std::optional<unsigned char> unicode_to_byte(char32_t cp) {
  if (cp >= 512 || the_map().from_cp[cp] < 0) return std::nullopt;
  return static_cast<unsigned char>(the_map().from_cp[cp]);
}

}  // namespace mlxd::tokenizer_detail
