#include "dist/stage_service.h"

#include <algorithm>
#include <filesystem>

#include "dist/local_link.h"
#include "dist/stage_rpc.h"
#include "mlxd/core/ops.h"
#include "mlxd/dist/plan.h"

namespace mlxd::dist {
namespace {

std::string mib(uint64_t bytes) {
  return std::to_string((bytes + (1 << 19)) >> 20) + " MiB";
}

// The files a stage is read from, each with its size and modification time: equal fingerprints mean the
// same weights (a model replaced on disk is loaded again).
std::string files_fingerprint(const std::filesystem::path& path) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(path, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(path, ec))
      if (e.is_regular_file(ec)) files.push_back(e.path());
  } else {
    files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& f : files) {
    const auto size = std::filesystem::file_size(f, ec);
    const auto time = std::filesystem::last_write_time(f, ec).time_since_epoch().count();
    out += f.string() + ":" + std::to_string(ec ? 0 : size) + ":" + std::to_string(time) + ";";
  }
  return out;
}

// The same layers of the same model: an assignment that differs from the one held only in plan id and next
// stage.
bool same_stage(const v1::Assignment& a, const v1::Assignment& b) {
  return a.model_path() == b.model_path() && a.weights_hash() == b.weights_hash() &&
         a.layer_begin() == b.layer_begin() && a.layer_end() == b.layer_end() &&
         a.embedding() == b.embedding() && a.head() == b.head();
}

}  // namespace

stage_service::stage_service(const worker_options& o, std::string node_id, worker_capabilities caps)
    : options_(o),
      cache_(o.cache_dir.empty() ? default_weights_cache_dir() : o.cache_dir),
      node_id_(std::move(node_id)),
      caps_(caps),
      host_id_(host_id()) {}

grpc::Status stage_service::hello(const grpc::ServerContext& ctx, const v1::StageHelloRequest& request,
                                  v1::StageHelloReply* reply) {
  grpc::Status s = rpc::admit(ctx, options_.cluster_token);
  if (!s.ok()) return s;
  if (request.protocol_major() != rpc::protocol_major)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the caller speaks mlxd stage protocol " +
                rpc::version_string(request.protocol_major(), request.protocol_minor()) +
                " and this worker " + rpc::version_string(rpc::protocol_major, rpc::protocol_minor)};
  reply->set_protocol_major(rpc::protocol_major);
  reply->set_protocol_minor(rpc::protocol_minor);
  reply->set_node_id(node_id_);
  v1::Capabilities* caps = reply->mutable_capabilities();
  caps->set_cores(caps_.cores);
  caps->set_memory_bytes(caps_.memory_bytes);
  caps->set_gflops(caps_.gflops);
  caps->add_features("stage");
  std::lock_guard lock(mu_);
  if (stage_) {
    *reply->mutable_assignment() = stage_->assignment;
    reply->set_weight_bytes(stage_->weight_bytes);
  }
  reply->set_kv_bytes(kv_bytes_);
  reply->set_n_sequences(static_cast<uint32_t>(sequences_.size()));
  reply->set_loads(loads_);
  reply->set_layers_read(layers_read_);
  reply->set_host_id(host_id_);
  reply->set_local_links(local_links_.load());
  return grpc::Status::OK;
}

