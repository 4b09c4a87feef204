#include "tokenizer/jinja/lexer.h"

#include <array>
#include <regex>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/jinja/text.h"
#include "tokenizer/utf8.h"

namespace mlxd::jinja {
namespace {

[[noreturn]] void fail(int line, const std::string& what) {
  throw chat_template_error("chat template line " + std::to_string(line) + ": " + what);
}

// transformers renders chat templates with trim_blocks and lstrip_blocks; the reference emulates both on the
// source text, and so do we, so that both agree on every template.
std::string preprocess(std::string_view source) {
  std::string s(source);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  s = std::regex_replace(s, std::regex(R"(^[ \t]*(\{[#%-]))", std::regex::multiline), "$1");
  s = std::regex_replace(s, std::regex(R"(([#%-]\})\n)"), "$1");
  const std::regex generation(R"((\s*)\{%(-?)\s*(?:end)?generation\s*(-?)%\}(\s*))");
  std::string out;
  auto last = s.cbegin();
  for (std::sregex_iterator it(s.begin(), s.end(), generation), end; it != end; ++it) {
    const auto& m = *it;
    out.append(last, m[0].first);
    if (m[2].length() == 0) out += m[1].str();
    if (m[3].length() == 0) out += m[4].str();
    last = m[0].second;
  }
  out.append(last, s.cend());
  return out;
}

bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

class lexer {
 public:
  explicit lexer(std::string src) : src_(std::move(src)) {}

  std::vector<token> run() {
    while (pos_ < src_.size()) {
      if (!inside_) {
        lex_text();
        continue;
      }
      lex_inside();
    }
    if (inside_) fail(line_, "a tag is not closed before the end of the template");
    tokens_.push_back({token_kind::end, "", line_});
    return std::move(tokens_);
  }

 private:
  bool at(std::string_view s) const { return src_.compare(pos_, s.size(), s) == 0; }
  char peek(size_t ahead = 0) const { return pos_ + ahead < src_.size() ? src_[pos_ + ahead] : '\0'; }

  void advance(size_t n) {
    for (size_t i = 0; i < n && pos_ < src_.size(); ++i) {
      if (src_[pos_] == '\n') ++line_;
      ++pos_;
    }
  }

  void push(token_kind kind, std::string text) { tokens_.push_back({kind, std::move(text), line_}); }

  // {%- and {{- strip the whitespace that ends the text before them.
  void strip_previous_text() {
    if (tokens_.empty() || tokens_.back().kind != token_kind::text) return;
    tokens_.back().text = strip(tokens_.back().text, false, true);
    if (tokens_.back().text.empty()) tokens_.pop_back();
  }

  // -%} -}} -#} strip the whitespace that follows them.
  void skip_following_space() {
    const std::string rest = strip(std::string_view(src_).substr(pos_), true, false);
    advance(src_.size() - pos_ - rest.size());
  }

  void lex_text() {
    const size_t start = pos_;
    const int line = line_;
    while (pos_ < src_.size() && !(peek() == '{' && (peek(1) == '%' || peek(1) == '{' || peek(1) == '#')))
      advance(1);
    if (pos_ > start) tokens_.push_back({token_kind::text, src_.substr(start, pos_ - start), line});
    if (pos_ >= src_.size()) return;
    if (peek(1) == '#') {
      lex_comment();
      return;
    }
    const bool statement = peek(1) == '%';
    if (peek(2) == '-') strip_previous_text();
    push(statement ? token_kind::open_stmt : token_kind::open_expr, statement ? "{%" : "{{");
    advance(peek(2) == '-' ? 3 : 2);
    inside_ = true;
    brace_depth_ = 0;
  }

  void lex_comment() {
    const int line = line_;
    advance(2);
    if (peek() == '-') {
      strip_previous_text();
      advance(1);
    }
    const size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) fail(line, "a {# comment #} is not closed");
    const bool strip_after = close > pos_ && src_[close - 1] == '-';
    advance(close + 2 - pos_);
    if (strip_after) skip_following_space();
  }

