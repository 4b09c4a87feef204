// GPT-2's reversible map between bytes and printable code points: byte-level BPE vocabularies spell every
// byte as one visible character (0x20 ' ' -> U+0120 'Ġ', 0x0A -> U+010A 'Ċ', printable ASCII as itself).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mlxd::tokenizer_detail {

// The UTF-8 spelling of the character that stands for each byte.
const std::string& byte_to_unicode(unsigned char byte);

// Maps every byte of `text` to its character.
std::string bytes_to_unicode(std::string_view text);

// The byte that `cp` stands for, if it is one of the 256 characters of the map.
std::optional<unsigned char> unicode_to_byte(char32_t cp);

}  // namespace mlxd::tokenizer_detail
