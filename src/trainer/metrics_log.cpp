#include "metrics_log.h"

#include <sstream>
#include <string>

#include "mlxd/io/io_error.h"

namespace mlxd::trainer {

namespace fs = std::filesystem;

metrics_log::metrics_log(const fs::path& path, int64_t keep_through) : path_(path) {
  std::string kept;
  if (std::ifstream in(path); in) {
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      // A torn last line (the run was killed mid-write) is dropped with the steps after the checkpoint.
      if (j.is_object() && j.value("step", int64_t{-1}) <= keep_through) kept += line + "\n";
    }
  }
  fs::create_directories(path.parent_path());
  out_.open(path, std::ios::trunc);
  out_ << kept;
  if (!out_.flush()) throw io_error("cannot write " + path.string());
}

void metrics_log::write(const nlohmann::json& line) {
  out_ << line.dump() << "\n";
  if (!out_.flush()) throw io_error("cannot write " + path_.string());
}

}  // namespace mlxd::trainer
