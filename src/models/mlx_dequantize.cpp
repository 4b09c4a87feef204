#include "models/mlx_dequantize.h"

#include <set>
#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::models {
namespace {

[[noreturn]] void bad(const std::string& module, const std::string& what) {
  throw std::invalid_argument("[mlx] " + module + ": " + what);
}

// Value j of a row's bit stream; a value never spans more than two bytes since bits <= 8.
uint32_t unpack(const uint8_t* row, int64_t j, int bits) {
  const int64_t bit = j * bits;
  const int64_t byte = bit / 8;
  const int shift = static_cast<int>(bit % 8);
  uint32_t v = row[byte] >> shift;
  if (shift + bits > 8) v |= static_cast<uint32_t>(row[byte + 1]) << (8 - shift);
  return v & ((1u << bits) - 1);
}

}  // namespace

array dequantize_mlx(const array& packed, const array& scales, const array& biases,
                     mlx_quantization::params p, const std::string& module) {
  if (packed.type() != dtype::u8 || packed.ndim() != 2) {
    bad(module, "the packed weight is " + packed.to_string() + ", not a matrix of U32 words");
  }
  if (!is_floating(scales.type()) || scales.type() != biases.type()) {
    bad(module,
        "scales " + scales.to_string() + " and biases " + biases.to_string() + " must be of one float dtype");
  }
  const int64_t rows = packed.shape(0), row_bytes = packed.shape(1);
  if (row_bytes * 8 % p.bits != 0) {
    bad(module, "rows of " + std::to_string(row_bytes) + " bytes do not hold whole " +
                    std::to_string(p.bits) + "-bit values");
  }
  const int64_t cols = row_bytes * 8 / p.bits, groups = cols / p.group_size;
  if (cols % p.group_size != 0) {
    bad(module, "rows of " + std::to_string(cols) + " " + std::to_string(p.bits) +
                    "-bit values are not whole groups of " + std::to_string(p.group_size));
  }
  const shape_t group_shape{rows, groups};
  if (scales.shape() != group_shape || biases.shape() != group_shape) {
    bad(module, "scales " + scales.to_string() + " and biases " + biases.to_string() + " are not " +
                    shape_to_string(group_shape) + ": one per " + std::to_string(p.group_size) + " of the " +
                    std::to_string(cols) + " " + std::to_string(p.bits) + "-bit values of each row");
  }
  const array q = contiguous(packed), s = contiguous(astype(scales, dtype::f32)),
              b = contiguous(astype(biases, dtype::f32));
  array w = array::empty({rows, cols}, dtype::f32);
  const uint8_t* qd = q.data<uint8_t>();
  const float *sd = s.data<float>(), *bd = b.data<float>();
  float* wd = w.mutable_data<float>();
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const uint8_t* row = qd + r * row_bytes;
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t g = r * groups + j / p.group_size;
        wd[r * cols + j] = sd[g] * static_cast<float>(unpack(row, j, p.bits)) + bd[g];
      }
    }
  });
  return scales.type() == dtype::f32 ? w : astype(w, scales.type());
}

void dequantize_mlx_weights(std::map<std::string, array>& weights, const mlx_quantization& q,
                            const std::function<bool(const std::string&)>& wanted) {
  std::set<std::string> modules;  // those with scales, whose three tensors become one weight
  for (const auto& [tensor_name, a] : weights) {
    const bool is_scales = tensor_name.ends_with(".scales"), is_biases = tensor_name.ends_with(".biases");
    if (!is_scales && !is_biases) continue;
    const std::string module = tensor_name.substr(0, tensor_name.size() - 7);
    const std::string other = module + (is_scales ? ".biases" : ".scales");
    if (!weights.contains(other)) bad(module, "has " + tensor_name + " but no " + other);
    if (!weights.contains(module + ".weight")) bad(module, "has scales and biases but no weight");
    modules.insert(module);
  }
  std::map<std::string, array> out;
  for (const std::string& module : modules) {
    const std::string weight_name = module + ".weight";
    if (wanted && !wanted(weight_name)) continue;
    const std::optional<mlx_quantization::params> p = q.of(weight_name);
    if (!p) bad(module, "has scales, but config.json's quantization leaves it unquantized");
    out[weight_name] = dequantize_mlx(weights.at(weight_name), weights.at(module + ".scales"),
                                      weights.at(module + ".biases"), *p, module);
  }
  std::erase_if(weights, [&](const auto& entry) {
    const std::string& n = entry.first;
    const size_t dot = n.rfind('.');
    // A quantized linear layer's ".bias" (Qwen2's q/k/v) is a plain tensor and stays.
    const bool quantized_part =
        dot != std::string::npos && n.substr(dot) != ".bias" && modules.contains(n.substr(0, dot));
    return quantized_part || (wanted && !wanted(n));
  });
  weights.merge(out);
}

}  // namespace mlxd::models
