// The adapter branch of one linear layer, shared by the training forward (llama_train.cpp) and lora.cpp.
#pragma once

#include <map>
#include <string>

#include "mlxd/models/lora.h"

namespace mlxd::models {

// scale * dropout(x) A^T B^T for `site`: x [N, in] -> [N, out] in x's dtype. The tensors must have passed
// check_lora_params.
array lora_branch(const array& x, const lora_forward& lora, const std::map<std::string, array>& params,
                  const lora_site& site);

}  // namespace mlxd::models
