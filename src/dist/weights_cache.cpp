#include "dist/weights_cache.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include "mlxd/io/file_text.h"
#include "mlxd/io/io_error.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama_folder.h"

namespace mlxd::dist {
namespace fs = std::filesystem;
namespace {

std::string read_bytes(const fs::path& p) {
  auto bytes = io::read_file(p);
  if (!bytes) throw io_error("cannot read " + p.string());
  return std::move(*bytes);
}

bool is_hash(const std::string& h) {
  return h.size() == 16 && h.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

uint64_t fnv1a(std::string_view bytes, uint64_t h) {
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string hex64(uint64_t h) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

ship_source open_ship_source(const fs::path& model) {
  if (!fs::is_directory(model)) {
    gguf_load_options mapped;
    mapped.keep_quantized = true;
    mapped.copy = false;
    gguf_file f = load_gguf(model, mapped);
    return {model, models::to_json(models::load_llama_config_any(model)), std::move(f.tensors),
            std::move(f.metadata)};
  }
  safetensors_load_options mapped;
  mapped.copy = false;
  const models::llama_config config = models::load_llama_config(model);
  std::map<std::string, array> tensors = models::load_llama_folder_weights(model, config, mapped);
  // An MLX folder's stages travel dequantized, so their config must not say "quantization".
  std::string text = config.mlx_quantized ? models::to_json(config) : read_bytes(model / config_file);
  return {model, std::move(text), std::move(tensors), std::nullopt};
}

namespace {

// The GGUF tensors (llama.cpp names) of `range`: its blocks, the embedding and head as the stage needs, and
// every tensor that belongs to no block (such as rope_freqs).
std::map<std::string, array> gguf_stage_tensors(const ship_source& source, const models::llama_config& config,
                                                const models::llama_stage& range) {
  std::map<std::string, array> stage;
  for (const auto& [name, a] : source.tensors) {
    bool wanted = true;
    if (name.starts_with("blk.")) {
      const int layer = std::atoi(name.c_str() + 4);
      wanted = layer >= range.layer_begin && layer < range.layer_end;
    } else if (name == "token_embd.weight") {
      wanted = range.embedding || (range.head && config.tie_word_embeddings);
    } else if (name == "output_norm.weight" || name == "output.weight") {
      wanted = range.head;
    }
    if (wanted) stage.emplace(name, a);
  }
  return stage;
}

}  // namespace

stage_package pack_stage(const ship_source& source, const models::llama_config& config,
                         const models::llama_stage& range) {
  std::map<std::string, array> stage;
  if (source.gguf) {
    stage = gguf_stage_tensors(source, config, range);
  } else {
    for (const auto& [name, shape] : models::stage_tensors(config, range)) {
      auto it = source.tensors.find(name);
      if (it == source.tensors.end()) throw io_error(source.model.string() + " has no tensor " + name);
      stage.emplace(name, it->second);
    }
  }
  stage_package p;
  p.model_file = source.gguf ? model_files[1] : model_files[0];
  // The writers write files; a private temporary one holds the stage's bytes.
  const fs::path tmp =
      fs::temp_directory_path() / ("mlxd-stage-" + std::to_string(getpid()) + "-" +
                                   std::to_string(std::random_device{}()) + "-" + p.model_file);
  try {
    if (source.gguf) {
      gguf_metadata m = *source.gguf;
      m.set(m.get_string("general.architecture") + ".vocab_size", static_cast<uint32_t>(config.vocab_size));
      m.set(models::gguf_tie_embeddings_key, config.tie_word_embeddings);
      save_gguf(tmp, m, stage);
    } else
      save_safetensors(tmp, stage);
    p.model = read_bytes(tmp);
  } catch (...) {
    fs::remove(tmp);
    throw;
  }
  fs::remove(tmp);
  p.config = source.config;
  p.hash = hex64(fnv1a(p.model, fnv1a(p.config)));
  return p;
}

std::optional<fs::path> weights_cache::find(const std::string& hash) const {
  if (!is_hash(hash)) return std::nullopt;
  const fs::path entry = dir_ / hash;
  std::error_code ec;
  if (!fs::is_regular_file(entry / config_file, ec)) return std::nullopt;
  if (fs::is_regular_file(entry / model_files[0], ec)) return entry;
  if (fs::is_regular_file(entry / model_files[1], ec)) return entry / model_files[1];
  return std::nullopt;
}

weights_cache::receiver::receiver(const weights_cache& cache, uint64_t max_bytes)
    : cache_(cache), max_bytes_(max_bytes) {}

weights_cache::receiver::~receiver() {
  out_.close();
  std::error_code ec;
  if (!committed_ && !partial_.empty()) fs::remove_all(partial_, ec);
}

void weights_cache::receiver::open_next(const std::string& file, uint64_t file_bytes) {
  if (file_index_ >= 0 && written_ != file_bytes_)
    throw std::invalid_argument(current() + " ended after " + std::to_string(written_) + " of " +
                                std::to_string(file_bytes_) + " bytes");
  ++file_index_;
  const bool model = file == model_files[0] || file == model_files[1];
  if (file_index_ > 1 || (file_index_ == 0 ? file != config_file : !model))
    throw std::invalid_argument("expected " +
                                std::string(file_index_ > 1 ? "nothing more"
                                            : file_index_ == 0
                                                ? config_file
                                                : std::string(model_files[0]) + " or " + model_files[1]) +
                                ", got a chunk of \"" + file + "\"");
  if (file_index_ == 1) model_file_ = file;
  total_ += file_bytes;
  if (total_ > max_bytes_)
    throw std::invalid_argument("the weights (" + std::to_string(total_) + " bytes) exceed the " +
                                std::to_string(max_bytes_) + " bytes this worker offers");
  out_.close();
  out_.open(partial_ / file, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::invalid_argument("cannot write " + (partial_ / file).string());
  file_bytes_ = file_bytes;
  written_ = 0;
}

void weights_cache::receiver::add(const std::string& hash, const std::string& file, uint64_t file_bytes,
                                  uint64_t offset, std::string_view data) {
  if (partial_.empty()) {
    if (!is_hash(hash)) throw std::invalid_argument("\"" + hash + "\" is not a weights hash (16 hex digits)");
    hash_ = hash;
    fs::create_directories(cache_.dir());
    partial_ = cache_.dir() /
               (hash + ".partial-" + std::to_string(getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(partial_);
  }
  if (hash != hash_) throw std::invalid_argument("an upload names two hashes, " + hash_ + " and " + hash);
  if (offset == 0 && (file_index_ < 0 || written_ == file_bytes_)) open_next(file, file_bytes);
  if (file != current() || file_bytes != file_bytes_ || offset != written_)
    throw std::invalid_argument("a chunk of " + file + " at offset " + std::to_string(offset) +
                                " does not continue " + current() + " at " + std::to_string(written_));
  if (data.size() > file_bytes_ - written_)
    throw std::invalid_argument("a chunk runs past the end of " + file);
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out_) throw std::invalid_argument("cannot write " + (partial_ / file).string());
  written_ += data.size();
  fnv_ = fnv1a(data, fnv_);
}

uint64_t weights_cache::receiver::commit() {
  if (file_index_ != 1 || written_ != file_bytes_)
    throw std::invalid_argument("the upload ended before both config.json and the model file were whole");
  out_.close();
  if (!out_) throw std::invalid_argument("cannot write the weights to " + partial_.string());
  if (hex64(fnv_) != hash_)
    throw std::invalid_argument("the weights received hash to " + hex64(fnv_) + ", not " + hash_);
  const fs::path entry = cache_.dir() / hash_;
  std::error_code ec;
  if (cache_.find(hash_)) {
    fs::remove_all(partial_, ec);  // another upload of the same bytes won
  } else {
    fs::remove_all(entry, ec);  // a torn entry from before
    fs::rename(partial_, entry);
  }
  committed_ = true;
  return total_;
}

fs::path default_weights_cache_dir() {
  if (const char* d = std::getenv("MLXD_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "mlxd" / "weights";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "mlxd" / "weights";
  return fs::temp_directory_path() / "mlxd-weights";
}

}  // namespace mlxd::dist
