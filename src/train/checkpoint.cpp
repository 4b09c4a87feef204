#include "mlxd/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "io/atomic_file.h"
#include "io/posix_file.h"
#include "mlxd/io/io_error.h"
#include "mlxd/io/safetensors.h"
#include "train/checkpoint_manifest.h"

namespace mlxd::train {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPrefix = "step-";

[[noreturn]] void throw_fs(const std::string& what, const fs::path& path, const std::error_code& ec) {
  throw io_error("checkpoint: " + path.string() + ": " + what + ": " + ec.message());
}

// Makes a directory entry (a created or removed child) durable.
void fsync_dir(const fs::path& dir) {
  const std::string context = "checkpoint: " + dir.string();
  mlxd::detail::unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) mlxd::detail::throw_errno(context, "cannot open directory to fsync it", errno);
  while (::fsync(fd.get()) != 0) {
    if (errno != EINTR) mlxd::detail::throw_errno(context, "directory fsync failed", errno);
  }
}

// The step a directory name encodes, when it is exactly checkpoint_dir_name(step).
std::optional<int64_t> parse_step(const std::string& name) {
  if (!name.starts_with(kPrefix) || name.size() != kPrefix.size() + 10) return std::nullopt;
  int64_t step = 0;
  for (char c : name.substr(kPrefix.size())) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

struct entry {
  int64_t step;
  fs::path dir;
  bool complete;
};

// Checkpoint directories under root, newest first.
std::vector<entry> list_checkpoints(const fs::path& root) {
  std::vector<entry> out;
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return out;
    throw_fs("cannot list", root, ec);
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw_fs("cannot list", root, ec);
    const auto step = parse_step(it->path().filename().string());
    if (!step || !it->is_directory(ec)) continue;
    out.push_back({*step, it->path(), is_complete_checkpoint(it->path())});
  }
  std::sort(out.begin(), out.end(), [](const entry& a, const entry& b) { return a.step > b.step; });
  return out;
}

// Removes the manifest first, so a crash part-way leaves an incomplete directory, never a damaged complete
// one.
void remove_checkpoint(const fs::path& dir) {
  std::error_code ec;
  fs::remove(dir / detail::kManifestName, ec);
  if (ec) throw_fs("cannot remove manifest", dir, ec);
  fs::remove_all(dir, ec);
  if (ec) throw_fs("cannot remove", dir, ec);
}

void prune(const fs::path& root, int64_t saved_step, int keep_last) {
  int kept = 0;
  bool removed = false;
  for (const entry& e : list_checkpoints(root)) {
    if (e.complete && kept < keep_last) {
      ++kept;
    } else if (e.complete || e.step < saved_step) {
      remove_checkpoint(e.dir);
      removed = true;
    }
  }
  if (removed) fsync_dir(root);
}

uint64_t size_of(const fs::path& path) {
  std::error_code ec;
  const uint64_t n = fs::file_size(path, ec);
  if (ec) throw_fs("cannot read size", path, ec);
  return n;
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  if (step < 0) throw std::invalid_argument("[checkpoint_dir_name] step must be >= 0");
  if (step > 9'999'999'999) throw std::invalid_argument("[checkpoint_dir_name] step above 9999999999");
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%010lld", static_cast<long long>(step));
  return buf;
}

fs::path save_checkpoint(const fs::path& root, const checkpoint_state& state,
                         const checkpoint_options& options) {
  if (options.keep_last < 1) throw std::invalid_argument("[save_checkpoint] keep_last must be >= 1");
  if (state.schedule_step < 0) throw std::invalid_argument("[save_checkpoint] schedule_step must be >= 0");
  detail::manifest m;
  m.step = state.step;
  m.schedule_step = state.schedule_step;
  m.optimizer_name = state.optimizer_name;
  m.rng = state.rng;
  m.data_cursor = state.data_cursor;
  manifest_to_json(m);  // validates the data cursor before anything is touched
  const fs::path dir = root / checkpoint_dir_name(state.step);
  auto notify = [&](std::string_view file) {
    if (options.after_file) options.after_file(file);
  };

  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw_fs("cannot create directory", root, ec);
  if (fs::exists(dir, ec)) remove_checkpoint(dir);
  fs::create_directory(dir, ec);
  if (ec) throw_fs("cannot create directory", dir, ec);
  fsync_dir(root);

  save_safetensors(dir / detail::kWeightsName, state.weights);
  m.files[detail::kWeightsName] = size_of(dir / detail::kWeightsName);
  notify(detail::kWeightsName);
  std::map<std::string, std::string> meta;
  if (!state.optimizer_name.empty()) meta["optimizer"] = state.optimizer_name;
  save_safetensors(dir / detail::kOptimizerName, state.optimizer_state, meta);
  m.files[detail::kOptimizerName] = size_of(dir / detail::kOptimizerName);
  notify(detail::kOptimizerName);

  const std::string text = detail::manifest_to_json(m);
  mlxd::detail::atomic_file manifest(dir / detail::kManifestName, "checkpoint: " + dir.string());
  manifest.write(text.data(), text.size());
  manifest.commit();
  notify(detail::kManifestName);

  prune(root, state.step, options.keep_last);
  return dir;
}

bool is_complete_checkpoint(const fs::path& dir) {
  try {
    detail::check_manifest_files(dir, detail::read_manifest(dir));
    return true;
  } catch (const io_error&) {
    return false;
  }
}

std::optional<fs::path> latest_complete_checkpoint(const fs::path& root) {
  for (const entry& e : list_checkpoints(root)) {
    if (e.complete) return e.dir;
  }
  return std::nullopt;
}

checkpoint_state load_checkpoint(const fs::path& dir) {
  const detail::manifest m = detail::read_manifest(dir);
  detail::check_manifest_files(dir, m);
  checkpoint_state state;
  state.step = m.step;
  state.schedule_step = m.schedule_step;
  state.optimizer_name = m.optimizer_name;
  state.rng = m.rng;
  state.data_cursor = m.data_cursor;
  state.weights = load_safetensors(dir / detail::kWeightsName).tensors;
  state.optimizer_state = load_safetensors(dir / detail::kOptimizerName).tensors;
  return state;
}

}  // namespace mlxd::train
