#include "dist/stage_service.h"

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <thread>

#include "comm/grpc/credentials.h"
#include "dist/stage_rpc.h"
#include "mlxd/core/ops.h"
#include "mlxd/dist/plan.h"

namespace mlxd::dist {
namespace {

std::string mib(uint64_t bytes) {
  return std::to_string((bytes + (1 << 19)) >> 20) + " MiB";
}

double ms_since(stage_service::clock::time_point t) {
  return std::chrono::duration<double, std::milli>(stage_service::clock::now() - t).count();
}

}  // namespace

stage_service::stage_service(const worker_options& o, std::string node_id, worker_capabilities caps)
    : options_(o), node_id_(std::move(node_id)), caps_(caps) {}

grpc::Status stage_service::Hello(grpc::ServerContext* ctx, const v1::StageHelloRequest* request,
                                  v1::StageHelloReply* reply) {
  grpc::Status s = rpc::admit(*ctx, options_.cluster_token);
  if (!s.ok()) return s;
  if (request->protocol_major() != rpc::protocol_major)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the caller speaks mlxd stage protocol " +
                rpc::version_string(request->protocol_major(), request->protocol_minor()) +
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
  return grpc::Status::OK;
}

grpc::Status stage_service::Assign(grpc::ServerContext* ctx, const v1::Assignment* request,
                                   v1::AssignReply* reply) {
  grpc::Status s = rpc::admit(*ctx, options_.cluster_token);
  if (!s.ok()) return s;
  if (request->plan_id() == 0) return {grpc::StatusCode::INVALID_ARGUMENT, "an assignment needs a plan id"};
  std::lock_guard assign_lock(assign_mu_);
  {
    std::lock_guard lock(mu_);  // a new plan replaces the old one, and its sequences
    stage_.reset();
    sequences_.clear();
    kv_bytes_ = 0;
  }
  try {
    const models::llama_config config = models::load_llama_config_any(request->model_path());
    const models::llama_stage range{request->layer_begin(), request->layer_end(), request->embedding(),
                                    request->head()};
    models::check_stage(config, range);
    const uint64_t bytes = stage_weight_bytes(config, range);
    if (bytes > caps_.memory_bytes)
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "layers " + std::to_string(range.layer_begin) + "-" + std::to_string(range.layer_end - 1) +
                  " need " + mib(bytes) + " but " + node_id_ + " offers " + mib(caps_.memory_bytes)};
    auto st = std::make_shared<loaded>();
    st->assignment = *request;
    st->model =
        std::make_shared<const models::llama_model>(models::load_llama_stage(request->model_path(), range));
    st->weight_bytes = bytes;
    std::lock_guard lock(mu_);
    stage_ = st;
    reply->set_weight_bytes(bytes);
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INVALID_ARGUMENT, std::string("cannot load the assignment: ") + e.what()};
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
    if (now - it->second->last_used > options_.kv_idle_timeout) {
      kv_bytes_ -= it->second->bytes;
      it = sequences_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<array> stage_service::forward(const loaded& st, const v1::StepRequest& req,
                                            v1::StepReply& reply) {
  const models::llama_model& m = *st.model;
  std::shared_ptr<sequence> seq = open_sequence(st, req);
  seq->last_used = clock::now();
  if (seq->cache.length() != req.position())
    throw std::invalid_argument("sequence " + std::to_string(req.sequence_id()) + " is at position " +
                                std::to_string(seq->cache.length()) + " here, the step is for position " +
                                std::to_string(req.position()));
  array x;
  if (m.stage().embedding) {
    if (req.tokens_size() == 0) throw std::invalid_argument("the first stage needs token ids");
    x = m.embed(std::vector<int32_t>(req.tokens().begin(), req.tokens().end()));
  } else {
    if (!req.has_hidden()) throw std::invalid_argument("the step carries no hidden states");
    const std::string why = rpc::from_chunk(req.hidden(), x);
    if (!why.empty()) throw std::invalid_argument("hidden states: " + why);
  }
  x = m.forward_layers(x, seq->cache);  // checks the shape and the room left
  if (!m.stage().head) return x;
  if (req.want_logits()) rpc::to_chunk(m.head(x), reply.mutable_logits());
  if (req.want_hidden()) rpc::to_chunk(m.final_norm(x), reply.mutable_final_hidden());
  if (req.sample()) {
    const array logits = m.head(x);  // every row, as the single-node forward computes them
    const array last = contiguous(slice_axis(logits, 0, logits.shape(0) - 1, logits.shape(0)));
    const engine::sample_result r =
        seq->sampler->sample({last.data<float>(), static_cast<size_t>(last.size())}, seq->history);
    seq->history.push_back(r.id);
    reply.set_sampled(true);
    reply.set_token(r.id);
    reply.set_logprob(r.logprob);
    for (const auto& t : r.top) {
      v1::TopLogprob* p = reply.add_top();
      p->set_token(t.id);
      p->set_logprob(t.logprob);
    }
  }
  return std::nullopt;
}

grpc::Status stage_service::Run(grpc::ServerContext* ctx,
                                grpc::ServerReaderWriter<v1::StepReply, v1::StepRequest>* up) {
  grpc::Status s = rpc::admit(*ctx, options_.cluster_token);
  if (!s.ok()) return s;
  uint64_t plan = 0;
  auto it = ctx->client_metadata().find(rpc::plan_key);
  if (it != ctx->client_metadata().end()) {
    const std::string text(it->second.data(), it->second.size());
    char extra = 0;
    if (std::sscanf(text.c_str(), "%" SCNu64 "%c", &plan, &extra) != 1) plan = 0;
  }
  std::shared_ptr<loaded> st;
  {
    std::lock_guard lock(mu_);
    st = stage_;
  }
  if (!st || st->assignment.plan_id() != plan)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            node_id_ + " holds plan " +
                (st ? std::to_string(st->assignment.plan_id()) : std::string("none")) +
                ", the stream is for plan " + std::to_string(plan)};

  std::mutex write_mu;
  auto write_up = [&](const v1::StepReply& r) {
    std::lock_guard lock(write_mu);
    up->Write(r);
  };
  const std::string next = st->assignment.next_address();
  grpc::ClientContext down_ctx;
  std::unique_ptr<v1::Stage::Stub> stub;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepReply>> down;
  std::atomic<bool> closing = false, down_lost = false;
  std::thread relay;
  if (!next.empty()) {
    try {
      auto creds = comm::rpc::channel_credentials({options_.tls_cert, options_.tls_key, options_.tls_ca});
      stub = v1::Stage::NewStub(rpc::make_channel(next, creds));
    } catch (const std::exception& e) {
      return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    }
    rpc::prepare(down_ctx, options_.cluster_token, std::chrono::milliseconds(0));
    down_ctx.AddMetadata(rpc::plan_key, std::to_string(plan));
    down = stub->Run(&down_ctx);
    relay = std::thread([&] {
      v1::StepReply r;
      while (down->Read(&r)) write_up(r);
      const grpc::Status ds = down->Finish();
      if (closing) return;
      down_lost = true;
      v1::StepReply e;
      e.set_error("the next stage " + next + " was lost: " + ds.error_message());
      e.set_error_node(next);
      write_up(e);
      ctx->TryCancel();
    });
  }
  v1::StepRequest req;
  while (!down_lost && up->Read(&req)) {
    v1::StepReply reply;
    reply.set_step_id(req.step_id());
    reply.set_sequence_id(req.sequence_id());
    const auto start = clock::now();
    try {
      if (req.kind() == v1::STEP_END) {
        drop_sequence(req.sequence_id());
      } else if (req.kind() == v1::STEP_FORWARD) {
        std::optional<array> hidden = forward(*st, req, reply);
        req.add_stage_ms(ms_since(start));
        if (hidden) {
          req.clear_tokens();
          rpc::to_chunk(*hidden, req.mutable_hidden());
        }
      } else {
        throw std::invalid_argument("unknown step kind " + std::to_string(req.kind()));
      }
    } catch (const std::exception& e) {
      drop_sequence(req.sequence_id());
      reply.Clear();
      reply.set_step_id(req.step_id());
      reply.set_sequence_id(req.sequence_id());
      reply.set_error(e.what());
      reply.set_error_node(node_id_);
      write_up(reply);
      continue;
    }
    if (down) {
      down->Write(req);
    } else {
      reply.mutable_stage_ms()->CopyFrom(req.stage_ms());
      write_up(reply);
    }
  }
  closing = !down_lost;
  if (down) {
    down->WritesDone();
    down_ctx.TryCancel();
    relay.join();
  }
  return grpc::Status::OK;
}

}  // namespace mlxd::dist