  void lex_inside() {
    while (pos_ < src_.size() && is_space(peek())) advance(1);
    if (pos_ >= src_.size()) return;
    if (at("-%}") || at("%}") || ((at("-}}") || at("}}")) && brace_depth_ == 0)) {
      const bool trim = peek() == '-';
      const bool statement = peek(trim ? 1 : 0) == '%';
      push(statement ? token_kind::close_stmt : token_kind::close_expr, statement ? "%}" : "}}");
      advance(trim ? 3 : 2);
      inside_ = false;
      if (trim) skip_following_space();
      return;
    }
    const char c = peek();
    if (c == '\'' || c == '"') return lex_string(c);
    if (is_digit(c)) return lex_number();
    if (is_word(c)) {
      const size_t start = pos_;
      while (is_word(peek())) advance(1);
      push(token_kind::name, src_.substr(start, pos_ - start));
      return;
    }
    static constexpr std::array<std::string_view, 6> two_char = {"**", "//", "==", "!=", "<=", ">="};
    for (const auto op : two_char) {
      if (at(op)) {
        push(token_kind::op, std::string(op));
        advance(2);
        return;
      }
    }
    if (std::string_view("()[]{},.:|=+-~*/%<>").find(c) != std::string_view::npos) {
      if (c == '{') ++brace_depth_;
      if (c == '}') --brace_depth_;
      push(token_kind::op, std::string(1, c));
      advance(1);
      return;
    }
    fail(line_, std::string("unexpected character '") + c + "'");
  }

  void lex_string(char quote) {
    const int line = line_;
    advance(1);
    std::string value;
    while (true) {
      if (pos_ >= src_.size()) fail(line, "a string literal is not closed");
      const char c = peek();
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        advance(1);
        continue;
      }
      const char e = peek(1);
      advance(2);
      switch (e) {
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'v':
          value += '\v';
          break;
        case '\'':
        case '"':
        case '\\':
          value += e;
          break;
        case 'x':
        case 'u': {
          const size_t n = e == 'x' ? 2 : 4;
          const std::string hex = src_.substr(pos_, n);
          if (hex.size() != n || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            fail(line_, "bad escape \\" + std::string(1, e) + hex + " in a string literal");
          }
          const auto cp = static_cast<char32_t>(std::stoul(hex, nullptr, 16));
          const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
          tokenizer_detail::append_utf8(value, surrogate ? tokenizer_detail::replacement_char : cp);
          advance(n);
          break;
        }
        default:
          fail(line_, std::string("unknown escape \\") + e + " in a string literal");
      }
    }
    advance(1);
    push(token_kind::string, std::move(value));
  }

  void lex_number() {
    const size_t start = pos_;
    while (is_digit(peek())) advance(1);
    const bool after_dot =
        !tokens_.empty() && tokens_.back().kind == token_kind::op && tokens_.back().text == ".";
    if (!after_dot && peek() == '.' && is_digit(peek(1))) {
      advance(1);
      while (is_digit(peek())) advance(1);
    }
    push(token_kind::number, src_.substr(start, pos_ - start));
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool inside_ = false;
  int brace_depth_ = 0;  // { } of dict literals, so "}}" inside one does not close the expression
  std::vector<token> tokens_;
};

}  // namespace

std::vector<token> tokenize(std::string_view source) {
  // std::regex recurses per character; real chat templates are a few kilobytes.
  constexpr size_t max_template_bytes = 1 << 20;
  if (source.size() > max_template_bytes) {
    throw chat_template_error("chat template is " + std::to_string(source.size()) + " bytes, more than the " +
                              std::to_string(max_template_bytes) + " allowed");
  }
  return lexer(preprocess(source)).run();
}

}  // namespace mlxd::jinja
