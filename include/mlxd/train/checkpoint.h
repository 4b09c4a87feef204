// Training checkpoints: one directory per step under a root, "<root>/step-<10-digit step>/", holding
//   weights.safetensors    the model's parameters
//   optimizer.safetensors  the optimizer's state (optimizer::state()); metadata "optimizer" = its name
//   manifest.json          step, schedule step, RNG key, the trainer's data cursor, and each file's size
// Every file is written to a temporary file, fsynced and renamed (the io module's atomic writes). The
// manifest is written last: a directory without one, or whose manifest names a missing file or one of another
// size, is incomplete and ignored, so a run killed during a save resumes from the previous complete
// checkpoint. Functions here throw mlxd::io_error for file-system failures and malformed checkpoints, and
// std::invalid_argument for bad arguments. Not safe to call concurrently on the same root.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "mlxd/core/array.h"
#include "mlxd/core/random.h"

namespace mlxd::train {

struct checkpoint_state {
  int64_t step = 0;           // optimizer steps taken
  int64_t schedule_step = 0;  // the position the lr schedule resumes from (usually == step)
  std::map<std::string, array> weights;
  std::map<std::string, array> optimizer_state;
  std::string optimizer_name;  // e.g. "adamw"; may be empty
  random::key rng;             // the trainer's RNG key (dropout, sampling)
  std::string data_cursor =
      "null";  // JSON the trainer uses to resume its data stream (load returns it compact)
};

struct checkpoint_options {
  int keep_last = 3;  // complete checkpoints kept after a save (>= 1); older ones are deleted
  // Called after each file of a save is in place, with its name ("weights.safetensors",
  // "optimizer.safetensors", then "manifest.json"). Lets tests stop a save at a known point.
  std::function<void(std::string_view file)> after_file = nullptr;
};

// Directory name for a step: "step-0000000042".
std::string checkpoint_dir_name(int64_t step);

// Writes `state` as "<root>/step-N" (creating root if needed; an existing step-N directory is replaced), then
// deletes all but the newest keep_last complete checkpoints and any incomplete ones older than this one.
// data_cursor must be valid JSON. Returns the checkpoint's directory.
std::filesystem::path save_checkpoint(const std::filesystem::path& root, const checkpoint_state& state,
                                      const checkpoint_options& options = {});

// True when `dir` holds a manifest that parses and whose files all exist with the sizes it lists.
bool is_complete_checkpoint(const std::filesystem::path& dir);

// The complete checkpoint with the highest step under `root`, or nullopt when there is none (or no root).
std::optional<std::filesystem::path> latest_complete_checkpoint(const std::filesystem::path& root);

// Loads the checkpoint in `dir` (a step directory). Throws io_error if it is incomplete or malformed.
checkpoint_state load_checkpoint(const std::filesystem::path& dir);

}  // namespace mlxd::train
