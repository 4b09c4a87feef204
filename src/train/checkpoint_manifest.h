// The manifest of a checkpoint directory (see mlxd/train/checkpoint.h): its JSON form and its validation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "mlxd/core/random.h"

namespace mlxd::train::detail {

inline constexpr const char* kManifestName = "manifest.json";
inline constexpr const char* kWeightsName = "weights.safetensors";
inline constexpr const char* kOptimizerName = "optimizer.safetensors";

struct manifest {
  int64_t step = 0;
  int64_t schedule_step = 0;
  std::string optimizer_name;
  random::key rng;
  std::string data_cursor = "null";       // JSON text
  std::map<std::string, uint64_t> files;  // plain file name -> size in bytes
};

// Serialises `m`; data_cursor must be valid JSON (std::invalid_argument otherwise).
std::string manifest_to_json(const manifest& m);
// Reads and validates "<dir>/manifest.json". Throws io_error naming the file and the fault.
manifest read_manifest(const std::filesystem::path& dir);
// Throws io_error unless every file the manifest lists exists in `dir` as a regular file of the listed size.
void check_manifest_files(const std::filesystem::path& dir, const manifest& m);

}  // namespace mlxd::train::detail
