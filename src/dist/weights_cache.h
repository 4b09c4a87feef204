// Shipping a pipeline stage's weights to a worker that cannot read the model (coordinator_options::
// ship_weights): the coordinator packs config.json and a safetensors file of exactly the stage's tensors,
// named by the FNV-1a hash of their bytes; the worker keeps what it receives in a cache folder, one entry
// per hash, so the next plan that assigns the same range finds it there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "mlxd/models/llama.h"

namespace mlxd::dist {

// FNV-1a 64 over bytes, continued from `h`.
uint64_t fnv1a(std::string_view bytes, uint64_t h = 0xcbf29ce484222325ull);
std::string hex64(uint64_t h);

struct stage_package {
  std::string hash;  // hex64 of fnv1a(config) continued over safetensors
  std::string config;
  std::string safetensors;
};

// The model a coordinator ships stages from, opened once per plan: config.json's bytes and every tensor,
// mapped rather than read, so packing each stage touches only that stage's bytes.
struct ship_source {
  std::filesystem::path model;
  std::string config;
  std::map<std::string, array> tensors;
};
// Throws std::invalid_argument for a GGUF file (its block-quantized tensors are not shipped) and io_error for
// unreadable files.
ship_source open_ship_source(const std::filesystem::path& model);

// The stage `range` of `source`. Throws io_error for a tensor the model lacks.
stage_package pack_stage(const ship_source& source, const models::llama_config& config,
                         const models::llama_stage& range);

// The worker's side: a folder of complete entries <dir>/<hash>/{config.json, model.safetensors}.
class weights_cache {
 public:
  explicit weights_cache(std::filesystem::path dir) : dir_(std::move(dir)) {}
  const std::filesystem::path& dir() const { return dir_; }
  // The entry's folder when it is complete here.
  std::optional<std::filesystem::path> find(const std::string& hash) const;

  // Receives one upload: feed the chunks in order, then commit. Anything wrong throws std::invalid_argument
  // naming it, and the partial folder is removed (also when the receiver is destroyed uncommitted).
  class receiver {
   public:
    receiver(const weights_cache& cache, uint64_t max_bytes);
    ~receiver();
    receiver(const receiver&) = delete;
    receiver& operator=(const receiver&) = delete;
    void add(const std::string& hash, const std::string& file, uint64_t file_bytes, uint64_t offset,
             std::string_view data);
    // Checks that both files are whole and the hash matches, and moves the entry in place; its bytes.
    uint64_t commit();

   private:
    void open_next(const std::string& file, uint64_t file_bytes);
    const weights_cache& cache_;
    uint64_t max_bytes_;
    std::filesystem::path partial_;
    std::string hash_;
    int file_index_ = -1;  // 0: config.json, 1: model.safetensors
    uint64_t file_bytes_ = 0, written_ = 0, total_ = 0;
    uint64_t fnv_ = 0xcbf29ce484222325ull;
    std::ofstream out_;
    bool committed_ = false;
  };

 private:
  std::filesystem::path dir_;
};

// The cache folder a worker uses by default: $MLXD_CACHE_DIR, else $XDG_CACHE_HOME/mlxd/weights, else
// ~/.cache/mlxd/weights.
std::filesystem::path default_weights_cache_dir();

}  // namespace mlxd::dist
