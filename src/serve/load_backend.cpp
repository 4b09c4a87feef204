// Which backend `mlxd serve` runs: the whole model here, or its layers on the workers of --workers.
#include "mlxd/models/llama.h"
#include "mlxd/serve/cluster_engine.h"
#include "mlxd/serve/engine.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"
#include "server_state.h"

namespace mlxd::serve::detail {

std::shared_ptr<backend> load_backend(const server_options& o, metrics* stats) {
  const std::string tokenizer_path = o.tokenizer_path.empty() ? o.model_path : o.tokenizer_path;
  if (o.cluster) {
    if (o.mmap)
      throw std::invalid_argument("--mmap is not supported with --workers (the workers load the model)");
    tokenizer tok = load_tokenizer(tokenizer_path);  // before the workers load anything
    dist::coordinator_options co = *o.cluster;
    co.prefill_chunk = o.engine.prefill_chunk;
    auto c = std::make_unique<dist::coordinator>(o.model_path, std::move(co));
    return std::make_shared<cluster_engine>(std::move(c), std::move(tok), o.engine, stats);
  }
  auto model =
      std::make_shared<const models::llama_model>(models::load_llama(o.model_path, {.mmap = o.mmap}));
  tokenizer tok = load_tokenizer(tokenizer_path);
  return std::make_shared<engine>(std::move(model), std::move(tok), o.engine, stats);
}

}  // namespace mlxd::serve::detail
