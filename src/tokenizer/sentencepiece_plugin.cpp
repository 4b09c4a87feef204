// The plugin itself: spm_processor over libsentencepiece. Built as its own shared module.
#include <sentencepiece_processor.h>

#include "tokenizer/sentencepiece_plugin.h"

namespace mlxd::tokenizer_detail {
namespace {

class spm_processor_impl final : public spm_processor {
 public:
  std::string load(std::string_view model_proto) override {
    const auto s = p_.LoadFromSerializedProto(model_proto);
    return s.ok() ? std::string() : s.ToString();
  }
  std::string encode(std::string_view text, std::vector<int>* ids) const override {
    const auto s = p_.Encode(text, ids);
    return s.ok() ? std::string() : s.ToString();
  }
  std::string decode(const std::vector<int>& ids, std::string* text) const override {
    const auto s = p_.Decode(ids, text);
    return s.ok() ? std::string() : s.ToString();
  }
  int piece_size() const override { return p_.GetPieceSize(); }
  int piece_to_id(std::string_view piece) const override { return p_.PieceToId(piece); }
  const std::string& id_to_piece(int id) const override { return p_.IdToPiece(id); }
  int bos_id() const override { return p_.bos_id(); }
  int eos_id() const override { return p_.eos_id(); }
  int pad_id() const override { return p_.pad_id(); }
  int unk_id() const override { return p_.unk_id(); }
  bool is_control(int id) const override { return p_.IsControl(id); }
  bool is_unknown(int id) const override { return p_.IsUnknown(id); }

 private:
  sentencepiece::SentencePieceProcessor p_;
};

}  // namespace
}  // namespace mlxd::tokenizer_detail

extern "C" __attribute__((visibility("default"))) mlxd::tokenizer_detail::spm_processor*
mlxd_new_spm_processor() {
  return new mlxd::tokenizer_detail::spm_processor_impl();
}
