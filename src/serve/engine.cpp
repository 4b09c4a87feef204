#include "mlxd/serve/engine.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>

#include "mlxd/core/ops.h"
#include "mlxd/core/thread_name.h"
#include "mlxd/models/embedding.h"
#include "mlxd/serve/api_error.h"
#include "mlxd/serve/text_stream.h"
#include "sequence_admission.h"
#include "sequence_output.h"

namespace mlxd::serve {
struct engine::sequence {
  sequence(std::shared_ptr<request_handle> h, int i, sequence_request s, const tokenizer& tok, int vocab,
           metrics* stats)
      : handle(std::move(h)), spec(std::move(s)), sampler(spec.sampling, vocab), out(i, spec, tok, stats) {}
  std::shared_ptr<request_handle> handle;
  sequence_request spec;
  mlxd::engine::sampler sampler;
  detail::sequence_output out;
  std::optional<models::kv_cache> cache;  // allocated when the sequence joins the running batch
  std::vector<int32_t> generated;
  int prefilled = 0;  // prompt tokens already in the cache
};

engine::engine(std::shared_ptr<const models::llama_model> model, tokenizer tok, engine_options options,
               metrics* stats)
    : model_(std::move(model)), tok_(std::move(tok)), options_(options), stats_(stats) {
  if (options_.max_running < 1 || options_.max_queued < 0 || options_.prefill_chunk < 1)
    throw std::invalid_argument("[engine] max_running and prefill_chunk must be at least 1, max_queued >= 0");
  thread_ = std::thread([this] {
    name_this_thread("mlxd-engine");
    loop();
  });
}

engine::~engine() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<request_handle> engine::submit(std::vector<sequence_request> sequences) {
  const int vocab = model_->config().vocab_size;
  detail::check_sequences(sequences, vocab, context_length());
  detail::ban_untokenizable(sequences, tok_, vocab);
  auto handle = std::make_shared<request_handle>(static_cast<int>(sequences.size()));
  std::vector<std::unique_ptr<sequence>> made;
  for (size_t i = 0; i < sequences.size(); ++i)
    made.push_back(std::make_unique<sequence>(handle, static_cast<int>(i), std::move(sequences[i]), tok_,
                                              vocab, stats_));
  {
    std::lock_guard lock(mu_);
    detail::enqueue(queue_, made, stopping_, n_running_, options_, stats_);
  }
  cv_.notify_all();
  return handle;
}

std::vector<std::vector<float>> engine::embed(const std::vector<std::vector<int32_t>>& inputs) {
  const int vocab = model_->config().vocab_size;
  detail::check_embedding_inputs(inputs, vocab, context_length());
  std::vector<std::future<std::vector<float>>> results;
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw api_error(503, "the server is shutting down", "server_error");
    for (const auto& tokens : inputs) {
      auto task = std::make_shared<std::packaged_task<std::vector<float>()>>(
          [this, tokens] { return models::mean_pooled_embedding(*model_, tokens); });
      results.push_back(task->get_future());
      jobs_.push_back([task] { (*task)(); });
    }
  }
  cv_.notify_all();
  std::vector<std::vector<float>> out;
  try {
    for (auto& r : results) out.push_back(r.get());
  } catch (const std::future_error&) {  // the loop stopped and dropped the jobs
    throw api_error(503, "the server is shutting down", "server_error");
  }
  return out;
}

health_report engine::health() {
  size_t running = 0;
  {
    std::lock_guard lock(mu_);
    running = n_running_;
  }
  const nlohmann::json layers = {
      {"begin", 0}, {"end", model_->config().n_layers}, {"embedding", true}, {"head", true}};
  return {200, {{"status", "ok"}, {"node", {{"status", "up"}, {"layers", layers}, {"sequences", running}}}}};
}

