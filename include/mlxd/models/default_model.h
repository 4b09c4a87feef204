// Where the model that `mlxd generate`, `mlxd serve` and friends use when no --model is given lives.
#pragma once

#include <filesystem>
#include <string>

namespace mlxd::models {

// The default model's folder: $MLXD_DEFAULT_MODEL when set (it must exist), else the first of
// <exe>/../../models/default (a build tree inside the repository: build/bin/mlxd) and
// <exe>/../share/mlxd/models/default (an installed prefix) that holds a config.json, <exe> being the folder
// of the running executable. Throws std::invalid_argument naming every place looked in when there is none.
std::filesystem::path default_model_path();

// `given` when it is not empty, else default_model_path() as a string: what a --model flag resolves to.
std::string model_or_default(const std::string& given);

}  // namespace mlxd::models
