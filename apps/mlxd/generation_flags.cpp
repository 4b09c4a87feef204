#include "generation_flags.h"

#include <climits>
#include <sstream>
#include <stdexcept>

namespace mlxd::app {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const long v = std::stol(item, &used);
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      throw std::invalid_argument("--tokens: \"" + item + "\" is not a token id (expected e.g. 1,2,3)");
    }
  }
  if (ids.empty()) throw std::invalid_argument("--tokens: no token ids given");
  return ids;
}

void add_sampling_flags(CLI::App* cmd, engine::sampling_params& sp) {
  cmd->add_option("--temperature", sp.temperature, "0 = greedy (default)");
  cmd->add_option("--top-k", sp.top_k, "keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", sp.top_p, "nucleus sampling mass (1 = off)");
  cmd->add_option("--min-p", sp.min_p, "drop tokens below min_p x the top probability");
  cmd->add_option("--repetition-penalty", sp.repetition_penalty, "Hugging Face repetition penalty (1 = off)");
  cmd->add_option("--presence-penalty", sp.presence_penalty, "OpenAI presence penalty");
  cmd->add_option("--frequency-penalty", sp.frequency_penalty, "OpenAI frequency penalty");
  cmd->add_option("--seed", sp.seed, "sampling seed (same seed, same tokens)");
}

void add_kv_dtype_flag(CLI::App* cmd, std::string& name) {
  cmd->add_option("--kv-dtype", name, "KV cache storage: f32 (default) or f16 (half the memory)")
      ->check(CLI::IsMember({"f32", "f16"}));
}

dtype kv_dtype_of(const std::string& name) {
  return name == "f16" ? dtype::f16 : dtype::f32;
}

void add_mmap_flag(CLI::App* cmd, bool& mmap) {
  cmd->add_flag("--mmap", mmap,
                "map the weight files instead of reading them into memory (less memory; slower when the host "
                "evicts the mapped pages)");
}

}  // namespace mlxd::app
