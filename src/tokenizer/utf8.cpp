#include "tokenizer/utf8.h"

namespace mlxd::tokenizer_detail {
namespace {

// The valid range of the second byte depends on the lead byte (no overlongs, no surrogates, <= U+10FFFF).
bool second_byte_ok(unsigned char lead, unsigned char b) {
  if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
  if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
  if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  return b >= 0x80 && b <= 0xBF;
}

size_t expected_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Number of bytes at text[pos] that form a valid prefix of some sequence (at least 1 for a bad lead byte).
size_t valid_prefix(std::string_view text, size_t pos, size_t need) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  size_t n = 1;
  while (n < need && pos + n < text.size()) {
    const auto b = static_cast<unsigned char>(text[pos + n]);
    const bool ok = n == 1 ? second_byte_ok(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++n;
  }
  return n;
}

}  // namespace

size_t utf8_sequence_length(std::string_view text, size_t pos) {
  const size_t need = expected_length(static_cast<unsigned char>(text[pos]));
  if (need == 0) return 0;
  return valid_prefix(text, pos, need) == need ? need : 0;
}

char32_t decode_code_point(std::string_view text, size_t pos, size_t length) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (length == 1) return b0;
  char32_t cp = b0 & (0x7F >> length);
  for (size_t i = 1; i < length; ++i) cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t len = utf8_sequence_length(text, pos);
    if (len > 0) {
      out.append(text.substr(pos, len));
      pos += len;
      continue;
    }
    const size_t need = expected_length(static_cast<unsigned char>(text[pos]));
    pos += need == 0 ? 1 : valid_prefix(text, pos, need);
    append_utf8(out, replacement_char);
  }
  return out;
}

bool ends_with_incomplete_utf8(std::string_view text) {
  // Look back at most 3 bytes for a lead byte whose sequence is a valid but unfinished prefix.
  for (size_t back = 1; back <= 3 && back <= text.size(); ++back) {
    const size_t pos = text.size() - back;
    const auto b = static_cast<unsigned char>(text[pos]);
    if (b >= 0x80 && b <= 0xBF) continue;
    const size_t need = expected_length(b);
    return need > back && valid_prefix(text, pos, need) == back;
  }
  return false;
}

}  // namespace mlxd::tokenizer_detail
