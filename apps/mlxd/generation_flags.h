// Flags that generate, chat and the other model commands share.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "mlxd/core/dtype.h"
#include "mlxd/engine/sampler.h"

namespace mlxd::app {

// "1,2,3" as ids; throws std::invalid_argument naming the first item that is not an int32.
std::vector<int32_t> parse_ids(const std::string& text);

// --temperature, --top-k, --top-p, --min-p, the three penalties and --seed, written into `params`.
void add_sampling_flags(CLI::App* cmd, engine::sampling_params& params);

// --kv-dtype f32|f16 into `name`; kv_dtype_of turns the name into the dtype.
void add_kv_dtype_flag(CLI::App* cmd, std::string& name);
dtype kv_dtype_of(const std::string& name);

// --mmap: map the model's files instead of reading them into memory (models::llama_load_options::mmap).
void add_mmap_flag(CLI::App* cmd, bool& mmap);

}  // namespace mlxd::app
