// What the SentencePiece backend needs from libsentencepiece, behind an interface implemented by a plugin
// (libmlxd_sentencepiece.so) that is loaded with its own symbol scope. Debian's libsentencepiece carries its
// own protobuf-lite 3.14 under the same symbol names as libprotobuf 3.21, which the gRPC code links: in one
// global scope the second library to load binds to the first one's functions and crashes (or fails protobuf's
// version check). Loaded with RTLD_LOCAL | RTLD_DEEPBIND, libsentencepiece keeps to its own copy and
// libprotobuf never sees it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mlxd::tokenizer_detail {

// A SentencePieceProcessor. The status-returning calls answer "" on success, else the library's message.
class spm_processor {
 public:
  virtual ~spm_processor() = default;
  virtual std::string load(std::string_view model_proto) = 0;
  virtual std::string encode(std::string_view text, std::vector<int>* ids) const = 0;
  virtual std::string decode(const std::vector<int>& ids, std::string* text) const = 0;
  virtual int piece_size() const = 0;
  virtual int piece_to_id(std::string_view piece) const = 0;
  virtual const std::string& id_to_piece(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int pad_id() const = 0;
  virtual int unk_id() const = 0;
  virtual bool is_control(int id) const = 0;
  virtual bool is_unknown(int id) const = 0;
};

// A new processor from the plugin: MLXD_SENTENCEPIECE_PLUGIN, else lib/ beside the executable's bin/, else
// where the build put it. Throws tokenizer_error when the plugin cannot be loaded.
std::unique_ptr<spm_processor> make_spm_processor();

}  // namespace mlxd::tokenizer_detail

// The plugin's one entry point.
extern "C" mlxd::tokenizer_detail::spm_processor* mlxd_new_spm_processor();
