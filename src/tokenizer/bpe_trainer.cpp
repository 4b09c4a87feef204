#include "mlxd/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <memory>
#include <queue>
#include <set>
#include <stdexcept>

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace mlxd {
namespace {

using pair_key = uint64_t;
pair_key key_of(int32_t l, int32_t r) {
  return (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
}
int32_t left_of(pair_key k) {
  return static_cast<int32_t>(k >> 32);
}
int32_t right_of(pair_key k) {
  return static_cast<int32_t>(k & 0xffffffffu);
}

struct word {
  std::vector<int32_t> symbols;  // token ids (bytes 0..255, merges after)
  int64_t freq;
  uint32_t stamp = UINT32_MAX;  // last merge that visited it: pair_words may list a word twice
};

struct heap_entry {
  int64_t count;
  pair_key pair;
};

// Merges every non-overlapping (a, b) left to right, as the BPE encoder applies one merge.
bool merge_word(std::vector<int32_t>& s, int32_t a, int32_t b, int32_t ab) {
  size_t out = 0;
  bool changed = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
      s[out++] = ab;
      ++i;
      changed = true;
    } else {
      s[out++] = s[i];
    }
  }
  s.resize(out);
  return changed;
}

class merge_state {
 public:
  merge_state(const std::unordered_map<std::string, int64_t>& counted, std::vector<std::string>& tokens)
      : tokens_(tokens), heap_([this](const heap_entry& x, const heap_entry& y) { return after(x, y); }) {
    words_.reserve(counted.size());
    for (const auto& [text, freq] : counted) {
      word w{{}, freq};
      for (unsigned char c : text) w.symbols.push_back(c);
      words_.push_back(std::move(w));
    }
    for (uint32_t i = 0; i < words_.size(); ++i) {
      const auto& s = words_[i].symbols;
      for (size_t j = 0; j + 1 < s.size(); ++j) {
        const pair_key k = key_of(s[j], s[j + 1]);
        counts_[k] += words_[i].freq;
        pair_words_[k].push_back(i);
      }
    }
    for (const auto& [k, c] : counts_) heap_.push({c, k});
  }

  // The best pair still counted at least min_frequency times; false when there is none.
  bool best(int64_t min_frequency, pair_key& out) {
    while (!heap_.empty()) {
      const heap_entry top = heap_.top();
      heap_.pop();
      const int64_t now = counts_[top.pair];
      if (now != top.count) {  // stale: counts only fall after a push, so re-queue with the true count
        if (now > 0) heap_.push({now, top.pair});
        continue;
      }
      if (now < min_frequency) return false;
      if (forbidden_.count(top.pair)) continue;
      out = top.pair;
      return true;
    }
    return false;
  }

  // Never merges `k` (its token would be spelled as a special token).
  void forbid(pair_key k) { forbidden_.insert(k); }

  // Applies merge `k` -> token `ab` to every word holding it, updating counts by each word's pair diff.
  void apply(pair_key k, int32_t ab, uint32_t merge_index) {
    const int32_t a = left_of(k), b = right_of(k);
    std::vector<uint32_t> holders = std::move(pair_words_[k]);
    pair_words_.erase(k);
    std::set<pair_key> fresh;
    for (uint32_t wi : holders) {
      word& w = words_[wi];
      if (w.stamp == merge_index) continue;
      w.stamp = merge_index;
      old_.assign(w.symbols.begin(), w.symbols.end());
      if (!merge_word(w.symbols, a, b, ab)) continue;
      for (size_t j = 0; j + 1 < old_.size(); ++j) counts_[key_of(old_[j], old_[j + 1])] -= w.freq;
      for (size_t j = 0; j + 1 < w.symbols.size(); ++j) {
        const pair_key p = key_of(w.symbols[j], w.symbols[j + 1]);
        counts_[p] += w.freq;
        if (w.symbols[j] == ab || w.symbols[j + 1] == ab) {
          pair_words_[p].push_back(wi);
          fresh.insert(p);
        }
      }
    }
    for (pair_key p : fresh) heap_.push({counts_[p], p});
  }

 private:
  // Heap order: higher count first; on a tie the smaller (left bytes, right bytes).
  bool after(const heap_entry& x, const heap_entry& y) const {
    if (x.count != y.count) return x.count < y.count;
    const int c = tokens_[left_of(x.pair)].compare(tokens_[left_of(y.pair)]);
    if (c != 0) return c > 0;
    return tokens_[right_of(x.pair)] > tokens_[right_of(y.pair)];
  }

  std::vector<std::string>& tokens_;  // raw bytes by internal id (0..255 bytes, merges after)
  std::vector<word> words_;
  std::unordered_map<pair_key, int64_t> counts_;
  std::unordered_map<pair_key, std::vector<uint32_t>> pair_words_;
  std::priority_queue<heap_entry, std::vector<heap_entry>,
                      std::function<bool(const heap_entry&, const heap_entry&)>>
      heap_;
  std::vector<int32_t> old_;
  std::set<pair_key> forbidden_;
};

}  // namespace