grpc::Status stage_service::assign(const grpc::ServerContext& ctx, const v1::Assignment& request,
                                   v1::AssignReply* reply) {
  grpc::Status s = rpc::admit(ctx, options_.cluster_token);
  if (!s.ok()) return s;
  if (request.plan_id() == 0) return {grpc::StatusCode::INVALID_ARGUMENT, "an assignment needs a plan id"};
  std::lock_guard assign_lock(assign_mu_);
  std::shared_ptr<loaded> held;
  {
    std::lock_guard lock(mu_);  // a new plan replaces the old one, and its sequences
    held = std::move(stage_);
    stage_.reset();
    sequences_.clear();
    kv_bytes_ = 0;
  }
  std::string model_path = request.model_path();
  if (!request.weights_hash().empty()) {
    const auto entry = cache_.find(request.weights_hash());
    if (!entry)
      return {grpc::StatusCode::NOT_FOUND, "weights " + request.weights_hash() + " are not in " + node_id_ +
                                               "'s cache " + cache_.dir().string()};
    model_path = entry->string();
  }
  try {
    const models::llama_config config = models::load_llama_config_any(model_path);
    const models::llama_stage range{request.layer_begin(), request.layer_end(), request.embedding(),
                                    request.head()};
    models::check_stage(config, range);
    const uint64_t bytes = stage_weight_bytes(config, range);
    if (bytes > caps_.memory_bytes)
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "layers " + std::to_string(range.layer_begin) + "-" + std::to_string(range.layer_end - 1) +
                  " need " + mib(bytes) + " but " + node_id_ + " offers " + mib(caps_.memory_bytes)};
    auto st = std::make_shared<loaded>();
    st->assignment = request;
    st->files = files_fingerprint(model_path);
    st->weight_bytes = bytes;
    const bool same_files = held && held->files == st->files;
    const bool keep = same_files && same_stage(held->assignment, request);
    // Layers of the held range that the new one keeps (a range that grows in a partial re-plan): shared,
    // not read again. Without any, the held stage's memory is free before the new range loads.
    const int shared = same_files
                           ? std::max(0, std::min(held->assignment.layer_end(), range.layer_end) -
                                             std::max(held->assignment.layer_begin(), range.layer_begin))
                           : 0;
    if (keep) {
      st->model = held->model;
    } else {
      if (shared == 0) held.reset();
      st->model = std::make_shared<const models::llama_model>(
          models::load_llama_stage(model_path, range, held ? held->model.get() : nullptr));
      held.reset();
    }
    std::lock_guard lock(mu_);
    if (!keep) {
      ++loads_;
      layers_read_ += static_cast<uint64_t>(range.n_layers() - shared);
    }
    stage_ = st;
    reply->set_weight_bytes(bytes);
    reply->set_carriers(true);
    reply->set_rings(true);
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INVALID_ARGUMENT, std::string("cannot load the assignment: ") + e.what()};
  }
}

grpc::Status stage_service::upload(const grpc::ServerContext& ctx,
                                   const std::function<bool(v1::WeightsChunk*)>& read,
                                   v1::UploadReply* reply) {
  grpc::Status s = rpc::admit(ctx, options_.cluster_token);
  if (!s.ok()) return s;
  try {
    weights_cache::receiver in(cache_, caps_.memory_bytes);
    v1::WeightsChunk c;
    while (read(&c)) in.add(c.hash(), c.file(), c.file_bytes(), c.offset(), c.data());
    reply->set_bytes(in.commit());
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INVALID_ARGUMENT, std::string("weights upload refused: ") + e.what()};
  }
}

std::shared_ptr<stage_service::sequence> stage_service::open_sequence(const loaded& st,
                                                                      const v1::StepRequest& req) {
  const models::llama_config& c = st.model->config();
  if (req.position() != 0) {
    std::lock_guard lock(mu_);
    auto it = sequences_.find(req.sequence_id());
    if (it == sequences_.end())
      throw std::invalid_argument("sequence " + std::to_string(req.sequence_id()) +
                                  " is unknown here (ended, idle past the timeout, or never started)");
    return it->second;
  }
  if (req.capacity() < 1 || req.capacity() > c.max_position_embeddings)
    throw std::invalid_argument("capacity " + std::to_string(req.capacity()) + " is outside 1.." +
                                std::to_string(c.max_position_embeddings));
  for (int32_t id : req.history())
    if (id < 0 || id >= c.vocab_size)
      throw std::invalid_argument("history token " + std::to_string(id) + " is outside the vocabulary");
  const uint64_t bytes =
      kv_bytes_per_position(c, st.model->stage().n_layers()) * static_cast<uint64_t>(req.capacity());
  drop_sequence(req.sequence_id());  // a re-prefill starts over
  {
    std::lock_guard lock(mu_);
    const uint64_t room = caps_.memory_bytes - std::min(caps_.memory_bytes, st.weight_bytes);
    if (kv_bytes_ + bytes > room)
      throw std::invalid_argument("no KV cache space on " + node_id_ + ": sequence " +
                                  std::to_string(req.sequence_id()) + " needs " + mib(bytes) + ", " +
                                  mib(room - std::min(room, kv_bytes_)) + " of " + mib(room) + " are free (" +
                                  std::to_string(sequences_.size()) + " sequences hold the rest)");
    kv_bytes_ += bytes;  // reserved before the cache is allocated
  }
  std::shared_ptr<sequence> seq;
  try {
    seq = std::make_shared<sequence>(st.model->make_cache(req.capacity()));
    if (st.model->stage().head) {
      seq->sampler.emplace(rpc::from_proto(req.sampling()), c.vocab_size);
      seq->history.assign(req.history().begin(), req.history().end());
      seq->sampler->set_step(seq->history.size());
    }
  } catch (...) {
    std::lock_guard lock(mu_);
    kv_bytes_ -= bytes;
    throw;
  }
  seq->bytes = bytes;
  std::lock_guard lock(mu_);
  sequences_[req.sequence_id()] = seq;
  return seq;
}

