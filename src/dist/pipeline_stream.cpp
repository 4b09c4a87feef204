#include "dist/pipeline_stream.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "dist/stage_rpc.h"

namespace mlxd::dist {

pipeline_stream::pipeline_stream(std::shared_ptr<comm::rpc::cq_driver> driver, const endpoint& first,
                                 const std::optional<endpoint>& last, const std::string& token,
                                 uint64_t plan_id, std::function<void(const std::string&)> on_lost)
    : address_(first.address),
      on_lost_(std::move(on_lost)),
      driver_(std::move(driver)),
      stub_(v1::Stage::NewStub(first.channel)),
      writes_([this](const v1::StepRequest& r) { run_.stream->Write(r, start(written_)); }) {
  const auto started = [this](auto& r) {
    return then([this, &r](bool) {
      std::lock_guard lock(mu_);
      r.started = true;  // a call that failed to start ends at its first read
      wake_locked();
    });
  };
  run_started_ = started(run_);
  replies_started_ = started(replies_);
  run_read_ = then([this](bool ok) { on_read(run_, ok, run_read_, run_finished_, true); });
  replies_read_ = then([this](bool ok) { on_read(replies_, ok, replies_read_, replies_finished_, false); });
  run_finished_ = then([this](bool) { on_finished(run_); });
  replies_finished_ = then([this](bool) { on_finished(replies_); });
  written_ = then([this](bool ok) { writes_.completed(ok); });
  opening_ = then([this](bool ok) {
    std::lock_guard lock(mu_);
    opened_ = ok ? 2 : 1;
    wake_locked();
  });

  // Before the Run stream, so the last stage knows where to answer from the first step on.
  if (last) direct_ = open_replies(*last, token, plan_id);
  run_.name = "the stream to the first stage " + address_;
  rpc::prepare(run_.ctx, token, std::chrono::milliseconds(0));
  run_.ctx.AddMetadata(rpc::plan_key, std::to_string(plan_id));
  run_.stream = stub_->PrepareAsyncRun(&run_.ctx, driver_->cq());
  open(run_, run_started_);
  run_.stream->Read(&run_.in, start(run_read_));
}

pipeline_stream::~pipeline_stream() {
  run_.ctx.TryCancel();
  replies_.ctx.TryCancel();
  await([&] { return ops_ == 0; });
  if (reply_link_) driver_->hold_background(false);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

template <class Request>
void pipeline_stream::open(reader<Request>& r, tag& started) {
  r.stream->StartCall(start(started));
  await([&] { return r.started; });  // gRPC refuses other operations while the start is in flight
}

bool pipeline_stream::open_replies(const endpoint& last, const std::string& token, uint64_t plan_id) {
  last_address_ = last.address;
  replies_.name = "the replies of the last stage " + last_address_;
  last_stub_ = v1::Stage::NewStub(last.channel);
  rpc::prepare(replies_.ctx, token, std::chrono::milliseconds(0));
  replies_.ctx.AddMetadata(rpc::plan_key, std::to_string(plan_id));
  std::unique_ptr<link_offer> offer = last.link ? offer_reply_link() : nullptr;
  replies_.stream = last_stub_->PrepareAsyncReplies(&replies_.ctx, driver_->cq());
  open(replies_, replies_started_);
  replies_.stream->Read(&replies_.in, start(opening_));
  await([&] { return opened_ > 0; });
  bool usable = opened_ == 2 && replies_.in.step_id() == 0 && replies_.in.error().empty();
  // The answer to an offer came with the first message. After an "ok" the worker sends on the link, so a
  // link that cannot be taken leaves the Replies stream unusable (no step has gone out yet).
  if (usable && offer) {
    std::string why = rpc::link_answer(replies_.ctx);
    if (why == "ok") {
      try {
        reply_link_ = offer->take();
        driver_->hold_background(true);  // the waiting threads poll the link, not the queue
      } catch (const std::exception& e) {
        why = e.what();
        usable = false;
      }
    }
    if (!reply_link_)
      std::fprintf(stderr, "[coordinator] no local link to %s: %s\n", last_address_.c_str(), why.c_str());
  }
  if (usable) {
    replies_.in.Clear();
    replies_.stream->Read(&replies_.in, start(replies_read_));
    return true;
  }
  // An older worker (UNIMPLEMENTED) or one that refused: its replies come up the Run streams.
  replies_.ctx.TryCancel();
  {
    std::lock_guard lock(mu_);
    opened_ = 0;
  }
  replies_.stream->Finish(&replies_.status, start(opening_));
  await([&] { return opened_ > 0; });
  replies_.stream.reset();
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
  std::lock_guard send_lock(send_mu_);
  {
    std::lock_guard lock(mu_);
    if (lost_) throw pipeline_lost(why_);
    for (v1::StepRequest& req : reqs) {
      req.set_step_id(next_id_);
      const uint32_t ids = std::max<uint32_t>(1, req.ring());
      for (uint32_t i = 0; i < ids; ++i) out.push_back(pending_[next_id_++].get_future());
      const auto of_sequence = [&](const auto& a) { return a.second == req.sequence_id(); };
      if (req.kind() == v1::STEP_END && std::any_of(abandoned_.begin(), abandoned_.end(), of_sequence))
        ends_[req.step_id()] = req.sequence_id();
    }
  }
  // A failed write ends the stream, and its reads then fail the steps.
  if (carriers_ && reqs.size() > 1) {
    v1::StepRequest carrier;
    for (const v1::StepRequest& req : reqs) *carrier.add_steps() = req;
    writes_.push(std::move(carrier));
  } else {
    for (const v1::StepRequest& req : reqs) writes_.push(req);
  }
  return out;
}

std::vector<std::future<v1::StepReply>> pipeline_stream::send_ring(v1::StepRequest& req, uint32_t n) {
  std::vector<v1::StepRequest> one(1);
  one[0].Swap(&req);
  one[0].set_ring(n);
  std::vector<std::future<v1::StepReply>> out = send_group(one);
  req.Swap(&one[0]);
  return out;
}

void pipeline_stream::abandon(uint64_t sequence, uint64_t first, uint32_t n) {
  std::lock_guard lock(mu_);
  for (uint64_t id = first; id < first + n; ++id)
    if (pending_.erase(id) > 0) abandoned_[id] = sequence;
}

void pipeline_stream::wait(std::future<v1::StepReply>& reply) {
  await([&] { return reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
}

std::unique_ptr<link_offer> pipeline_stream::offer_reply_link() {
  try {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::runtime_error("cannot make an eventfd");
    auto offer = std::make_unique<link_offer>();
    replies_.ctx.AddMetadata(link_key, offer->description());
    return offer;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[coordinator] no local link to %s: %s\n", last_address_.c_str(), e.what());
    return nullptr;
  }
}

void pipeline_stream::await(const std::function<bool()>& ready) {
  for (;;) {
    comm::request::state woken;
    bool read_link = false;
    {
      std::lock_guard lock(mu_);
      if (ready()) return;
      if (reply_link_ && !link_over_ && !link_reader_) {
        link_reader_ = &ready;
        link_reader_thread_ = std::this_thread::get_id();
        read_link = true;
      } else {
        waiters_.push_back({&woken, &ready});
      }
    }
    if (read_link) {
      read_link_until(ready);
      continue;
    }
    driver_->wait(woken);
    std::lock_guard lock(mu_);
    std::erase_if(waiters_, [&](const waiter& w) { return w.state == &woken; });
  }
}

void pipeline_stream::read_link_until(const std::function<bool()>& ready) {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (ready() || link_over_) {
        link_reader_ = nullptr;
        // The next waiter that still waits reads the link (the others were woken with what they wait for).
        const auto next =
            std::find_if(waiters_.begin(), waiters_.end(), [](const waiter& w) { return !(*w.ready)(); });
        if (next != waiters_.end()) next->state->complete(array());
        return;
      }
    }
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {reply_link_->fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) <= 0) continue;
    if (fds[0].revents != 0) {
      uint64_t count = 0;
      [[maybe_unused]] const ssize_t r = ::read(wake_fd_, &count, sizeof count);
    }
    if (fds[1].revents != 0 && !take_link_replies()) {
      std::lock_guard lock(mu_);
      link_over_ = true;
    }
  }
}

bool pipeline_stream::take_link_replies() {
  do {
    v1::StepReply r;
    const std::string e = reply_link_->receive(r, rpc::max_message_bytes);
    if (e == "closed") return false;  // the worker ended the Replies call: its end says why
    std::string why;
    if (!e.empty())
      why = "the local link of the last stage " + last_address_ + " failed: " + e;
    else if (const auto stray = deliver(r))
      why = "the last stage " + last_address_ + " sent a reply for step " + std::to_string(*stray) +
            ", which is not waiting";
    if (!why.empty()) {
      lose(why);
      return false;
    }
  } while (reply_link_->buffered());
  return true;
}

void pipeline_stream::wake_locked() {
  for (const waiter& w : waiters_)
    if ((*w.ready)()) w.state->complete(array());
  if (link_reader_ && link_reader_thread_ != std::this_thread::get_id() && (*link_reader_)()) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = ::write(wake_fd_, &one, sizeof one);
  }
}

