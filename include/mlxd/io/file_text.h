// Reading a whole file into memory, for the small text and JSON files of models, configs and keys.
#pragma once

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace mlxd::io {

// The bytes of `path` as they are; nullopt when it cannot be opened or read, so that each caller raises the
// error type and message of its own module. Inline because the tokenizer, which links no other mlxd library,
// needs it too.
inline std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return std::move(text).str();
}

}  // namespace mlxd::io