bool stage_service::holds_sequence(uint64_t id) {
  std::lock_guard lock(mu_);
  return sequences_.contains(id);
}

void stage_service::drop_sequence(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  kv_bytes_ -= it->second->bytes;
  sequences_.erase(it);
}

void stage_service::evict_idle() {
  std::lock_guard lock(mu_);
  const auto now = clock::now();
  for (auto it = sequences_.begin(); it != sequences_.end();) {
    if (now - it->second->last_used.load() > options_.kv_idle_timeout) {
      kv_bytes_ -= it->second->bytes;
      it = sequences_.erase(it);
    } else {
      ++it;
    }
  }
}

stage_service::step_input stage_service::prepare(const loaded& st, const v1::StepRequest& req) {
  const models::llama_model& m = *st.model;
  step_input in{open_sequence(st, req), array()};
  in.seq->last_used = clock::now();
  if (in.seq->cache.length() != req.position())
    throw std::invalid_argument("sequence " + std::to_string(req.sequence_id()) + " is at position " +
                                std::to_string(in.seq->cache.length()) + " here, the step is for position " +
                                std::to_string(req.position()));
  if (m.stage().embedding) {
    if (req.tokens_size() == 0) throw std::invalid_argument("the first stage needs token ids");
    in.x = m.embed(std::vector<int32_t>(req.tokens().begin(), req.tokens().end()));
  } else {
    if (!req.has_hidden()) throw std::invalid_argument("the step carries no hidden states");
    const std::string why = rpc::from_chunk(req.hidden(), in.x);
    if (!why.empty()) throw std::invalid_argument("hidden states: " + why);
  }
  return in;
}

std::optional<array> stage_service::finish(const loaded& st, const v1::StepRequest& req, sequence& seq,
                                           const array& y, v1::StepReply& reply) {
  const models::llama_model& m = *st.model;
  if (!m.stage().head) return y;
  if (req.want_logits()) rpc::to_chunk(m.head(y), reply.mutable_logits());
  if (req.want_hidden()) rpc::to_chunk(m.final_norm(y), reply.mutable_final_hidden());
  if (req.sample()) {
    // The last row alone, as the single-node generation (llama_model::forward_last) computes it.
    const array last = contiguous(m.head(slice_axis(y, 0, y.shape(0) - 1, y.shape(0))));
    sample_into(seq, last.data<float>(), last.size(), reply);
  }
  return std::nullopt;
}

void stage_service::sample_into(sequence& seq, const float* logits, int64_t vocab, v1::StepReply& reply) {
  const engine::sample_result r = seq.sampler->sample({logits, static_cast<size_t>(vocab)}, seq.history);
  seq.history.push_back(r.id);
  reply.set_sampled(true);
  reply.set_token(r.id);
  reply.set_logprob(r.logprob);
  for (const auto& t : r.top) {
    v1::TopLogprob* p = reply.add_top();
    p->set_token(t.id);
    p->set_logprob(t.logprob);
  }
}

void stage_service::sample_batch(const loaded& st, const std::vector<step_input>& inputs,
                                 const std::vector<array>& outputs, const std::vector<size_t>& rows,
                                 std::vector<v1::StepReply>& replies) {
  std::vector<array> last;
  for (size_t i : rows)
    last.push_back(slice_axis(outputs[i], 0, outputs[i].shape(0) - 1, outputs[i].shape(0)));
  const array logits = contiguous(st.model->head(concatenate(last, 0)));
  const int64_t vocab = logits.shape(1);
  for (size_t k = 0; k < rows.size(); ++k)
    sample_into(*inputs[rows[k]].seq, logits.data<float>() + static_cast<int64_t>(k) * vocab, vocab,
                replies[rows[k]]);
}