void engine::loop() {
  std::vector<std::unique_ptr<sequence>> running;
  for (;;) {
    std::vector<sequence*> joined;
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !running.empty() || !jobs_.empty(); });
      if (stopping_) break;
      if (!jobs_.empty()) {
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      while (!queue_.empty() && running.size() < static_cast<size_t>(options_.max_running)) {
        if (!queue_.front()->handle->cancelled()) {
          running.push_back(std::move(queue_.front()));
          joined.push_back(running.back().get());
        }
        queue_.pop_front();
      }
      n_running_ = running.size();
      if (stats_) stats_->queue_depth = static_cast<int64_t>(queue_.size());
    }
    for (sequence* s : joined) {
      try {
        s->cache.emplace(model_->make_cache(static_cast<int>(s->spec.prompt.size()) + s->spec.max_tokens,
                                            options_.kv_dtype));
      } catch (const std::exception& e) {  // out of memory for this one: refuse it, keep serving the others
        s->handle->fail(std::string("cannot allocate the KV cache: ") + e.what());
      }
    }
    std::erase_if(running, [](const auto& s) { return !s->cache; });
    // Published before the step, so no client sees a token of a sequence that /metrics does not count yet.
    publish(running);
    if (job) job();  // a packaged_task: what it throws reaches its caller
    step(running);
    publish(running);
  }
  std::lock_guard lock(mu_);
  jobs_.clear();  // their callers get a broken promise, which embed() reports as shutting down
  for (auto& s : running) s->handle->fail("the server is shutting down");
  for (auto& s : queue_) s->handle->fail("the server is shutting down");
}

void engine::publish(const std::vector<std::unique_ptr<sequence>>& running) {
  {
    std::lock_guard lock(mu_);
    n_running_ = running.size();
  }
  if (!stats_) return;
  int64_t positions = 0;
  for (const auto& s : running) positions += s->cache->capacity();
  stats_->kv_positions = positions;  // first: a reader that sees the count fall sees the positions fall
  stats_->running_sequences = static_cast<int64_t>(running.size());
}

void engine::step(std::vector<std::unique_ptr<sequence>>& running) {
  std::erase_if(running, [](const auto& s) { return s->handle->cancelled(); });
  std::vector<std::vector<int32_t>> tokens;
  std::vector<models::kv_cache*> caches;
  std::vector<sequence*> batch;
  int budget = options_.prefill_chunk;
  for (auto& s : running) {
    const int left = static_cast<int>(s->spec.prompt.size()) - s->prefilled;
    if (left > 0 && budget == 0) continue;
    if (left > 0) {
      const int n = std::min(left, budget);
      budget -= n;
      tokens.emplace_back(s->spec.prompt.begin() + s->prefilled, s->spec.prompt.begin() + s->prefilled + n);
    } else {
      tokens.push_back({s->generated.back()});
    }
    caches.push_back(&*s->cache);
    batch.push_back(s.get());
  }
  if (batch.empty()) return;
  array logits;  // [n_seqs, vocab]
  try {
    logits = model_->forward_batch(tokens, caches);
  } catch (const std::exception& e) {
    for (sequence* s : batch) s->handle->fail(std::string("the model failed: ") + e.what());
    std::erase_if(running, [&](const auto& s) {
      return std::find(batch.begin(), batch.end(), s.get()) != batch.end();
    });
    return;
  }
  std::vector<sequence*> finished;
  for (size_t b = 0; b < batch.size(); ++b) {
    sequence& s = *batch[b];
    try {
      if (advance(s, tokens[b].size(), logits, static_cast<int64_t>(b))) finished.push_back(&s);
    } catch (const std::exception& e) {
      // E.g. a sampled id the tokenizer does not know: this request fails, its other sequences stop.
      s.handle->fail(std::string("generation failed: ") + e.what());
      s.handle->cancel();
      finished.push_back(&s);
    }
  }
  std::erase_if(running, [&](const auto& s) {
    return std::find(finished.begin(), finished.end(), s.get()) != finished.end();
  });
}

bool engine::advance(sequence& s, size_t n_fed, const array& logits, int64_t row_index) {
  if (s.prefilled < static_cast<int>(s.spec.prompt.size())) {
    s.prefilled += static_cast<int>(n_fed);
    if (stats_) stats_->prompt_tokens += n_fed;
    if (s.prefilled < static_cast<int>(s.spec.prompt.size())) return false;
  }
  const array row = contiguous(slice_axis(logits, 0, row_index, row_index + 1));  // [1, vocab]
  mlxd::engine::sample_result r =
      s.sampler.sample({row.data<float>(), static_cast<size_t>(row.size())}, s.generated);
  s.generated.push_back(r.id);
  sequence_event ev = s.out.add(std::move(r));
  const bool finished = !ev.finish_reason.empty();
  s.handle->push(std::move(ev));
  return finished;
}

}  // namespace mlxd::serve
