#include "mlxd/models/default_model.h"

#include <cstdlib>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace mlxd::models {

std::filesystem::path default_model_path() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("MLXD_DEFAULT_MODEL"); env && *env) {
    std::error_code ec;
    if (!fs::exists(env, ec))
      throw std::invalid_argument("MLXD_DEFAULT_MODEL=" + std::string(env) + " does not exist");
    return env;
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) {
    const fs::path dir = exe.parent_path();
    candidates = {dir / ".." / ".." / "models" / "default",
                  dir / ".." / "share" / "mlxd" / "models" / "default"};
  }
  std::string looked;
  for (const fs::path& c : candidates) {
    if (fs::is_regular_file(c / "config.json", ec)) return c.lexically_normal();
    looked += (looked.empty() ? "" : ", ") + c.lexically_normal().string();
  }
  if (looked.empty()) looked = "nowhere: the executable's path is unknown";
  throw std::invalid_argument("no --model given and no default model found (looked in " + looked +
                              "; set MLXD_DEFAULT_MODEL or pass --model)");
}

std::string model_or_default(const std::string& given) {
  return given.empty() ? default_model_path().string() : given;
}

}  // namespace mlxd::models
