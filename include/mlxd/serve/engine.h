// The engine loop: one thread owns the model and runs every sequence. HTTP threads submit requests (one or
// more sequences each) and read the results through a request_handle.
//
// Continuous batching: each loop iteration runs one forward pass over the running batch, in which every
// decoding sequence advances one token and prefilling sequences advance by chunks that together hold at most
// `prefill_chunk` prompt tokens (so a long prompt does not stall the others). Sequences join the batch at
// the next iteration and leave it when they finish or their request is cancelled, which frees their KV cache.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mlxd/models/llama.h"
#include "mlxd/serve/backend.h"
#include "mlxd/serve/metrics.h"

namespace mlxd::serve {

class engine final : public backend {
 public:
  // Starts the loop thread. `metrics` (optional) must outlive the engine.
  engine(std::shared_ptr<const models::llama_model> model, tokenizer tok, engine_options options,
         metrics* stats = nullptr);
  // Stops the loop; unfinished requests fail with "the server is shutting down".
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Queues the sequences of one request. Throws api_error 429 when the queue cannot take them all, and
  // api_error 400 for a prompt that is empty, holds an id outside the vocabulary or does not fit the context
  // with max_tokens, or for sampling parameters out of range.
  std::shared_ptr<request_handle> submit(std::vector<sequence_request> sequences) override;
  // The embedding of each token sequence (models::mean_pooled_embedding), computed on the loop thread between
  // two steps, one sequence per step, so that one thread owns the model and a large batch does not stall the
  // running sequences for long. Blocks until done. Throws api_error 400 for an empty sequence, an id outside
  // the vocabulary or more tokens than the context, and 503 when the engine stops first.
  std::vector<std::vector<float>> embed(const std::vector<std::vector<int32_t>>& inputs) override;
  // {"status": "ok", "node": {...}}: the loop runs as long as the engine exists; "node" describes this
  // process as /health describes a worker: "status" "up", "layers" (all of them, with the embedding and the
  // head) and "sequences" (the running batch).
  health_report health() override;

  const models::llama_config& config() const override { return model_->config(); }
  const tokenizer& tok() const override { return tok_; }

 private:
  struct sequence;
  void loop();
  void step(std::vector<std::unique_ptr<sequence>>& running);
  // Shares the running count and the KV positions they hold with health() and /metrics.
  void publish(const std::vector<std::unique_ptr<sequence>>& running);
  // Books the tokens just fed to `s`; once its prompt is in, samples from logits row `row` and sends the
  // event. Returns true when the sequence has finished.
  bool advance(sequence& s, size_t n_fed, const array& logits, int64_t row);

  std::shared_ptr<const models::llama_model> model_;
  tokenizer tok_;
  engine_options options_;
  metrics* stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<sequence>> queue_;
  std::deque<std::function<void()>> jobs_;  // embed() work, run by the loop between steps
  bool stopping_ = false;
  size_t n_running_ = 0;  // the running batch's size, as of the loop's last iteration
  std::thread thread_;
};

}  // namespace mlxd::serve
