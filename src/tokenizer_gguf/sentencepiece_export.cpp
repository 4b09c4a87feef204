#include "sentencepiece_export.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd::detail {
namespace {

// Protobuf wire format, read within [pos, end) of one message; every read fails rather than run past it.
class wire_reader {
 public:
  wire_reader(std::string_view bytes, const std::string& origin) : bytes_(bytes), origin_(origin) {}
  bool done() const { return pos_ >= bytes_.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) fail("truncated varint");
      const auto b = static_cast<uint8_t>(bytes_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  std::string_view bytes(uint64_t n) {
    if (n > bytes_.size() - pos_) fail("a field runs past the end");
    const std::string_view out = bytes_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return out;
  }
  // The next field: its number and wire type; the value is read by the caller or skipped.
  std::pair<uint64_t, int> key() {
    const uint64_t k = varint();
    return {k >> 3, static_cast<int>(k & 7)};
  }
  void skip(int wire) {
    if (wire == 0)
      varint();
    else if (wire == 1)
      bytes(8);
    else if (wire == 2)
      bytes(varint());
    else if (wire == 5)
      bytes(4);
    else
      fail("unsupported wire type " + std::to_string(wire));
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw tokenizer_error("tokenizer: " + origin_ + " is not a SentencePiece model: " + what);
  }

 private:
  std::string_view bytes_;
  const std::string& origin_;
  size_t pos_ = 0;
};

}  // namespace

void add_sentencepiece_tokenizer(std::string_view proto, const std::string& origin, gguf_metadata& out) {
  // ModelProto: 1 = repeated SentencePiece {1: piece, 2: score, 3: type}, 2 = TrainerSpec {3: model_type,
  // 40: unk_id, 41: bos_id, 42: eos_id, 43: pad_id}, 3 = NormalizerSpec {3: add_dummy_prefix}.
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  uint64_t model_type = 1;         // unigram, the default
  int64_t ids[4] = {0, 1, 2, -1};  // unk, bos, eos, pad: the trainer spec's defaults
  bool dummy_prefix = true;
  wire_reader model(proto, origin);
  while (!model.done()) {
    const auto [field, wire] = model.key();
    if (wire != 2 || field < 1 || field > 3) {
      model.skip(wire);
      continue;
    }
    wire_reader sub(model.bytes(model.varint()), origin);
    if (field == 1) {
      std::string piece;
      float score = 0;
      int32_t type = 1;  // NORMAL; the types are llama.cpp's token types
      while (!sub.done()) {
        const auto [f, w] = sub.key();
        if (f == 1 && w == 2) {
          piece = std::string(sub.bytes(sub.varint()));
        } else if (f == 2 && w == 5) {
          std::memcpy(&score, sub.bytes(4).data(), 4);
        } else if (f == 3 && w == 0) {
          const uint64_t t = sub.varint();
          if (t < 1 || t > 6) sub.fail("piece type " + std::to_string(t));
          type = static_cast<int32_t>(t);
        } else {
          sub.skip(w);
        }
      }
      tokens.push_back(std::move(piece));
      scores.push_back(score);
      types.push_back(type);
    } else {
      while (!sub.done()) {
        const auto [f, w] = sub.key();
        if (w != 0) {
          sub.skip(w);
        } else if (field == 2 && f == 3) {
          model_type = sub.varint();
        } else if (field == 2 && f >= 40 && f <= 43) {
          // int32 ids: -1 (none) arrives as a 64-bit two's complement varint.
          ids[f - 40] = static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(sub.varint())));
        } else if (field == 3 && f == 3) {
          dummy_prefix = sub.varint() != 0;
        } else {
          sub.varint();
        }
      }
    }
  }
  if (model_type != 2)
    model.fail("model type " + std::to_string(model_type) +
               " is not BPE (GGUF's \"llama\" tokenizer merges by score, as BPE models do)");
  if (tokens.empty()) model.fail("no pieces");
  out.set("tokenizer.ggml.model", "llama");
  out.set("tokenizer.ggml.tokens", gguf_value::array_of(gguf_type::string, tokens));
  out.set("tokenizer.ggml.scores", gguf_value::array_of(gguf_type::f32, scores));
  out.set("tokenizer.ggml.token_type", gguf_value::array_of(gguf_type::i32, types));
  out.set("tokenizer.ggml.add_space_prefix", gguf_value(dummy_prefix));
  const char* keys[] = {"tokenizer.ggml.unknown_token_id", "tokenizer.ggml.bos_token_id",
                        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"};
  for (int i = 0; i < 4; ++i) {
    if (ids[i] < 0) continue;
    if (ids[i] >= static_cast<int64_t>(tokens.size()))
      model.fail("special id " + std::to_string(ids[i]) + " outside the " + std::to_string(tokens.size()) +
                 " pieces");
    out.set(keys[i], gguf_value(static_cast<uint32_t>(ids[i])));
  }
  out.set("tokenizer.ggml.add_bos_token", gguf_value(true));
  out.set("tokenizer.ggml.add_eos_token", gguf_value(false));
}

}  // namespace mlxd::detail
