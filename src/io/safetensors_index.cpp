#include <system_error>
#include <vector>

#include "io/posix_file.h"
#include "io/safetensors_header.h"
#include "io/strict_json.h"
#include "mlxd/io/safetensors.h"

namespace mlxd {

namespace {

using detail::quote;
using detail::throw_safetensors_error;

constexpr const char* index_file_name = "model.safetensors.index.json";
constexpr const char* single_file_name = "model.safetensors";
constexpr uint64_t max_index_bytes = 100'000'000;
constexpr int max_index_depth = 8;

std::string read_index_text(const std::filesystem::path& path, std::string_view origin) {
  const std::string context = "safetensors: " + std::string(origin);
  const detail::unique_fd fd = detail::open_for_read(path, context);
  const uint64_t size = detail::file_size(fd.get(), context);
  if (size > max_index_bytes) {
    throw_safetensors_error(origin, "index is " + std::to_string(size) + " bytes, over the " +
                                        std::to_string(max_index_bytes) + "-byte limit");
  }
  std::string text(size, '\0');
  detail::read_exact_at(fd.get(), 0, text.data(), text.size(), context);
  return text;
}

// Shard names come from the file, so they must not reach outside the index's folder.
bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name != "." &&
         name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos &&
         name.find("..") == std::string_view::npos;
}

// The index's weight_map grouped by shard: shard file name -> names of the tensors mapped to it.
std::map<std::string, std::vector<std::string>> read_weight_map(const std::filesystem::path& index_path) {
  const std::string origin = index_path.string();
  std::string error;
  const auto root = detail::parse_strict_json(read_index_text(index_path, origin), max_index_depth, error);
  if (!root) throw_safetensors_error(origin, "index is not valid JSON: " + error);
  if (!root->is_object()) throw_safetensors_error(origin, "index is not a JSON object");
  const auto map_it = root->find("weight_map");
  if (map_it == root->end()) throw_safetensors_error(origin, "index has no 'weight_map'");
  if (!map_it->is_object()) throw_safetensors_error(origin, "'weight_map' is not a JSON object");
  if (map_it->empty()) throw_safetensors_error(origin, "'weight_map' is empty");

  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& [name, shard] : map_it->items()) {
    if (!shard.is_string()) {
      throw_safetensors_error(origin, "'weight_map' value of " + quote(name) + " is not a string");
    }
    const auto& shard_name = shard.get_ref<const std::string&>();
    if (!is_plain_file_name(shard_name)) {
      throw_safetensors_error(origin, "'weight_map' maps tensor " + quote(name) + " to " + quote(shard_name) +
                                          ", which is not a plain file name in the index's folder");
    }
    shards[shard_name].push_back(name);
  }
  return shards;
}

}  // namespace

safetensors_file load_safetensors_index(const std::filesystem::path& folder_or_index,
                                        const safetensors_load_options& options) {
  std::error_code ec;
  const std::filesystem::path index_path = std::filesystem::is_directory(folder_or_index, ec)
                                               ? folder_or_index / index_file_name
                                               : folder_or_index;
  const std::string origin = index_path.string();
  const auto shards = read_weight_map(index_path);

  safetensors_file out;
  std::map<std::string, std::string> shard_of;  // tensor name -> the shard it came from
  for (const auto& [shard, names] : shards) {
    safetensors_file part = load_safetensors(index_path.parent_path() / shard, options);
    for (const auto& name : names) {
      if (!part.tensors.contains(name)) {
        throw_safetensors_error(origin, "tensor " + quote(name) + " is mapped to shard " + quote(shard) +
                                            ", which does not hold it");
      }
    }
    for (auto& [name, tensor] : part.tensors) {
      const auto [it, inserted] = shard_of.emplace(name, shard);
      if (!inserted) {
        throw_safetensors_error(origin, "tensor " + quote(name) + " appears in both shard " +
                                            quote(it->second) + " and shard " + quote(shard));
      }
      out.tensors.emplace(name, std::move(tensor));
    }
    out.metadata.merge(part.metadata);  // keys already present keep the earlier shard's value
  }
  return out;
}

safetensors_file load_model_weights(const std::filesystem::path& folder,
                                    const safetensors_load_options& options) {
  std::error_code ec;
  const std::filesystem::path index_path = folder / index_file_name;
  const std::filesystem::path single_path = folder / single_file_name;
  if (std::filesystem::exists(index_path, ec)) return load_safetensors_index(index_path, options);
  if (std::filesystem::exists(single_path, ec)) return load_safetensors(single_path, options);
  throw io_error("safetensors: " + folder.string() + ": holds neither " + index_file_name + " nor " +
                 single_file_name);
}

}  // namespace mlxd
