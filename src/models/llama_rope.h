// The RoPE settings of a Llama-family config, shared by the inference and training forwards.
#pragma once

#include "mlxd/core/ops.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::models {

inline rope_options llama_rope_options(const llama_config& c) {
  rope_options ro;
  ro.base = c.rope_theta;
  ro.traditional = c.rope_interleaved;
  ro.scale = c.rope_scaling == rope_scaling_type::linear ? 1.0f / c.rope_factor : 1.0f;
  if (c.rope_scaling == rope_scaling_type::llama3) {
    ro.inv_freqs = llama3_rope_freqs(c.head_dim, c.rope_theta, c.rope_factor, c.rope_low_freq_factor,
                                     c.rope_high_freq_factor, c.rope_original_max_positions);
  }
  return ro;
}

}  // namespace mlxd::models
