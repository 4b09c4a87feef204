#include "dist/weights_cache.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include "mlxd/io/file_text.h"
#include "mlxd/io/io_error.h"
#include "mlxd/io/safetensors.h"

namespace mlxd::dist {
namespace fs = std::filesystem;
namespace {

constexpr const char* shipped_files[] = {"config.json", "model.safetensors"};

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
  if (!fs::is_directory(model))
    throw std::invalid_argument(
        "shipping weights needs a Hugging Face model folder; " + model.string() +
        " is a file (GGUF stages are not shipped: give the workers a path they can read)");
  safetensors_load_options mapped;
  mapped.copy = false;
  return {model, read_bytes(model / "config.json"), load_model_weights(model, mapped).tensors};
}

stage_package pack_stage(const ship_source& source, const models::llama_config& config,
                         const models::llama_stage& range) {
  std::map<std::string, array> stage;
  for (const auto& [name, shape] : models::stage_tensors(config, range)) {
    auto it = source.tensors.find(name);
    if (it == source.tensors.end()) throw io_error(source.model.string() + " has no tensor " + name);
    stage.emplace(name, it->second);
  }
  // save_safetensors writes files; a private temporary one holds the stage's bytes.
  const fs::path tmp = fs::temp_directory_path() / ("mlxd-stage-" + std::to_string(getpid()) + "-" +
                                                    std::to_string(std::random_device{}()) + ".safetensors");
  stage_package p;
  try {
    save_safetensors(tmp, stage);
    p.safetensors = read_bytes(tmp);
  } catch (...) {
    fs::remove(tmp);
    throw;
  }
  fs::remove(tmp);
  p.config = source.config;
  p.hash = hex64(fnv1a(p.safetensors, fnv1a(p.config)));
  return p;
}

std::optional<fs::path> weights_cache::find(const std::string& hash) const {
  if (!is_hash(hash)) return std::nullopt;
  const fs::path entry = dir_ / hash;
  std::error_code ec;
  for (const char* f : shipped_files)
    if (!fs::is_regular_file(entry / f, ec)) return std::nullopt;
  return entry;
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
    throw std::invalid_argument(std::string(shipped_files[file_index_]) + " ended after " +
                                std::to_string(written_) + " of " + std::to_string(file_bytes_) + " bytes");
  ++file_index_;
  if (file_index_ > 1 || file != shipped_files[file_index_])
    throw std::invalid_argument("expected " +
                                std::string(file_index_ > 1 ? "nothing more" : shipped_files[file_index_]) +
                                ", got a chunk of \"" + file + "\"");
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
  if (file != shipped_files[file_index_] || file_bytes != file_bytes_ || offset != written_)
    throw std::invalid_argument("a chunk of " + file + " at offset " + std::to_string(offset) +
                                " does not continue " + shipped_files[file_index_] + " at " +
                                std::to_string(written_));
  if (data.size() > file_bytes_ - written_)
    throw std::invalid_argument("a chunk runs past the end of " + file);
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out_) throw std::invalid_argument("cannot write " + (partial_ / file).string());
  written_ += data.size();
  fnv_ = fnv1a(data, fnv_);
}

uint64_t weights_cache::receiver::commit() {
  if (file_index_ != 1 || written_ != file_bytes_)
    throw std::invalid_argument("the upload ended before both config.json and model.safetensors were whole");
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
