#include <algorithm>
#include <array>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors_header.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"

namespace mlxd {

namespace {

using named_array = std::pair<const std::string, array>;

// Sizes are powers of two and the data section starts 8-aligned, so laying out the largest elements first
// keeps every tensor aligned to its element size without padding (which the reference reader rejects).
std::vector<const named_array*> data_order(const std::map<std::string, array>& tensors) {
  std::vector<const named_array*> order;
  for (const auto& entry : tensors) order.push_back(&entry);
  std::stable_sort(order.begin(), order.end(), [](const named_array* a, const named_array* b) {
    return a->second.itemsize() > b->second.itemsize();
  });
  return order;
}

// The header JSON, padded with spaces so that 8 + its length is a multiple of 8.
std::string header_text(const std::vector<const named_array*>& order,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& meta = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
  }
  uint64_t offset = 0;
  for (const named_array* entry : order) {
    const array& a = entry->second;
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["dtype"] = std::string(detail::safetensors_dtype_name(a.type()));
    info["shape"] = a.shape();
    info["data_offsets"] = nlohmann::ordered_json::array({offset, offset + a.nbytes()});
    header[entry->first] = std::move(info);
    offset += a.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata string that is not UTF-8
    throw std::invalid_argument(std::string("[save_safetensors] ") + e.what());
  }
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  return text;
}

}  // namespace

void save_safetensors(const std::filesystem::path& path, const std::map<std::string, array>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  if (tensors.contains("__metadata__")) {
    throw std::invalid_argument("[save_safetensors] the tensor name '__metadata__' is reserved for metadata");
  }
  for (const auto& [tensor_name, a] : tensors) {
    if (is_quantized(a.type())) {
      throw std::invalid_argument("[save_safetensors] tensor '" + tensor_name + "' is " + a.to_string() +
                                  "; safetensors files hold no block-quantized dtypes (write GGUF instead)");
    }
  }
  const std::vector<const named_array*> order = data_order(tensors);
  const std::string header = header_text(order, metadata);
  std::array<unsigned char, 8> length{};
  for (size_t i = 0; i < length.size(); ++i) length[i] = static_cast<unsigned char>(header.size() >> (8 * i));

  detail::atomic_file file(path, "safetensors: " + path.string());
  file.write(length.data(), length.size());
  file.write(header.data(), header.size());
  for (const named_array* entry : order) {
    const array bytes = contiguous(entry->second);
    file.write(bytes.raw_data(), bytes.nbytes());
  }
  file.commit();
}

}  // namespace mlxd
