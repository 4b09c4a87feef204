#include "dist/stage_rpc.h"

#include <cinttypes>
#include <cstdio>

#include "comm/grpc/admission.h"
#include "comm/grpc/message_memory.h"
#include "comm/grpc/wire.h"
#include "dist/local_link.h"
#include "mlxd/core/ops.h"

namespace mlxd::dist::rpc {
grpc::Status admit(const grpc::ServerContext& ctx, const std::string& token, const std::string& who) {
  static const comm::rpc::protocol_id stage_protocol{"mlxd stage protocol", protocol_key, protocol_major,
                                                     protocol_minor};
  grpc::Status s = comm::rpc::check_token(ctx, token);
  return s.ok() ? comm::rpc::check_version(ctx, stage_protocol, who) : s;
}

uint64_t plan_of(const grpc::ServerContext& ctx) {
  auto it = ctx.client_metadata().find(plan_key);
  if (it == ctx.client_metadata().end()) return 0;
  const std::string text(it->second.data(), it->second.size());
  uint64_t plan = 0;
  char extra = 0;
  return std::sscanf(text.c_str(), "%" SCNu64 "%c", &plan, &extra) == 1 ? plan : 0;
}

void prepare(grpc::ClientContext& ctx, const std::string& token, std::chrono::milliseconds deadline) {
  ctx.AddMetadata(protocol_key, version_string(protocol_major, protocol_minor));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  if (deadline.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + deadline);
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& address,
                                            const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  comm::rpc::keep_message_buffers();  // prefill chunks and weight uploads are megabytes each
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(max_message_bytes + 4096));
  args.SetMaxSendMessageSize(static_cast<int>(max_message_bytes + 4096));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 500);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, comm::wire::max_frame_bytes);
  // Each caller gets its own connection, so a channel to a lost worker is never shared with a new one.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, creds, args);
}

std::string link_answer(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerInitialMetadata();
  const auto it = md.find(link_key);
  return it == md.end() ? "it did not answer the offer" : std::string(it->second.data(), it->second.size());
}

void to_chunk(const array& x, v1::TensorChunk* chunk) {
  const array c = contiguous(x);
  chunk->set_dtype(comm::wire::to_wire(c.type()));
  chunk->clear_shape();
  for (int64_t d : c.shape()) chunk->add_shape(d);
  chunk->set_total_bytes(c.nbytes());
  chunk->set_offset(0);
  chunk->mutable_data()->assign(static_cast<const char*>(c.raw_data()), c.nbytes());
}

std::string from_chunk(const v1::TensorChunk& chunk, array& out) {
  comm::wire::limits l;
  l.max_message_bytes = max_message_bytes;
  l.max_tensor_bytes = max_message_bytes;
  comm::wire::assembler a(l);
  std::optional<array> done;
  std::string error;
  try {
    error = a.add(chunk, done);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) return error;
  if (!done) return "the tensor must come whole in one message: " + a.progress();
  if (done->type() != dtype::f32) return "expected an f32 tensor, got " + done->to_string();
  out = std::move(*done);
  return "";
}

void to_proto(const engine::sampling_params& p, v1::SamplingParams* out) {
  out->set_temperature(p.temperature);
  out->set_top_k(p.top_k);
  out->set_top_p(p.top_p);
  out->set_min_p(p.min_p);
  out->set_repetition_penalty(p.repetition_penalty);
  out->set_presence_penalty(p.presence_penalty);
  out->set_frequency_penalty(p.frequency_penalty);
  for (const auto& [id, bias] : p.logit_bias) (*out->mutable_logit_bias())[id] = bias;
  out->set_seed(p.seed);
  out->set_top_logprobs(p.top_logprobs);
}

engine::sampling_params from_proto(const v1::SamplingParams& p) {
  engine::sampling_params out;
  out.temperature = p.temperature();
  out.top_k = p.top_k();
  out.top_p = p.top_p();
  out.min_p = p.min_p();
  out.repetition_penalty = p.repetition_penalty();
  out.presence_penalty = p.presence_penalty();
  out.frequency_penalty = p.frequency_penalty();
  for (const auto& [id, bias] : p.logit_bias()) out.logit_bias[id] = bias;
  out.seed = p.seed();
  out.top_logprobs = p.top_logprobs();
  return out;
}

}  // namespace mlxd::dist::rpc