pipeline_stream::tag pipeline_stream::then(std::function<void(bool)> handler) {
  return {[this, handler = std::move(handler)](bool ok) {
    handler(ok);
    std::lock_guard lock(mu_);
    if (--ops_ == 0) wake_locked();  // the destructor waits for the last one
  }};
}

void* pipeline_stream::start(tag& t) {
  {
    std::lock_guard lock(mu_);
    ++ops_;
  }
  return comm::rpc::op(t);
}

template <class Request>
void pipeline_stream::on_read(reader<Request>& r, bool ok, tag& read, tag& finished, bool run_stream) {
  if (!ok) return r.stream->Finish(&r.status, start(finished));
  if (r.why.empty()) {
    if (run_stream && r.in.step_id() == 0 && r.in.replies_size() == 0)  // the stage after one was lost
      r.why = r.in.error().empty() ? "a stage sent a reply without a step id" : r.in.error();
    else if (const auto stray = deliver(r.in))
      r.why = (run_stream ? address_ : "the last stage " + last_address_) + " sent a reply for step " +
              std::to_string(*stray) + ", which is not waiting";
    if (!r.why.empty()) r.ctx.TryCancel();  // its reads end, then its Finish
  }
  r.in.Clear();
  r.stream->Read(&r.in, start(read));
}

template <class Request>
void pipeline_stream::on_finished(reader<Request>& r) {
  lose(!r.why.empty() ? r.why
                      : r.name + " ended: " +
                            (r.status.ok() ? std::string("closed by the worker") : r.status.error_message()));
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
  if (it == pending_.end()) return abandoned_.erase(r.step_id()) > 0;
  if (auto end = ends_.find(r.step_id()); end != ends_.end()) {
    std::erase_if(abandoned_, [&](const auto& a) { return a.second == end->second; });
    ends_.erase(end);
  }
  it->second.set_value(std::move(r));
  pending_.erase(it);
  r = v1::StepReply();
  wake_locked();
  return true;
}

void pipeline_stream::lose(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    if (lost_) return;
    lost_ = true;
    why_ = why;
    for (auto& [id, p] : pending_) p.set_exception(std::make_exception_ptr(pipeline_lost(why)));
    pending_.clear();
    abandoned_.clear();
    ends_.clear();
    wake_locked();
  }
  run_.ctx.TryCancel();
  replies_.ctx.TryCancel();
  if (on_lost_) on_lost_(why);
}

}  // namespace mlxd::dist
