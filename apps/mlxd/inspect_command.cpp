#include <cstdio>

#include "commands.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/gguf.h"
#include "mlxd/io/safetensors.h"

namespace mlxd::app {

namespace {

void print_stats(const array& t) {
  if (!is_floating(t.type()) || t.size() == 0) return;
  const array f = astype(t, dtype::f32);
  std::printf(" min %g max %g mean %g", min(f).item<double>(), max(f).item<double>(), mean(f).item<double>());
}

// Metadata (arrays summarised by element type and length) and tensor infos; with `stats`, the tensors of
// types mlxd loads are read for their statistics.
void inspect_gguf(const std::filesystem::path& p, bool stats) {
  const gguf_file file = load_gguf(p, {.read_tensors = stats});
  std::printf("gguf version %u, alignment %llu, %zu metadata keys, %zu tensors\n", file.version,
              static_cast<unsigned long long>(file.alignment), file.metadata.size(),
              file.tensor_infos.size());
  for (const auto& [key, value] : file.metadata) {
    std::printf("metadata %s %s = %s\n", key.c_str(), std::string(gguf_type_name(value.type())).c_str(),
                describe(value).c_str());
  }
  uint64_t total = 0;
  for (const gguf_tensor_info& t : file.tensor_infos) {
    std::printf("%s %s%s offset %llu bytes %llu", t.name.c_str(), std::string(t.type_name).c_str(),
                shape_to_string(t.shape).c_str(), static_cast<unsigned long long>(t.offset),
                static_cast<unsigned long long>(t.nbytes));
    if (const auto it = file.tensors.find(t.name); it != file.tensors.end()) print_stats(it->second);
    std::printf("\n");
    total += t.nbytes;
  }
  std::printf("%zu tensors, %llu bytes\n", file.tensor_infos.size(), static_cast<unsigned long long>(total));
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "inspect", "list the tensors and metadata of a safetensors or GGUF file or sharded checkpoint folder");
  auto path = std::make_shared<std::string>();
  auto stats = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "a .safetensors or .gguf file, an index .json, or a folder holding either")
      ->required();
  cmd->add_flag("--stats", *stats, "also print min, max and mean of each float tensor");
  cmd->callback([path, stats] {
    const std::filesystem::path p(*path);
    if (p.extension() == ".gguf") return inspect_gguf(p, *stats);
    const bool sharded = std::filesystem::is_directory(p) || p.extension() == ".json";
    const safetensors_file file =
        sharded ? (std::filesystem::is_directory(p) ? load_model_weights(p) : load_safetensors_index(p))
                : load_safetensors(p);
    for (const auto& [key, value] : file.metadata)
      std::printf("metadata %s = %s\n", key.c_str(), value.c_str());
    size_t total = 0;
    for (const auto& [tensor_name, t] : file.tensors) {
      std::printf("%s %s", tensor_name.c_str(), t.to_string().c_str());
      if (*stats) print_stats(t);
      std::printf("\n");
      total += t.nbytes();
    }
    std::printf("%zu tensors, %zu bytes\n", file.tensors.size(), total);
  });
}

}  // namespace mlxd::app
