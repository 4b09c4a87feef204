#include "dist/pipeline_stream.h"

#include "dist/stage_rpc.h"

namespace mlxd::dist {

pipeline_stream::pipeline_stream(const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
                                 uint64_t plan_id, std::string address,
                                 std::function<void(const std::string&)> on_lost)
    : address_(std::move(address)), on_lost_(std::move(on_lost)), stub_(v1::Stage::NewStub(channel)) {
  rpc::prepare(ctx_, token, std::chrono::milliseconds(0));
  ctx_.AddMetadata(rpc::plan_key, std::to_string(plan_id));
  stream_ = stub_->Run(&ctx_);
  reader_ = std::thread([this] { read_loop(); });
}

pipeline_stream::~pipeline_stream() {
  ctx_.TryCancel();
  reader_.join();
}

std::future<v1::StepReply> pipeline_stream::send(v1::StepRequest& req) {
  std::future<v1::StepReply> out;
  {
    std::lock_guard lock(mu_);
    if (lost_) throw pipeline_lost(why_);
    req.set_step_id(next_id_++);
    out = pending_[req.step_id()].get_future();
  }
  std::lock_guard lock(write_mu_);
  stream_->Write(req);  // a failed write ends the stream, and the reader fails the step
  return out;
}

void pipeline_stream::read_loop() {
  v1::StepReply r;
  std::string why;
  while (stream_->Read(&r)) {
    if (r.step_id() == 0) {  // a stage reports that the one after it was lost
      why = r.error().empty() ? "a stage sent a reply without a step id" : r.error();
      ctx_.TryCancel();
      break;
    }
    std::lock_guard lock(mu_);
    auto it = pending_.find(r.step_id());
    if (it == pending_.end()) {
      why = address_ + " sent a reply for step " + std::to_string(r.step_id()) + ", which is not waiting";
      ctx_.TryCancel();
      break;
    }
    it->second.set_value(std::move(r));
    pending_.erase(it);
    r = v1::StepReply();
  }
  while (stream_->Read(&r)) {
  }
  const grpc::Status s = stream_->Finish();
  if (why.empty())
    why = "the stream to the first stage " + address_ +
          " ended: " + (s.ok() ? std::string("closed by the worker") : s.error_message());
  fail_all(why);
  if (on_lost_) on_lost_(why);
}

void pipeline_stream::fail_all(const std::string& why) {
  std::lock_guard lock(mu_);
  lost_ = true;
  why_ = why;
  for (auto& [id, p] : pending_) p.set_exception(std::make_exception_ptr(pipeline_lost(why)));
  pending_.clear();
}

}  // namespace mlxd::dist