bpe_trainer::bpe_trainer(bpe_trainer_options options) : options_(std::move(options)) {
  const auto n_special = static_cast<int64_t>(options_.special_tokens.size());
  if (options_.vocab_size < n_special + 256)
    throw std::invalid_argument("[bpe_trainer] vocab_size " + std::to_string(options_.vocab_size) +
                                " leaves no room for " + std::to_string(n_special) +
                                " special tokens and the 256 bytes");
  if (options_.min_frequency < 1)
    throw std::invalid_argument("[bpe_trainer] min_frequency must be at least 1");
  std::set<std::string> seen;
  for (const auto& s : options_.special_tokens) {
    if (s.empty()) throw std::invalid_argument("[bpe_trainer] empty special token");
    if (!seen.insert(s).second)
      throw std::invalid_argument("[bpe_trainer] special token '" + s + "' repeated");
  }
  regex_ = std::make_shared<const tokenizer_detail::regex>(options_.pattern);
}

void bpe_trainer::add_text(std::string_view text) {
  const std::string clean = tokenizer_detail::sanitize_utf8(text);
  // Special tokens written in the text are cut out first, as encoding matches them before the model runs.
  std::string_view rest = clean;
  while (!rest.empty()) {
    size_t at = rest.size(), length = 0;
    for (const auto& s : options_.special_tokens) {
      const size_t found = rest.find(s);
      if (found < at || (found == at && s.size() > length)) at = found, length = s.size();
    }
    const std::string_view section = rest.substr(0, at);
    for (const auto& [begin, end] : regex_->find_all(section))
      ++words_[std::string(section.substr(begin, end - begin))];
    rest.remove_prefix(std::min(rest.size(), at + length));
  }
}

bpe_vocabulary bpe_trainer::train() const {
  bpe_vocabulary vocab;
  vocab.special_tokens = options_.special_tokens;
  vocab.pattern = options_.pattern;
  std::vector<std::string> internal;  // ids without the special tokens
  for (int b = 0; b < 256; ++b) internal.emplace_back(1, static_cast<char>(b));
  const auto n_special = static_cast<int32_t>(options_.special_tokens.size());
  const int64_t n_merges = options_.vocab_size - n_special - 256;
  merge_state state(words_, internal);
  pair_key k;
  const std::set<std::string> specials(options_.special_tokens.begin(), options_.special_tokens.end());
  for (int64_t m = 0; m < n_merges && state.best(options_.min_frequency, k);) {
    std::string merged = internal[left_of(k)] + internal[right_of(k)];
    if (specials.count(tokenizer_detail::bytes_to_unicode(merged))) {
      state.forbid(k);
      continue;
    }
    const auto ab = static_cast<int32_t>(internal.size());
    internal.push_back(std::move(merged));
    vocab.merges.emplace_back(left_of(k) + n_special, right_of(k) + n_special);
    state.apply(k, ab, static_cast<uint32_t>(m));
    ++m;
  }
  vocab.tokens = options_.special_tokens;
  for (auto& t : internal) vocab.tokens.push_back(std::move(t));
  return vocab;
}

void add_files(bpe_trainer& trainer, const std::vector<std::filesystem::path>& files) {
  constexpr size_t chunk = size_t{1} << 20;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path.string() + ": cannot open");
    std::string buffer, carry;
    while (true) {
      buffer.resize(chunk);
      in.read(buffer.data(), static_cast<std::streamsize>(chunk));
      buffer.resize(static_cast<size_t>(in.gcount()));
      if (in.bad()) throw std::runtime_error(path.string() + ": read error");
      carry += buffer;
      if (buffer.empty()) break;
      // Cut after the last newline that a non-space byte follows: no regex piece spans such a place.
      size_t cut = std::string::npos;
      for (size_t i = carry.size(); i-- > 1;) {
        const unsigned char next = static_cast<unsigned char>(carry[i]);
        if (carry[i - 1] == '\n' && next > ' ' && next < 0x80) {
          cut = i;
          break;
        }
      }
      if (cut == std::string::npos) continue;
      trainer.add_text(std::string_view(carry).substr(0, cut));
      carry.erase(0, cut);
    }
    if (!carry.empty()) trainer.add_text(carry);
  }
}

}  // namespace mlxd
