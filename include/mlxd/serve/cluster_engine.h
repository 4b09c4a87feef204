// The backend of `mlxd serve --workers`: the model's decoder layers run on worker nodes through the pipeline
// coordinator (mlxd/dist/coordinator.h); this process keeps the tokenizer, the queue and each sequence's
// text. Up to max_running sequences generate at once, each on its own thread, and the coordinator interleaves
// their steps on its one stream per stage pair, so every stage works on some sequence while others wait.
// A request that is cancelled (client gone, timeout) or hits a stop string ends at the next token, and its
// KV caches are released on every worker before its thread takes the next sequence.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "mlxd/dist/coordinator.h"
#include "mlxd/serve/backend.h"
#include "mlxd/serve/metrics.h"

namespace mlxd::serve {

namespace detail {
class cluster_figures;
}

class cluster_engine final : public backend {
 public:
  // Takes over a coordinator whose plan is assigned; starts options.max_running generating threads.
  // `stats` (optional) must outlive the engine.
  cluster_engine(std::unique_ptr<dist::coordinator> coordinator, tokenizer tok, engine_options options,
                 metrics* stats = nullptr);
  // Stops every running sequence (released on the workers) and fails the waiting ones with 503.
  ~cluster_engine() override;
  cluster_engine(const cluster_engine&) = delete;
  cluster_engine& operator=(const cluster_engine&) = delete;

  // As backend::submit. A sequence the cluster cannot finish (no plan fits the workers left, a worker
  // refused a step) fails its request with 503 and the message; the request's other sequences stop.
  std::shared_ptr<request_handle> submit(std::vector<sequence_request> sequences) override;
  // As engine::embed, from the final-norm hidden states the pipeline's last stage returns
  // (coordinator::final_hidden), one input after another on the calling thread, beside the generating ones.
  // A cluster that cannot compute them (no plan fits, a worker refuses) is api_error 503.
  std::vector<std::vector<float>> embed(const std::vector<std::vector<int32_t>>& inputs) override;
  // Asks every worker (Hello): 200 "ok" when all answer, 200 "degraded" when some do (the coordinator
  // re-plans over those), 503 "unavailable" when none does; the body lists the plan in force (the
  // coordinator's, read live: a lost worker's plan is replaced without waiting for a request), how many
  // re-plans there were, and each worker.
  health_report health() override;
  // Per worker: up, sequences, KV and weight bytes, Hello latency; per stage node: decode compute seconds
  // and steps; the decode round trips, hops and time spent on them; re-plans, cancelled and failed sequences.
  std::string metrics_text() override;

  const models::llama_config& config() const override { return coordinator_->config(); }
  const tokenizer& tok() const override { return tok_; }

 private:
  struct sequence;
  void runner();
  void generate(sequence& s);

  std::unique_ptr<dist::coordinator> coordinator_;
  tokenizer tok_;
  engine_options options_;
  metrics* stats_;
  std::unique_ptr<detail::cluster_figures> figures_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  std::deque<std::unique_ptr<sequence>> queue_;
  size_t n_running_ = 0;
  int64_t kv_positions_ = 0;  // reserved by the running sequences on each stage
  std::vector<std::thread> runners_;
};

}  // namespace mlxd::serve
