#include "mlxd/serve/cluster_engine.h"

#include "cluster_figures.h"
#include "mlxd/core/thread_name.h"
#include "mlxd/dist/plan.h"
#include "mlxd/models/embedding.h"
#include "mlxd/serve/api_error.h"
#include "sequence_admission.h"
#include "sequence_output.h"

namespace mlxd::serve {

struct cluster_engine::sequence {
  sequence(std::shared_ptr<request_handle> h, int i, sequence_request s, const tokenizer& tok, metrics* stats)
      : handle(std::move(h)), spec(std::move(s)), out(i, spec, tok, stats) {}
  std::shared_ptr<request_handle> handle;
  sequence_request spec;
  detail::sequence_output out;
};

cluster_engine::cluster_engine(std::unique_ptr<dist::coordinator> coordinator, tokenizer tok,
                               engine_options options, metrics* stats)
    : coordinator_(std::move(coordinator)),
      tok_(std::move(tok)),
      options_(options),
      stats_(stats),
      figures_(std::make_unique<detail::cluster_figures>()) {
  if (!coordinator_) throw std::invalid_argument("[cluster_engine] no coordinator");
  if (options_.max_running < 1 || options_.max_queued < 0)
    throw std::invalid_argument("[cluster_engine] max_running must be at least 1, max_queued >= 0");
  for (int i = 0; i < options_.max_running; ++i)
    runners_.emplace_back([this, i] {
      name_this_thread("mlxd-runner-" + std::to_string(i));
      runner();
    });
}

cluster_engine::~cluster_engine() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& s : queue_) s->handle->fail("the server is shutting down", 503);
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : runners_) t.join();
}

std::shared_ptr<request_handle> cluster_engine::submit(std::vector<sequence_request> sequences) {
  const int vocab = config().vocab_size;
  detail::check_sequences(sequences, vocab, context_length());
  detail::ban_untokenizable(sequences, tok_, vocab);
  auto handle = std::make_shared<request_handle>(static_cast<int>(sequences.size()));
  std::vector<std::unique_ptr<sequence>> made;
  for (size_t i = 0; i < sequences.size(); ++i)
    made.push_back(
        std::make_unique<sequence>(handle, static_cast<int>(i), std::move(sequences[i]), tok_, stats_));
  {
    std::lock_guard lock(mu_);
    detail::enqueue(queue_, made, stopping_, n_running_, options_, stats_);
  }
  cv_.notify_all();
  return handle;
}

std::vector<std::vector<float>> cluster_engine::embed(const std::vector<std::vector<int32_t>>& inputs) {
  detail::check_embedding_inputs(inputs, config().vocab_size, context_length());
  std::vector<std::vector<float>> out;
  for (const auto& tokens : inputs) {
    if (stopping_) throw api_error(503, "the server is shutting down", "server_error");
    try {
      out.push_back(models::mean_pooled(coordinator_->final_hidden(tokens)));
    } catch (const std::invalid_argument& e) {
      throw bad_request(e.what(), "input");
    } catch (const dist::plan_error& e) {
      throw api_error(503, std::string("the cluster cannot serve this request: ") + e.what(), "server_error");
    } catch (const std::exception& e) {
      throw api_error(503, std::string("the cluster failed this request: ") + e.what(), "server_error");
    }
  }
  return out;
}

void cluster_engine::runner() {
  for (;;) {
    std::unique_ptr<sequence> s;
    int64_t positions = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      s = std::move(queue_.front());
      queue_.pop_front();
      if (s->handle->cancelled()) continue;
      positions = static_cast<int64_t>(s->spec.prompt.size()) + s->spec.max_tokens;
      ++n_running_;
      kv_positions_ += positions;
      if (stats_) {
        stats_->queue_depth = static_cast<int64_t>(queue_.size());
        stats_->running_sequences = static_cast<int64_t>(n_running_);
        stats_->kv_positions = kv_positions_;
      }
    }
    generate(*s);
    std::lock_guard lock(mu_);
    --n_running_;
    kv_positions_ -= positions;
    if (stats_) {
      stats_->kv_positions = kv_positions_;
      stats_->running_sequences = static_cast<int64_t>(n_running_);
    }
  }
}

void cluster_engine::generate(sequence& s) {
  dist::generation_request r;
  r.prompt = s.spec.prompt;
  r.max_tokens = s.spec.max_tokens;
  r.sampling = s.spec.sampling;
  r.stop_ids = tok_.eos_ids();
  bool prefilled = false;
  r.on_token = [&](const mlxd::engine::sample_result& t) {
    if (!prefilled && stats_) stats_->prompt_tokens += s.spec.prompt.size();
    prefilled = true;
    s.handle->push(s.out.add(t));
  };
  // Checked before every step: a finished sequence (stop string), a cancelled request and shutdown all end
  // the generation, which releases the sequence on every worker.
  r.stop_requested = [&] { return s.out.finished() || s.handle->cancelled() || stopping_; };
  try {
    const dist::generation_result g = coordinator_->generate(r);
    figures_->record(g);
    if (s.out.finished()) return;
    if (s.handle->cancelled()) {
      figures_->count_cancelled();
      return;
    }
    s.handle->fail("the server is shutting down", 503);
  } catch (const std::invalid_argument& e) {
    s.handle->fail(e.what(), 400);
    s.handle->cancel();
  } catch (const dist::plan_error& e) {
    figures_->count_failed();
    s.handle->fail(std::string("the cluster cannot serve this request: ") + e.what(), 503);
    s.handle->cancel();  // the request's other sequences stop too
  } catch (const std::exception& e) {
    figures_->count_failed();
    s.handle->fail(std::string("the cluster failed this request: ") + e.what(), 503);
    s.handle->cancel();
  }
}

health_report cluster_engine::health() {
  const std::vector<dist::node_status> nodes = coordinator_->status(1);
  nlohmann::json workers = nlohmann::json::array();
  size_t up = 0;
  for (const dist::node_status& n : nodes) {
    nlohmann::json w = {{"address", n.address}, {"status", n.healthy ? "up" : "down"}};
    if (n.healthy) {
      ++up;
      w["node_id"] = n.node_id;
      w["latency_ms"] = n.latency_ms;
      w["sequences"] = n.n_sequences;
      w["kv_bytes"] = n.kv_bytes;
      w["weight_bytes"] = n.weight_bytes;
      if (n.plan_id != 0)
        w["layers"] = {{"begin", n.layers.layer_begin},
                       {"end", n.layers.layer_end},
                       {"embedding", n.layers.embedding},
                       {"head", n.layers.head}};
    } else {
      w["error"] = n.error;
    }
    workers.push_back(std::move(w));
  }
  const char* status = up == nodes.size() ? "ok" : up > 0 ? "degraded" : "unavailable";
  nlohmann::json body = {{"status", status},
                         {"plan", coordinator_->plan_description()},
                         {"replans", coordinator_->n_replans()},
                         {"workers", std::move(workers)}};
  // Where `mlxd worker --join` reaches this server (`--cluster-port`), when it listens for joins.
  if (coordinator_->join_port() > 0) body["cluster_port"] = coordinator_->join_port();
  return {up > 0 ? 200 : 503, std::move(body)};
}

std::string cluster_engine::metrics_text() {
  return figures_->render(coordinator_->status(1), coordinator_->n_replans());
}

}  // namespace mlxd::serve
