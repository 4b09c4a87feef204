#include "dist/pipeline_stream.h"

#include "dist/stage_rpc.h"

namespace mlxd::dist {
namespace {

// Reads what is left of a stream this side stopped reading (`why` set: cancelled first) or whose worker
// ended it, and returns why it ended; `name` names the stream.
template <class Stream>
std::string drain(Stream& stream, grpc::ClientContext& ctx, std::string why, const std::string& name) {
  if (!why.empty()) ctx.TryCancel();
  v1::StepReply r;
  while (stream.Read(&r)) {
  }
  const grpc::Status s = stream.Finish();
  if (why.empty())
    why = name + " ended: " + (s.ok() ? std::string("closed by the worker") : s.error_message());
  return why;
}

}  // namespace

pipeline_stream::pipeline_stream(const endpoint& first, const std::optional<endpoint>& last,
                                 const std::string& token, uint64_t plan_id,
                                 std::function<void(const std::string&)> on_lost)
    : address_(first.address), on_lost_(std::move(on_lost)), stub_(v1::Stage::NewStub(first.channel)) {
  // Before the Run stream, so the last stage knows where to answer from the first step on.
  if (last && open_replies(*last, token, plan_id)) replies_reader_ = std::thread([this] { read_replies(); });
  rpc::prepare(ctx_, token, std::chrono::milliseconds(0));
  ctx_.AddMetadata(rpc::plan_key, std::to_string(plan_id));
  stream_ = stub_->Run(&ctx_);
  reader_ = std::thread([this] { read_loop(); });
}

pipeline_stream::~pipeline_stream() {
  ctx_.TryCancel();
  replies_ctx_.TryCancel();
  reader_.join();
  if (replies_reader_.joinable()) replies_reader_.join();
}

bool pipeline_stream::open_replies(const endpoint& last, const std::string& token, uint64_t plan_id) {
  last_address_ = last.address;
  last_stub_ = v1::Stage::NewStub(last.channel);
  rpc::prepare(replies_ctx_, token, std::chrono::milliseconds(0));
  replies_ctx_.AddMetadata(rpc::plan_key, std::to_string(plan_id));
  replies_ = last_stub_->Replies(&replies_ctx_);
  v1::StepReply opened;
  if (replies_->Read(&opened) && opened.step_id() == 0 && opened.error().empty()) return true;
  // An older worker (UNIMPLEMENTED) or one that refused: its replies come up the Run streams.
  replies_ctx_.TryCancel();
  while (replies_->Read(&opened)) {
  }
  replies_->Finish();
  replies_.reset();
  return false;
}

std::future<v1::StepReply> pipeline_stream::send(v1::StepRequest& req) {
  std::vector<v1::StepRequest> one(1);
  one[0].Swap(&req);
  std::vector<std::future<v1::StepReply>> out = send_group(one);
  req.Swap(&one[0]);
  return std::move(out[0]);
}

std::vector<std::future<v1::StepReply>> pipeline_stream::send_group(std::vector<v1::StepRequest>& reqs) {
  std::vector<std::future<v1::StepReply>> out;
  {
    std::lock_guard lock(mu_);
    if (lost_) throw pipeline_lost(why_);
    for (v1::StepRequest& req : reqs) {
      req.set_step_id(next_id_++);
      out.push_back(pending_[req.step_id()].get_future());
    }
  }
  // A failed write ends the stream, and the reader fails the steps.
  std::lock_guard lock(write_mu_);
  if (carriers_ && reqs.size() > 1) {
    v1::StepRequest carrier;
    for (const v1::StepRequest& req : reqs) *carrier.add_steps() = req;
    stream_->Write(carrier);
  } else {
    for (const v1::StepRequest& req : reqs) stream_->Write(req);
  }
  return out;
}

std::optional<uint64_t> pipeline_stream::deliver(v1::StepReply& r) {
  if (r.replies_size() == 0) return deliver_one(r) ? std::nullopt : std::optional(r.step_id());
  for (v1::StepReply& one : *r.mutable_replies())
    if (!deliver_one(one)) return one.step_id();
  return std::nullopt;
}

bool pipeline_stream::deliver_one(v1::StepReply& r) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(r.step_id());
  if (it == pending_.end()) return false;
  it->second.set_value(std::move(r));
  pending_.erase(it);
  r = v1::StepReply();
  return true;
}

void pipeline_stream::read_loop() {
  v1::StepReply r;
  std::string why;
  while (stream_->Read(&r)) {
    if (r.step_id() == 0 && r.replies_size() == 0) {  // a stage reports that the one after it was lost
      why = r.error().empty() ? "a stage sent a reply without a step id" : r.error();
      break;
    }
    if (const auto stray = deliver(r)) {
      why = address_ + " sent a reply for step " + std::to_string(*stray) + ", which is not waiting";
      break;
    }
  }
  lose(drain(*stream_, ctx_, why, "the stream to the first stage " + address_));
}

void pipeline_stream::read_replies() {
  v1::StepReply r;
  std::string why;
  while (replies_->Read(&r)) {
    if (const auto stray = deliver(r)) {
      why = "the last stage " + last_address_ + " sent a reply for step " + std::to_string(*stray) +
            ", which is not waiting";
      break;
    }
  }
  lose(drain(*replies_, replies_ctx_, why, "the replies of the last stage " + last_address_));
}

void pipeline_stream::lose(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    if (lost_) return;
    lost_ = true;
    why_ = why;
    for (auto& [id, p] : pending_) p.set_exception(std::make_exception_ptr(pipeline_lost(why)));
    pending_.clear();
  }
  ctx_.TryCancel();
  replies_ctx_.TryCancel();
  if (on_lost_) on_lost_(why);
}

}  // namespace mlxd::dist
