#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/string_pattern.h"
#include "tokenizer/utf8.h"

namespace mlxd::tokenizer_detail {
namespace {

// The characters of a byte-level token back to bytes; characters outside the map keep their own UTF-8.
void append_byte_level(std::string& bytes, const std::string& token) {
  for (size_t pos = 0; pos < token.size();) {
    const size_t len = std::max<size_t>(1, utf8_sequence_length(token, pos));
    const auto byte = unicode_to_byte(decode_code_point(token, pos, len));
    if (byte) {
      bytes.push_back(static_cast<char>(*byte));
    } else {
      bytes.append(token, pos, len);
    }
    pos += len;
  }
}

class byte_level final : public decoder {
 public:
  explicit byte_level(const std::unordered_set<std::string>* added) : added_(added) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    // Runs of ordinary tokens become bytes and then text; added tokens pass through as written.
    std::vector<std::string> out;
    std::string bytes;
    bool pending = false;
    for (const auto& token : tokens) {
      if (added_ != nullptr && added_->contains(token)) {
        if (pending) out.push_back(sanitize_utf8(bytes));
        bytes.clear();
        pending = false;
        out.push_back(token);
      } else {
        append_byte_level(bytes, token);
        pending = true;
      }
    }
    if (pending) out.push_back(sanitize_utf8(bytes));
    return out;
  }

 private:
  const std::unordered_set<std::string>* added_;
};

// "<0xNN>" -> NN, or -1.
int fallback_byte(const std::string& token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                             : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

class byte_fallback final : public decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    for (auto& token : tokens) {
      const int byte = fallback_byte(token);
      if (byte >= 0) {
        bytes.push_back(static_cast<char>(byte));
        continue;
      }
      if (!bytes.empty()) out.push_back(sanitize_utf8(bytes));
      bytes.clear();
      out.push_back(std::move(token));
    }
    if (!bytes.empty()) out.push_back(sanitize_utf8(bytes));
    return out;
  }
};

class fuse final : public decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string joined;
    for (const auto& token : tokens) joined += token;
    return {joined};
  }
};

class strip final : public decoder {
 public:
  explicit strip(const nlohmann::json& config)
      : content_(config.value("content", " ")),
        start_(config.value("start", 0)),
        stop_(config.value("stop", 0)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0; ++i)
        begin += content_.size();
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
    return tokens;
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class replace final : public decoder {
 public:
  explicit replace(const nlohmann::json& config)
      : pattern_(config.at("pattern")), content_(config.value("content", "")) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& token : tokens) token = pattern_.replace_all(token, content_);
    return tokens;
  }

 private:
  string_pattern pattern_;
  std::string content_;
};

class metaspace final : public decoder {
 public:
  explicit metaspace(const nlohmann::json& config) : replacement_(config.value("replacement", "\u2581")) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    const string_pattern pattern(nlohmann::json{{"String", replacement_}});
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = pattern.replace_all(tokens[i], " ");
      if (i == 0 && tokens[i].starts_with(' ')) tokens[i].erase(0, 1);
    }
    return tokens;
  }

 private:
  std::string replacement_;
};

class sequence final : public decoder {
 public:
  explicit sequence(std::vector<std::unique_ptr<decoder>> steps) : steps_(std::move(steps)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& step : steps_) tokens = step->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<decoder>> steps_;
};

}  // namespace

std::unique_ptr<decoder> make_decoder(const nlohmann::json& config,
                                      const std::unordered_set<std::string>* added_tokens) {
  if (config.is_null()) return nullptr;
  const std::string type = config.value("type", "");
  if (type == "ByteLevel") return std::make_unique<byte_level>(added_tokens);
  if (type == "ByteFallback") return std::make_unique<byte_fallback>();
  if (type == "Fuse") return std::make_unique<fuse>();
  if (type == "Strip") return std::make_unique<strip>(config);
  if (type == "Replace") return std::make_unique<replace>(config);
  if (type == "Metaspace") return std::make_unique<metaspace>(config);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<decoder>> steps;
    for (const auto& step : config.at("decoders")) {
      if (auto built = make_decoder(step, added_tokens)) steps.push_back(std::move(built));
    }
    return std::make_unique<sequence>(std::move(steps));
  }
  throw tokenizer_error("unsupported decoder type '" + type + "'");
}

}  // namespace mlxd::tokenizer_detail
