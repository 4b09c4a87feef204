#include <cstdio>

#include "commands.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"

namespace mlxd::app {

void add_inspect_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("inspect", "list the tensors of a safetensors file or sharded checkpoint folder");
  auto path = std::make_shared<std::string>();
  auto stats = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "a .safetensors file, an index .json, or a folder holding either")
      ->required();
  cmd->add_flag("--stats", *stats, "also print min, max and mean of each float tensor");
  cmd->callback([path, stats] {
    const std::filesystem::path p(*path);
    const bool sharded = std::filesystem::is_directory(p) || p.extension() == ".json";
    const safetensors_file file =
        sharded ? (std::filesystem::is_directory(p) ? load_model_weights(p) : load_safetensors_index(p))
                : load_safetensors(p);
    for (const auto& [key, value] : file.metadata)
      std::printf("metadata %s = %s\n", key.c_str(), value.c_str());
    size_t total = 0;
    for (const auto& [tensor_name, t] : file.tensors) {
      std::printf("%s %s", tensor_name.c_str(), t.to_string().c_str());
      if (*stats && is_floating(t.type()) && t.size() > 0) {
        const array f = astype(t, dtype::f32);
        std::printf(" min %g max %g mean %g", min(f).item<double>(), max(f).item<double>(),
                    mean(f).item<double>());
      }
      std::printf("\n");
      total += t.nbytes();
    }
    std::printf("%zu tensors, %zu bytes\n", file.tensors.size(), total);
  });
}

}  // namespace mlxd::app