void stage_service::run_forward(const loaded& st, std::vector<v1::StepRequest*>& reqs,
                                std::vector<v1::StepReply>& replies, std::vector<std::string>& errors) {
  const auto start = clock::now();
  std::vector<step_input> inputs(reqs.size());
  std::vector<size_t> ready;  // the steps whose input is good, in order
  for (size_t i = 0; i < reqs.size(); ++i) {
    try {
      inputs[i] = prepare(st, *reqs[i]);
      ready.push_back(i);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  std::vector<array> outputs(reqs.size());
  try {
    if (ready.size() == 1) {
      outputs[ready[0]] = st.model->forward_layers(inputs[ready[0]].x, inputs[ready[0]].seq->cache);
    } else if (!ready.empty()) {
      std::vector<array> xs;
      std::vector<models::kv_cache*> caches;
      for (size_t i : ready) xs.push_back(inputs[i].x), caches.push_back(&inputs[i].seq->cache);
      const std::vector<array> ys = st.model->forward_layers_batch(xs, caches);
      for (size_t k = 0; k < ready.size(); ++k) outputs[ready[k]] = ys[k];
    }
  } catch (const std::exception& e) {
    for (size_t i : ready) errors[i] = e.what();
    ready.clear();
  }
  // The head and the sampling (finish) are the stage's compute too, so that a hop's cost is what is left.
  // Decode steps that only sample share one head product: the last stage reads its head once for all.
  std::vector<size_t> sampled, alone;
  for (size_t i : ready) {
    const v1::StepRequest& r = *reqs[i];
    const bool shared =
        st.model->stage().head && ready.size() > 1 && r.sample() && !r.want_logits() && !r.want_hidden();
    (shared ? sampled : alone).push_back(i);
  }
  if (!sampled.empty()) {
    try {
      sample_batch(st, inputs, outputs, sampled, replies);
    } catch (const std::exception& e) {
      for (size_t i : sampled) errors[i] = e.what();
    }
  }
  std::vector<std::optional<array>> hidden(reqs.size());
  for (size_t i : alone) {
    try {
      hidden[i] = finish(st, *reqs[i], *inputs[i].seq, outputs[i], replies[i]);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
  for (size_t i : ready) {
    if (!errors[i].empty()) continue;
    reqs[i]->add_stage_ms(ms);
    reqs[i]->add_stage_batch(static_cast<uint32_t>(ready.size()));
    if (hidden[i]) {
      reqs[i]->clear_tokens();
      rpc::to_chunk(*hidden[i], reqs[i]->mutable_hidden());
    }
  }
}

grpc::Status stage_service::join_plan(uint64_t plan, joined* out) {
  std::lock_guard lock(mu_);
  out->stage = stage_;
  if (!stage_ || stage_->assignment.plan_id() != plan)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            node_id_ + " holds plan " +
                (stage_ ? std::to_string(stage_->assignment.plan_id()) : std::string("none")) +
                ", the stream is for plan " + std::to_string(plan)};
  if (stage_->assignment.next_address().empty()) {
    if (auto it = sinks_.find(plan); it != sinks_.end()) out->replies = it->second;
    if (auto it = loops_.find(plan); it != loops_.end()) out->loop = it->second;
  }
  return grpc::Status::OK;
}

std::shared_ptr<stage_service::loaded> stage_service::stage() {
  std::lock_guard lock(mu_);
  return stage_;
}

namespace {

// A plan's sink of one kind (Replies or Loop) on its last stage. Under the service's lock.
template <class Sink>
grpc::Status open_sink(const std::shared_ptr<stage_service::loaded>& stage, const std::string& node_id,
                       uint64_t plan, std::map<uint64_t, std::shared_ptr<Sink>>& sinks,
                       const std::shared_ptr<Sink>& sink, const char* what) {
  if (!stage || stage->assignment.plan_id() != plan || !stage->assignment.next_address().empty())
    return {grpc::StatusCode::FAILED_PRECONDITION,
            node_id + " is not the last stage of plan " + std::to_string(plan)};
  if (!sinks.emplace(plan, sink).second)
    return {grpc::StatusCode::ALREADY_EXISTS,
            "plan " + std::to_string(plan) + " has a " + what + " stream on " + node_id + " already"};
  return grpc::Status::OK;
}

template <class Sink>
void close_sink(std::mutex& mu, std::map<uint64_t, std::shared_ptr<Sink>>& sinks, uint64_t plan,
                const std::shared_ptr<Sink>& sink) {
  {
    std::lock_guard lock(mu);
    auto it = sinks.find(plan);
    if (it != sinks.end() && it->second == sink) sinks.erase(it);
  }
  std::lock_guard sink_lock(sink->mu);  // no Run stream writes to the sink once this returns
  sink->open = false;
}

}  // namespace

grpc::Status stage_service::open_replies(uint64_t plan, const std::shared_ptr<reply_sink>& s) {
  std::lock_guard lock(mu_);
  return open_sink(stage_, node_id_, plan, sinks_, s, "Replies");
}

void stage_service::close_replies(uint64_t plan, const std::shared_ptr<reply_sink>& s) {
  close_sink(mu_, sinks_, plan, s);
}

grpc::Status stage_service::open_loop(uint64_t plan, const std::shared_ptr<loop_sink>& s) {
  std::lock_guard lock(mu_);
  return open_sink(stage_, node_id_, plan, loops_, s, "Loop");
}

void stage_service::close_loop(uint64_t plan, const std::shared_ptr<loop_sink>& s) {
  close_sink(mu_, loops_, plan, s);
}

}  // namespace mlxd::dist
