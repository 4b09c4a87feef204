// The GGUF reading shared by load_llama_gguf and load_llama_stage.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "mlxd/core/array.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::models {

struct llama_gguf_contents {
  llama_config config;
  std::map<std::string, array> weights;  // by HF name; empty when the tensors were not read
};

// The config from the "<arch>.*" metadata and, when `read_tensors`, every tensor renamed from llama.cpp's
// names (Q8_0/Q4_0/Q4_K/Q6_K kept quantized). `copy` as in gguf_load_options.
llama_gguf_contents read_llama_gguf(const std::filesystem::path& path, bool read_tensors, bool copy);

}  // namespace mlxd::models
