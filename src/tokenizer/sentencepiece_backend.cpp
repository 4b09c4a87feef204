#include "tokenizer/sentencepiece_backend.h"

#include <sentencepiece_processor.h>

#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd::tokenizer_detail {
namespace {

std::optional<int32_t> valid(int id) {
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

}  // namespace

sentencepiece_backend::sentencepiece_backend(std::string_view model_proto)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = processor_->LoadFromSerializedProto(model_proto);
  if (!status.ok()) throw tokenizer_error("not a SentencePiece model: " + status.ToString());
  if (processor_->GetPieceSize() <= 0) throw tokenizer_error("the SentencePiece model has no pieces");
}

sentencepiece_backend::~sentencepiece_backend() = default;

void sentencepiece_backend::set_special_tokens_to_add(std::optional<int32_t> bos,
                                                      std::optional<int32_t> eos) {
  add_bos_ = bos;
  add_eos_ = eos;
}

std::optional<int32_t> sentencepiece_backend::model_bos() const {
  return valid(processor_->bos_id());
}
std::optional<int32_t> sentencepiece_backend::model_eos() const {
  return valid(processor_->eos_id());
}
std::optional<int32_t> sentencepiece_backend::model_pad() const {
  return valid(processor_->pad_id());
}
std::optional<int32_t> sentencepiece_backend::model_unk() const {
  return valid(processor_->unk_id());
}

std::vector<int32_t> sentencepiece_backend::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int> pieces;
  // Encoding valid UTF-8 fails only on an internal error of the library; say so rather than return nothing.
  const auto status = processor_->Encode(text, &pieces);
  if (!status.ok()) throw tokenizer_error("SentencePiece: " + status.ToString());
  std::vector<int32_t> ids;
  ids.reserve(pieces.size() + 2);
  if (add_special_tokens && add_bos_) ids.push_back(*add_bos_);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  if (add_special_tokens && add_eos_) ids.push_back(*add_eos_);
  return ids;
}

std::string sentencepiece_backend::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<int> kept;
  kept.reserve(ids.size());
  for (const int32_t id : ids) {
    if (!skip_special_tokens || !is_special(id)) kept.push_back(id);
  }
  std::string text;
  const auto status = processor_->Decode(kept, &text);
  if (!status.ok()) throw tokenizer_error("SentencePiece: " + status.ToString());
  return text;
}

std::optional<int32_t> sentencepiece_backend::token_to_id(std::string_view token) const {
  // PieceToId answers the unknown token's id for any piece it does not know.
  const int id = processor_->PieceToId(token);
  if (id < 0 || processor_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

const std::string* sentencepiece_backend::find_token(int32_t id) const {
  if (id < 0 || id >= processor_->GetPieceSize()) return nullptr;
  return &processor_->IdToPiece(id);
}

int64_t sentencepiece_backend::vocab_size() const {
  return processor_->GetPieceSize();
}

bool sentencepiece_backend::is_special(int32_t id) const {
  return find_token(id) != nullptr && (processor_->IsControl(id) || processor_->IsUnknown(id));
}

}  // namespace mlxd::tokenizer_detail
