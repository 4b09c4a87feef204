#include "tokenizer/added_vocabulary.h"

#include <unicode/uchar.h>

#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/utf8.h"

namespace mlxd::tokenizer_detail {
namespace {

bool is_word_char(char32_t cp) {
  return cp == '_' || u_isalnum(static_cast<UChar32>(cp));
}

bool is_space(char32_t cp) {
  return u_isUWhiteSpace(static_cast<UChar32>(cp)) || cp == 0xFEFF;
}

// Code point ending just before byte `end` (valid UTF-8, end > 0).
char32_t code_point_before(std::string_view text, size_t end) {
  size_t begin = end - 1;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  return decode_code_point(text, begin, end - begin);
}

void trim_end(std::string& text) {
  while (!text.empty()) {
    size_t begin = text.size() - 1;
    while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
    if (!is_space(decode_code_point(text, begin, text.size() - begin))) break;
    text.resize(begin);
  }
}

void trim_start(std::string& text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t len = std::max<size_t>(1, utf8_sequence_length(text, pos));
    if (!is_space(decode_code_point(text, pos, len))) break;
    pos += len;
  }
  text.erase(0, pos);
}

}  // namespace

added_vocabulary::added_vocabulary(const nlohmann::json& added_tokens) : nodes_(2) {
  for (const auto& entry : added_tokens) {
    if (!entry.contains("id") || !entry.contains("content"))
      throw tokenizer_error("added token without id or content");
    added_token token;
    token.id = entry["id"].get<int32_t>();
    token.content = entry["content"].get<std::string>();
    token.special = entry.value("special", false);
    token.lstrip = entry.value("lstrip", false);
    token.rstrip = entry.value("rstrip", false);
    token.single_word = entry.value("single_word", false);
    token.normalized = entry.value("normalized", !token.special);
    if (token.content.empty()) continue;
    tokens_.push_back(token);
    insert(token.normalized ? 1 : 0, token.content, static_cast<int32_t>(tokens_.size() - 1));
  }
}

int32_t added_vocabulary::child(int32_t node, unsigned char c) const {
  for (const auto& [byte, next] : nodes_[node].children) {
    if (byte == c) return next;
  }
  return -1;
}

void added_vocabulary::insert(int32_t trie, const std::string& content, int32_t token) {
  int32_t node = trie;
  for (char c : content) {
    int32_t next = child(node, static_cast<unsigned char>(c));
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(static_cast<unsigned char>(c), next);
      nodes_.emplace_back();
    }
    node = next;
  }
  if (nodes_[node].token < 0) nodes_[node].token = token;  // the first of two equal contents wins
}

bool added_vocabulary::word_boundaries_ok(std::string_view text, size_t begin, size_t end) const {
  if (begin > 0 && is_word_char(code_point_before(text, begin))) return false;
  if (end < text.size()) {
    const size_t len = std::max<size_t>(1, utf8_sequence_length(text, end));
    if (is_word_char(decode_code_point(text, end, len))) return false;
  }
  return true;
}

std::vector<text_section> added_vocabulary::split(std::string_view text, bool normalized) const {
  std::vector<text_section> sections;
  const int32_t root = normalized ? 1 : 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t match = -1;
    size_t match_end = 0;
    for (int32_t node = child(root, static_cast<unsigned char>(text[i])), j = static_cast<int32_t>(i) + 1;
         node >= 0;
         node = static_cast<size_t>(j) < text.size() ? child(node, static_cast<unsigned char>(text[j])) : -1,
                 ++j) {
      const int32_t token = nodes_[node].token;
      if (token >= 0 && (!tokens_[token].single_word || word_boundaries_ok(text, i, j))) {
        match = token;
        match_end = j;
      }
    }
    if (match < 0) {
      ++i;
      continue;
    }
    if (i > start) sections.push_back({std::string(text.substr(start, i - start)), -1});
    sections.push_back({tokens_[match].content, tokens_[match].id});
    i = start = match_end;
  }
  if (start < text.size()) sections.push_back({std::string(text.substr(start)), -1});

  // lstrip / rstrip remove the whitespace of the neighbouring text sections.
  for (size_t k = 0; k < sections.size(); ++k) {
    if (sections[k].id < 0) continue;
    const added_token* token = nullptr;
    for (const auto& t : tokens_) {
      if (t.id == sections[k].id && t.content == sections[k].text) token = &t;
    }
    if (token == nullptr) continue;
    if (token->lstrip && k > 0 && sections[k - 1].id < 0) trim_end(sections[k - 1].text);
    if (token->rstrip && k + 1 < sections.size() && sections[k + 1].id < 0) trim_start(sections[k + 1].text);
  }
  std::erase_if(sections, [](const text_section& s) { return s.id < 0 && s.text.empty(); });
  return sections;
}

}  // namespace mlxd::tokenizer_detail
