// Shipping a pipeline stage's weights to a worker that cannot read the model (coordinator_options::
// ship_weights): the coordinator packs config.json and a file of exactly the stage's tensors (safetensors
// from a folder; GGUF, with the file's metadata and its tensors unchanged, quantized ones too, from a GGUF
// file), named by the FNV-1a hash of their bytes; the worker keeps what it receives in a cache folder, one
// entry per hash, so the next plan that assigns the same range finds it there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "mlxd/io/gguf.h"
#include "mlxd/models/llama.h"

namespace mlxd::dist {

// FNV-1a 64 over bytes, continued from `h`.
uint64_t fnv1a(std::string_view bytes, uint64_t h = 0xcbf29ce484222325ull);
std::string hex64(uint64_t h);

// The files of a cache entry: config.json, then one of the model files.
inline constexpr const char* config_file = "config.json";
inline constexpr const char* model_files[] = {"model.safetensors", "model.gguf"};

struct stage_package {
  std::string hash;  // hex64 of fnv1a(config) continued over the model file's bytes
  std::string config;
  std::string model_file;  // one of model_files
  std::string model;
};

// The model a coordinator ships stages from, opened once per plan: config.json's bytes (written from the
// metadata for a GGUF file) and every tensor, mapped rather than read, so packing each stage touches only
// that stage's bytes. A GGUF source keeps llama.cpp's tensor names and its metadata.
struct ship_source {
  std::filesystem::path model;
  std::string config;
  std::map<std::string, array> tensors;
  std::optional<gguf_metadata> gguf;  // set for a GGUF file
};
// Throws io_error for unreadable files, and for a GGUF tensor of a type mlxd does not load.
ship_source open_ship_source(const std::filesystem::path& model);

// The stage `range` of `source`. Throws io_error for a tensor the model lacks.
stage_package pack_stage(const ship_source& source, const models::llama_config& config,
                         const models::llama_stage& range);

// The worker's side: a folder of complete entries <dir>/<hash>/{config.json, model.safetensors}.
class weights_cache {
 public:
  explicit weights_cache(std::filesystem::path dir) : dir_(std::move(dir)) {}
  const std::filesystem::path& dir() const { return dir_; }
  // What a stage loads from the entry when it is complete here: its folder, or its GGUF file.
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
    std::string current() const { return file_index_ == 0 ? config_file : model_file_; }
    const weights_cache& cache_;
    uint64_t max_bytes_;
    std::filesystem::path partial_;
    std::string hash_;
    int file_index_ = -1;  // 0: config.json, 1: the model file
    std::string model_file_;
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
