// What the worker and the coordinator share on the wire: the stage protocol's version and metadata, call
// admission, and conversions between protobuf messages and mlxd values, each checked before use.
#pragma once

#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "comm/grpc/admission.h"
#include "mlxd/core/array.h"
#include "mlxd/engine/sampler.h"
#include "mlxd/v1/inference.grpc.pb.h"

namespace mlxd::dist::rpc {

inline constexpr uint32_t protocol_major = 1;
// 1.2: the Cluster service (joins); 1.3: Hello's layers_read; 1.4: the last stage's Replies stream;
// 1.5: groups of decode steps (StepRequest.group_id, group_size).
// 1.6: carriers of several steps or replies in one message (StepRequest.steps, StepReply.replies).
// 1.7: rings (StepRequest.ring, the Loop stream from the first stage to the last).
// 1.8: local links between stages on one machine (Assignment.next_link, loop_link; Hello's host_id).
// 1.9: a local link for the last stage's replies to a coordinator on its machine (offered on Replies).
inline constexpr uint32_t protocol_minor = 9;
inline constexpr const char* protocol_key = "mlxd-stage-protocol";  // metadata: "<major>.<minor>", e.g. "1.1"
inline constexpr const char* plan_key = "mlxd-plan";  // metadata of Run and Replies: the plan id
// How long the stage protocol's queues go undriven before their background thread drives them (cq_driver).
// Long enough that it does not wake during a stage's compute of a small model: waking every 5 ms (comm's
// choice), it took a core from the kernels' threads, and a 110M model split over 2 or 3 workers decoded
// 2-11% slower (bench/dist/pipeline_bench.sh, alternated twice).
inline constexpr std::chrono::milliseconds background_after{50};
// Largest message either side accepts; a hidden-state chunk must fit in one.
inline constexpr size_t max_message_bytes = 64 << 20;

static_assert(v1::StepKind_ARRAYSIZE == v1::STEP_KIND_COUNT + 1, "StepKind ends in its count");

// Token, then protocol version: the status to refuse a call with, or OK; `who` names the callee in the
// version error.
grpc::Status admit(const grpc::ServerContext& ctx, const std::string& token,
                   const std::string& who = "this worker");
// The plan id a Run or Replies call names in its metadata; 0 when it names none or is malformed.
uint64_t plan_of(const grpc::ServerContext& ctx);
// Puts the protocol version, the token (when not empty) and a deadline (when positive) on a call.
void prepare(grpc::ClientContext& ctx, const std::string& token, std::chrono::milliseconds deadline);
// A channel to host:port with the message limits and keepalive used throughout the stage protocol.
std::shared_ptr<grpc::Channel> make_channel(const std::string& address,
                                            const std::shared_ptr<grpc::ChannelCredentials>& creds);
// (1.8) A callee's answer to the link offer made on `ctx`, from its initial metadata: "ok" (it connected
// before it answered), or why not.
std::string link_answer(const grpc::ClientContext& ctx);
// "<major>.<minor>", e.g. "1.1".
using comm::rpc::version_string;

// One tensor in one message: f32 arrays only cross between stages.
void to_chunk(const array& x, v1::TensorChunk* chunk);
// Validates dtype, shape and byte count (and that the tensor is complete in this one chunk); "" and `out`
// set on success, else why not.
std::string from_chunk(const v1::TensorChunk& chunk, array& out);

void to_proto(const engine::sampling_params& p, v1::SamplingParams* out);
engine::sampling_params from_proto(const v1::SamplingParams& p);

}  // namespace mlxd::dist::rpc
