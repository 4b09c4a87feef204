#include "train/checkpoint_manifest.h"

#include <stdexcept>
#include <system_error>

#include <nlohmann/json.hpp>

#include "io/posix_file.h"
#include "io/strict_json.h"
#include "mlxd/io/io_error.h"

namespace mlxd::train::detail {

namespace {

constexpr uint64_t kMaxManifestBytes = uint64_t{64} << 20;
constexpr int kMaxDepth = 64;
constexpr const char* kFormat = "mlxd-checkpoint";

bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

template <class T>
T field(const nlohmann::json& j, const char* key, const std::string& context) {
  auto it = j.find(key);
  if (it == j.end()) throw io_error(context + ": missing \"" + key + "\"");
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) throw io_error(context + ": \"" + key + "\" must be a string");
  } else if constexpr (std::is_unsigned_v<T>) {
    if (!it->is_number_unsigned())
      throw io_error(context + ": \"" + key + "\" must be a non-negative integer");
  } else {
    if (!it->is_number_integer() || it->template get<int64_t>() < 0) {
      throw io_error(context + ": \"" + key + "\" must be a non-negative integer");
    }
  }
  return it->template get<T>();
}

}  // namespace

std::string manifest_to_json(const manifest& m) {
  std::string error;
  auto cursor = mlxd::detail::parse_strict_json(m.data_cursor, kMaxDepth, error);
  if (!cursor) throw std::invalid_argument("[save_checkpoint] data_cursor is not valid JSON: " + error);
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = 1;
  j["step"] = m.step;
  j["schedule_step"] = m.schedule_step;
  j["optimizer"] = m.optimizer_name;
  j["rng"] = {{"seed", m.rng.seed}, {"stream", m.rng.stream}};
  j["data_cursor"] = *cursor;
  j["files"] = nlohmann::ordered_json::object();
  for (const auto& [name, size] : m.files) j["files"][name] = size;
  try {
    return j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("[save_checkpoint] ") + e.what());
  }
}

manifest read_manifest(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / kManifestName;
  const std::string context = "checkpoint: " + path.string();
  mlxd::detail::unique_fd fd = mlxd::detail::open_for_read(path, context);
  const uint64_t size = mlxd::detail::file_size(fd.get(), context);
  if (size > kMaxManifestBytes) throw io_error(context + ": manifest larger than 64 MiB");
  std::string text(size, '\0');
  mlxd::detail::read_exact_at(fd.get(), 0, text.data(), text.size(), context);
  std::string error;
  auto parsed = mlxd::detail::parse_strict_json(text, kMaxDepth, error);
  if (!parsed) throw io_error(context + ": " + error);
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) throw io_error(context + ": not a JSON object");
  if (field<std::string>(j, "format", context) != kFormat) throw io_error(context + ": unknown format");
  if (field<int64_t>(j, "version", context) != 1) throw io_error(context + ": unsupported version");
  manifest m;
  m.step = field<int64_t>(j, "step", context);
  m.schedule_step = field<int64_t>(j, "schedule_step", context);
  m.optimizer_name = field<std::string>(j, "optimizer", context);
  auto rng = j.find("rng");
  if (rng == j.end() || !rng->is_object()) throw io_error(context + ": missing \"rng\" object");
  m.rng.seed = field<uint64_t>(*rng, "seed", context);
  m.rng.stream = field<uint64_t>(*rng, "stream", context);
  auto cursor = j.find("data_cursor");
  if (cursor == j.end()) throw io_error(context + ": missing \"data_cursor\"");
  m.data_cursor = cursor->dump();
  auto files = j.find("files");
  if (files == j.end() || !files->is_object()) throw io_error(context + ": missing \"files\" object");
  for (const auto& [name, value] : files->items()) {
    if (!plain_file_name(name))
      throw io_error(context + ": file name " + mlxd::detail::quote(name) + " is not plain");
    if (!value.is_number_unsigned()) throw io_error(context + ": size of " + name + " must be an integer");
    m.files.emplace(name, value.get<uint64_t>());
  }
  for (const char* required : {kWeightsName, kOptimizerName}) {
    if (!m.files.contains(required)) throw io_error(context + ": lists no " + required);
  }
  return m;
}

void check_manifest_files(const std::filesystem::path& dir, const manifest& m) {
  for (const auto& [name, size] : m.files) {
    const std::filesystem::path path = dir / name;
    std::error_code ec;
    const auto status = std::filesystem::symlink_status(path, ec);
    if (ec || !std::filesystem::is_regular_file(status)) {
      throw io_error("checkpoint: " + path.string() + ": missing (listed in the manifest)");
    }
    const uint64_t actual = std::filesystem::file_size(path, ec);
    if (ec) throw io_error("checkpoint: " + path.string() + ": cannot read its size: " + ec.message());
    if (actual != size) {
      throw io_error("checkpoint: " + path.string() + ": " + std::to_string(actual) +
                     " bytes, manifest says " + std::to_string(size));
    }
  }
}

}  // namespace mlxd::train::detail
