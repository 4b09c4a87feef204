#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/sentencepiece_plugin.h"

namespace mlxd::tokenizer_detail {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// The sanitizers refuse RTLD_DEEPBIND; their test binaries do not load libprotobuf, so nothing clashes.
constexpr int open_flags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int open_flags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

std::vector<std::filesystem::path> candidates() {
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv("MLXD_SENTENCEPIECE_PLUGIN")) out.emplace_back(env);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back(exe.parent_path().parent_path() / "lib" / MLXD_SENTENCEPIECE_PLUGIN_NAME);
  out.emplace_back(MLXD_SENTENCEPIECE_PLUGIN_PATH);
  return out;
}

}  // namespace

std::unique_ptr<spm_processor> make_spm_processor() {
  static std::once_flag once;
  static void* handle = nullptr;
  static std::string failures;
  std::call_once(once, [] {
    for (const auto& path : candidates()) {
      handle = dlopen(path.c_str(), open_flags);
      if (handle) return;
      const char* why = dlerror();
      failures += "; " + path.string() + ": " + (why ? why : "cannot open");
    }
  });
  if (!handle) throw tokenizer_error("cannot load the SentencePiece plugin" + failures);
  auto* make = reinterpret_cast<spm_processor* (*)()>(dlsym(handle, "mlxd_new_spm_processor"));
  if (!make) throw tokenizer_error("the SentencePiece plugin has no mlxd_new_spm_processor");
  return std::unique_ptr<spm_processor>(make());
}

}  // namespace mlxd::tokenizer_detail
