// Writing a Llama-family model as a Hugging Face folder: config.json, model.safetensors and, when a folder
// with them is given, the tokenizer files, so the result loads with load_llama and the tokenizer loader.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "mlxd/core/array.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::models {

// The files of a tokenizer folder that travel with a model (those present are copied).
inline constexpr const char* tokenizer_files[] = {"tokenizer.json", "tokenizer_config.json",
                                                  "special_tokens_map.json", "generation_config.json",
                                                  "tokenizer.model"};

// Creates `dir` if needed and writes config.json and model.safetensors (atomically), then copies the
// tokenizer files found in `tokenizer_from` (none when it is empty). Throws io_error or
// std::filesystem::filesystem_error naming the file that could not be written.
void save_llama_folder(const std::filesystem::path& dir, const llama_config& config,
                       const std::map<std::string, array>& weights,
                       const std::filesystem::path& tokenizer_from = {});

}  // namespace mlxd::models
