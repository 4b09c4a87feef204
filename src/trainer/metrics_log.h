// The run's metrics file, one JSON object per line. Reopened on resume, it keeps only the lines of steps
// the checkpoint covers, so a resumed run's file reads as if the run had never stopped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace mlxd::trainer {

class metrics_log {
 public:
  // Creates the file, or trims an existing one to the lines whose "step" is at most `keep_through`.
  metrics_log(const std::filesystem::path& path, int64_t keep_through);
  // Appends one line and flushes it, so a killed run loses at most the line being written.
  void write(const nlohmann::json& line);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace mlxd::trainer
