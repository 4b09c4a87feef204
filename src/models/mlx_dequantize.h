// MLX-community folders: MLX's affine-quantized modules become plain weights at load.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "mlxd/core/array.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::models {

// One module's weight from MLX's three tensors: `packed` [rows, row_bytes] (its U32 words read as
// little-endian bytes, a bit stream with value j at bits j*bits .. j*bits+bits-1 of the row), `scales` and
// `biases` [rows, groups] of one float dtype. w[r, j] = scale * q + bias of j's group, computed in f32 and
// rounded once to the scales' dtype, which the result has. Throws std::invalid_argument naming `module` when
// the shapes or dtypes do not agree with `p`.
array dequantize_mlx(const array& packed, const array& scales, const array& biases,
                     mlx_quantization::params p, const std::string& module);

// Replaces, in `weights`, each "<m>.weight" that has "<m>.scales" beside it by its dequantized weight and
// drops "<m>.scales" and "<m>.biases". Modules `wanted` rejects are dropped without being dequantized.
// Throws std::invalid_argument for scales without biases or weight, and for a module the config leaves
// unquantized that has scales.
void dequantize_mlx_weights(std::map<std::string, array>& weights, const mlx_quantization& q,
                            const std::function<bool(const std::string&)>& wanted);

}  // namespace mlxd::models
