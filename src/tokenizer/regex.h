// A compiled Unicode regular expression (PCRE2 with UTF and UCP, JIT when available) as used by the split
// pre-tokenizers and Replace normalizers/decoders of tokenizer.json. Patterns there are written for
// Oniguruma; the constructs real tokenizers use (\p{L}, \p{N}, (?i:...), lookahead) mean the same in PCRE2.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mlxd::tokenizer_detail {

class regex {
 public:
  // Throws tokenizer_error naming the pattern and PCRE2's message if it does not compile.
  explicit regex(const std::string& pattern);

  // Byte ranges [begin, end) of the successive non-overlapping, non-empty matches in `text` (valid UTF-8).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct impl;
  std::shared_ptr<const impl> impl_;  // immutable once built; match data is per call, so this is thread-safe
};

}  // namespace mlxd::tokenizer_detail
