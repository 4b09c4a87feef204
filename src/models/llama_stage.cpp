#include <cstring>
#include <set>
#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_folder.h"
#include "models/llama_gguf_read.h"

namespace mlxd::models {
namespace {

bool is_gguf(const std::filesystem::path& path) {
  return path.extension() == ".gguf";
}

// A copy of `a` in memory this process owns, so the mapping of the file can go.
array owned_copy(const array& a) {
  const array c = contiguous(a);
  if (c.buffer()->owns_memory()) return c;
  array out = array::empty(c.shape(), c.type());
  std::memcpy(out.mutable_data<char>(), c.raw_data(), c.nbytes());
  return out;
}

}  // namespace

llama_config load_llama_config_any(const std::filesystem::path& path) {
  if (is_gguf(path)) return read_llama_gguf(path, false, false).config;
  return load_llama_config(path);
}

llama_model load_llama_stage(const std::filesystem::path& path, const llama_stage& stage,
                             const llama_model* held) {
  // What `held` has is shared; the model below keeps only the tensors of `stage`.
  std::map<std::string, array> mine;
  if (held) mine = held->weights();
  llama_config config;
  std::map<std::string, array> all;  // views of the mapped file
  if (is_gguf(path)) {
    llama_gguf_contents g = read_llama_gguf(path, true, false);
    config = std::move(g.config);
    all = std::move(g.weights);
  } else {
    config = load_llama_config(path);
    safetensors_load_options options;
    options.copy = false;
    std::set<std::string> needed;
    for (const auto& entry : stage_tensors(config, stage)) needed.insert(entry.first);
    all = load_llama_folder_weights(
        path, config, options, [&](const std::string& n) { return needed.contains(n) && !mine.contains(n); });
  }
  for (const auto& [tensor_name, shape] : stage_tensors(config, stage)) {
    auto it = all.find(tensor_name);
    if (it != all.end() && !mine.contains(tensor_name)) mine[tensor_name] = owned_copy(it->second);
  }
  all.clear();
  return llama_model(std::move(config), mine, stage);
}

}  // namespace mlxd::models
