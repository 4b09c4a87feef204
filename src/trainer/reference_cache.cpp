#include "reference_cache.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mlxd/io/io_error.h"

namespace mlxd::trainer {

namespace fs = std::filesystem;

namespace {

struct fnv1a {
  uint64_t h = 1469598103934665603ull;
  void add(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
  }
};

}  // namespace

std::string content_hash(const std::vector<fs::path>& files, const std::string& extra) {
  fnv1a f;
  std::vector<char> buf(1 << 20);
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw io_error("cannot read " + file.string() + " to hash it");
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
      f.add(buf.data(), static_cast<size_t>(in.gcount()));
  }
  f.add(extra.data(), extra.size());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
  return hex;
}

reference_cache::reference_cache(const fs::path& dir, const std::string& name, int rank) {
  fs::create_directories(dir);
  const std::string prefix = name + ".rank";
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string file = e.path().filename().string();
    if (file.rfind(prefix, 0) != 0 || e.path().extension() != ".jsonl") continue;
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains("key") || !j.contains("chosen") || !j.contains("rejected")) continue;
      if (!j["key"].is_string() || !j["chosen"].is_number() || !j["rejected"].is_number()) continue;
      entries_[std::stoull(j["key"].get<std::string>(), nullptr, 16)] = {j["chosen"].get<float>(),
                                                                         j["rejected"].get<float>()};
    }
  }
  file_ = dir / (prefix + std::to_string(rank) + ".jsonl");
  out_ = std::fopen(file_.c_str(), "a");
  if (!out_) throw io_error("cannot append to " + file_.string() + ": " + std::strerror(errno));
}

reference_cache::~reference_cache() {
  if (out_) std::fclose(out_);
}

std::optional<std::pair<float, float>> reference_cache::find(uint64_t key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void reference_cache::add(uint64_t key, float chosen, float rejected) {
  entries_[key] = {chosen, rejected};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(key));
  // Floats printed with 9 significant digits read back to the same float.
  std::fprintf(out_, "{\"key\":\"%s\",\"chosen\":%.9g,\"rejected\":%.9g}\n", hex, static_cast<double>(chosen),
               static_cast<double>(rejected));
  if (std::fflush(out_) != 0) throw io_error("cannot write " + file_.string() + ": " + std::strerror(errno));
}

}  // namespace mlxd::trainer
