// What the HTTP routes generate with: the model on this node (engine.h, one loop with continuous batching)
// or the model's layers on worker nodes (cluster_engine.h, through the pipeline coordinator). The routes see
// only this interface, so every endpoint behaves the same whichever runs the model.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mlxd/core/dtype.h"
#include "mlxd/engine/sampler.h"
#include "mlxd/models/llama_config.h"
#include "mlxd/serve/request_handle.h"
#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd::serve {

struct sequence_request {
  std::vector<int32_t> prompt;  // non-empty; prompt.size() + max_tokens <= the context length
  int max_tokens = 16;
  mlxd::engine::sampling_params sampling;
  std::vector<std::string> stop;  // stop strings (cut from the text)
};

struct engine_options {
  int max_running = 16;         // sequences generated at once
  int max_queued = 64;          // sequences waiting for a place; a request that would make more wait gets 429
  int prefill_chunk = 128;      // prompt tokens per step (the local loop: over all prefilling sequences)
  dtype kv_dtype = dtype::f32;  // what the local loop's KV caches store (f16: half the memory)
};

// GET /health: the HTTP status and the JSON body ({"status": ...} and what the backend adds).
struct health_report {
  int status = 200;
  nlohmann::json body;
};

class backend {
 public:
  virtual ~backend() = default;

  // Queues the sequences of one request; their events arrive through the handle, and cancelling it stops
  // them and frees their KV caches. Throws api_error 429 when the queue cannot take them all, and 400 for a
  // prompt that is empty, holds an id outside the vocabulary or does not fit the context with max_tokens, or
  // for sampling parameters out of range. Thread-safe.
  virtual std::shared_ptr<request_handle> submit(std::vector<sequence_request> sequences) = 0;
  // The mean-pooled embedding of each token sequence (models::mean_pooled_embedding). Blocks until done.
  // Throws api_error 400 for bad inputs, 503 when the backend stops or cannot compute them.
  virtual std::vector<std::vector<float>> embed(const std::vector<std::vector<int32_t>>& inputs) = 0;
  // GET /health once loaded. May take a moment (the cluster asks its workers); thread-safe.
  virtual health_report health() = 0;
  // Prometheus text lines added to GET /metrics (after the server's own); thread-safe.
  virtual std::string metrics_text() { return {}; }

  virtual const models::llama_config& config() const = 0;
  virtual const tokenizer& tok() const = 0;
  int context_length() const { return config().max_position_embeddings; }
};

}  // namespace mlxd::serve
