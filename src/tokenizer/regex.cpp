#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd::tokenizer_detail {

struct regex::impl {
  pcre2_code* code = nullptr;
  ~impl() { pcre2_code_free(code); }
};

regex::regex(const std::string& pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  auto built = std::make_shared<impl>();
  built->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (built->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw tokenizer_error("regex '" + pattern + "' at offset " + std::to_string(offset) + ": " +
                          reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(built->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  impl_ = std::move(built);
}

std::vector<std::pair<size_t, size_t>> regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(impl_->code, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc =
        pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw tokenizer_error(std::string("regex match failed: ") + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end > begin) {
      matches.emplace_back(begin, end);
      start = end;
    } else {
      // Empty match: step over one whole code point so the next search starts on a character boundary.
      start = end + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
    }
  }
  return matches;
}

}  // namespace mlxd::tokenizer_detail
