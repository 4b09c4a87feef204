// What the in-process tests of the stage protocol share: raw calls for those that talk to workers without a
// coordinator (a stub, an Assign of the golden model's layers, forward steps), two in-process workers for
// those with one, and the KV caches a coordinator's workers hold.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "dist/stage_rpc.h"
#include "mlxd/dist/coordinator.h"
#include "mlxd/dist/worker.h"
#include "mlxd/v1/inference.grpc.pb.h"

namespace mlxd::dist {

inline const std::string golden_gqa = std::string(MLXD_GOLDEN_DIR) + "/llama_gqa";  // vocab 40, 2 layers

inline std::unique_ptr<v1::Stage::Stub> stub_of(int port) {
  return v1::Stage::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

// Assigns the golden model's layers [begin, end) as plan `plan`; the first stage embeds, the last samples.
inline grpc::Status assign(v1::Stage::Stub& stub, uint64_t plan, int begin, int end,
                           const std::string& next = "", const std::string& token = "",
                           v1::AssignReply* out = nullptr) {
  grpc::ClientContext ctx;
  rpc::prepare(ctx, token, std::chrono::seconds(10));
  v1::Assignment as;
  as.set_plan_id(plan);
  as.set_model_path(golden_gqa);
  as.set_layer_begin(begin);
  as.set_layer_end(end);
  as.set_embedding(begin == 0);
  as.set_head(next.empty());
  as.set_next_address(next);
  v1::AssignReply reply;
  return stub.Assign(&ctx, as, out ? out : &reply);
}

// A prefill of two tokens at `position` 0, or a decode step of `token` after it.
inline v1::StepRequest forward_step(uint64_t step, uint64_t sequence, int capacity, int position,
                                    int32_t token = 1) {
  v1::StepRequest req;
  req.set_step_id(step);
  req.set_sequence_id(sequence);
  req.set_kind(v1::STEP_FORWARD);
  req.set_capacity(capacity);
  req.set_position(position);
  req.add_tokens(position == 0 ? 1 : token);
  if (position == 0) req.add_tokens(2);
  req.set_sample(true);
  rpc::to_proto(engine::sampling_params{}, req.mutable_sampling());
  return req;
}

// A seeded request for the golden model: a 5-token prompt, temperature 0.8, seed 11.
inline generation_request seeded_request(int max_tokens) {
  generation_request r;
  r.prompt = {3, 1, 4, 1, 5};
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.8f;
  r.sampling.seed = 11;
  return r;
}

// The sequences each worker of `c` holds a KV cache for (999 for one that does not answer).
// Two in-process workers on 127.0.0.1 and the options of a coordinator that gives each one layer of the
// golden model, whatever speeds the two measured.
struct two_workers {
  two_workers() {
    worker_options o;
    o.host = "127.0.0.1";
    o.port = 0;
    a = std::make_unique<worker>(o);
    b = std::make_unique<worker>(o);
  }
  coordinator_options options() const {
    coordinator_options o;
    o.access.workers = {address(*a), address(*b)};
    o.layers = {{0, 1}, {1, 2}};
    return o;
  }
  static std::string address(const worker& w) { return "127.0.0.1:" + std::to_string(w.port()); }
  std::unique_ptr<worker> a, b;
};

inline std::vector<uint32_t> sequences_held(coordinator& c) {
  std::vector<uint32_t> out;
  for (const node_status& n : c.status(1)) out.push_back(n.healthy ? n.n_sequences : 999);
  return out;
}

}  // namespace mlxd::dist
