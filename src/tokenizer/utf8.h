// UTF-8 helpers shared by the tokenizer pipeline: validation with replacement, code point iteration,
// encoding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mlxd::tokenizer_detail {

inline constexpr char32_t replacement_char = 0xFFFD;

// Returns `text` with every ill-formed sequence replaced by U+FFFD, one per maximal subpart (the Unicode /
// WHATWG "substitution of maximal subparts" practice that TextDecoder and Rust's from_utf8_lossy follow).
std::string sanitize_utf8(std::string_view text);

// Length in bytes of the well-formed sequence starting at text[pos], or 0 if it is ill-formed or truncated.
size_t utf8_sequence_length(std::string_view text, size_t pos);

// Decodes the code point of a well-formed sequence of `length` bytes at text[pos].
char32_t decode_code_point(std::string_view text, size_t pos, size_t length);

// Appends the UTF-8 encoding of `cp` (which must be a scalar value) to `out`.
void append_utf8(std::string& out, char32_t cp);

// Whether `text` ends inside a multi-byte sequence that more bytes could still complete.
bool ends_with_incomplete_utf8(std::string_view text);

}  // namespace mlxd::tokenizer_detail
