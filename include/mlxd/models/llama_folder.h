// Reading a Llama-family model's weights from a Hugging Face folder, and writing one: config.json,
// model.safetensors and, when a folder with them is given, the tokenizer files, so the result loads with
// load_llama and the tokenizer loader.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "mlxd/core/array.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::models {

// The files of a tokenizer folder that travel with a model (those present are copied).
inline constexpr const char* tokenizer_files[] = {"tokenizer.json", "tokenizer_config.json",
                                                  "special_tokens_map.json", "generation_config.json",
                                                  "tokenizer.model"};

// The weights of the folder `dir` whose config is `config`, as llama_model takes them (load_model_weights).
// An MLX-community folder's quantized modules (config.mlx_quantized; "<m>.weight" packed in U32 words beside
// "<m>.scales" and "<m>.biases") become plain weights of the scales' dtype, w = scale * q + bias rounded once
// from f32: the values MLX multiplies with. When `wanted` is given, only the weights it accepts are returned
// (and only those are dequantized). Throws io_error for unreadable files, std::invalid_argument naming the
// module for inconsistent quantized tensors.
std::map<std::string, array> load_llama_folder_weights(
    const std::filesystem::path& dir, const llama_config& config,
    const safetensors_load_options& options = {}, const std::function<bool(const std::string&)>& wanted = {});

// Creates `dir` if needed and writes config.json and model.safetensors (atomically), then copies the
// tokenizer files found in `tokenizer_from` (none when it is empty). Throws io_error or
// std::filesystem::filesystem_error naming the file that could not be written.
void save_llama_folder(const std::filesystem::path& dir, const llama_config& config,
                       const std::map<std::string, array>& weights,
                       const std::filesystem::path& tokenizer_from = {});

}  // namespace mlxd::models
