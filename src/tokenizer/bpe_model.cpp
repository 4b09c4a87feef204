#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/utf8.h"

namespace mlxd::tokenizer_detail {
namespace {

std::pair<std::string, std::string> merge_parts(const nlohmann::json& entry) {
  if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
    return {entry[0].get<std::string>(), entry[1].get<std::string>()};
  }
  if (entry.is_string()) {
    const auto& text = entry.get_ref<const std::string&>();
    const size_t space = text.find(' ');
    if (space != std::string::npos) return {text.substr(0, space), text.substr(space + 1)};
  }
  throw tokenizer_error("BPE merge must be \"a b\" or [\"a\", \"b\"], got " + entry.dump());
}

bool is_set(const nlohmann::json& config, const char* key) {
  return config.contains(key) && !config[key].is_null() && !(config[key].is_string() && config[key] == "");
}

}  // namespace

bpe_model::bpe_model(const nlohmann::json& config) {
  if (config.value("type", "BPE") != "BPE")
    throw tokenizer_error("unsupported model type " + config["type"].dump());
  for (const char* key : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"}) {
    if (is_set(config, key)) throw tokenizer_error(std::string("unsupported BPE option '") + key + "'");
  }
  for (const auto& [token, id] : config.at("vocab").items()) vocab_.emplace(token, id.get<int32_t>());
  const auto& merges = config.at("merges");
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = merge_parts(merges[rank]);
    add_merge(left, right, static_cast<int32_t>(rank));
  }
  bpe_options options;
  options.byte_fallback = config.value("byte_fallback", false);
  options.ignore_merges = config.value("ignore_merges", false);
  if (is_set(config, "unk_token")) options.unk_token = config["unk_token"].get<std::string>();
  set_options(options);
}

bpe_model::bpe_model(std::unordered_map<std::string, int32_t> vocab, const std::vector<bpe_merge>& merges,
                     const bpe_options& options)
    : vocab_(std::move(vocab)) {
  merges_.reserve(merges.size());
  for (const auto& m : merges) add_merge(m.left, m.right, m.rank);
  set_options(options);
}

void bpe_model::add_merge(const std::string& left, const std::string& right, int32_t rank) {
  const auto l = vocab_.find(left), r = vocab_.find(right), m = vocab_.find(left + right);
  // A merge whose parts or result are not tokens can never change an encoding that ends in the vocabulary.
  if (l == vocab_.end() || r == vocab_.end() || m == vocab_.end()) return;
  merges_.try_emplace(pair_key(l->second, r->second), merge{rank, m->second});
}

void bpe_model::set_options(const bpe_options& options) {
  byte_fallback_ = options.byte_fallback;
  ignore_merges_ = options.ignore_merges;
  if (options.unk_token) {
    const auto unk = vocab_.find(*options.unk_token);
    if (unk != vocab_.end()) unk_id_ = unk->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = vocab_.find(name);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

void bpe_model::append_unknown(std::string_view symbol, std::vector<int32_t>& ids) const {
  if (byte_fallback_) {
    bool all_bytes = true;
    for (char c : symbol) all_bytes = all_bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
    if (all_bytes) {
      for (char c : symbol) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      return;
    }
  }
  if (unk_id_) ids.push_back(*unk_id_);
}

void bpe_model::encode(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.empty() || cache_.lookup(piece, ids)) return;
  const size_t first = ids.size();
  encode_uncached(piece, ids);
  cache_.store(piece, ids, first);
}

void bpe_model::encode_uncached(std::string_view piece, std::vector<int32_t>& ids) const {
  if (ignore_merges_) {
    const auto whole = vocab_.find(std::string(piece));
    if (whole != vocab_.end()) {
      ids.push_back(whole->second);
      return;
    }
  }
  struct symbol {
    size_t begin, end;  // bytes of `piece`
    int32_t id;         // -1: not in the vocabulary (never merges)
    int32_t prev, next;
  };
  std::vector<symbol> symbols;
  for (size_t pos = 0; pos < piece.size();) {
    const size_t len = std::max<size_t>(1, utf8_sequence_length(piece, pos));
    const auto it = vocab_.find(std::string(piece.substr(pos, len)));
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({pos, pos + len, it == vocab_.end() ? -1 : it->second, index - 1, index + 1});
    pos += len;
  }
  symbols.back().next = -1;

  struct candidate {
    int32_t rank, left;         // lower rank first, then the leftmost
    int32_t left_id, right_id;  // the pair as it was when pushed; stale entries are skipped
    bool operator>(const candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<candidate, std::vector<candidate>, std::greater<>> queue;
  auto push_pair = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const int32_t l = symbols[left].id, r = symbols[symbols[left].next].id;
    if (l < 0 || r < 0) return;
    const auto it = merges_.find(pair_key(l, r));
    if (it != merges_.end()) queue.push({it->second.rank, left, l, r});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);

  while (!queue.empty()) {
    const candidate top = queue.top();
    queue.pop();
    symbol& left = symbols[top.left];
    if (left.id != top.left_id || left.next < 0 || symbols[left.next].id != top.right_id) continue;
    symbol& right = symbols[left.next];
    left.id = merges_.at(pair_key(top.left_id, top.right_id)).merged_id;
    left.end = right.end;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.id = -2;  // removed
    push_pair(left.prev);
    push_pair(top.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    if (symbols[i].id >= 0) {
      ids.push_back(symbols[i].id);
    } else {
      append_unknown(piece.substr(symbols[i].begin, symbols[i].end - symbols[i].begin), ids);
    }
  }
}

}  // namespace mlxd::tokenizer_detail
