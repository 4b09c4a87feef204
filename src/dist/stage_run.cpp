// A Run stream of the stage protocol: steps come in from the stage before (or the coordinator), go through
// this stage's layers, and go on to the next stage, or (the last stage) come back as replies.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <set>
#include <span>

#include "comm/grpc/credentials.h"
#include "comm/grpc/write_queue.h"
#include "comm/request_state.h"
#include "dist/local_link.h"
#include "dist/stage_rpc.h"
#include "dist/stage_server.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::dist {
namespace {

using clock = std::chrono::steady_clock;

// Rows one forward_layers_batch may hold: matmul runs up to 16 rows row by row, so each sequence gets the
// bits it gets alone (more rows would take the GEMM path).
constexpr int64_t max_batch_rows = 16;

// How long a stage waits for the rest of a group of decode steps (protocol 1.5).
constexpr std::chrono::milliseconds group_wait{50};

// (1.8) How long the link from the stage before may stay silent and open after its call ended: the stage
// before closes the link first, so in order the link ends at once (or streams its last message on); a call
// cancelled or failed leaves the link of a frozen stage open.
constexpr std::chrono::seconds link_end_grace{2};

// Steps of the last group in `taken` that have not arrived yet (0 when the last step is not grouped).
int64_t missing_of_last_group(const std::deque<v1::StepRequest>& taken) {
  const v1::StepRequest& last = taken.back();
  if (last.group_size() <= 1) return 0;
  const auto have = std::count_if(taken.begin(), taken.end(),
                                  [&](const v1::StepRequest& r) { return r.group_id() == last.group_id(); });
  return static_cast<int64_t>(last.group_size()) - have;
}

// The input rows a forward step carries: its token ids, or the rows of its hidden states.
int64_t step_rows(const v1::StepRequest& req) {
  if (req.tokens_size() > 0) return req.tokens_size();
  return req.hidden().shape_size() > 0 ? req.hidden().shape(0) : 0;
}

}  // namespace

// The stream's thread computes; its reads queue what arrives, on the driving thread, so that steps of
// several sequences that arrive while it computes run together, and so that the thread, waiting for a step,
// drives the queue and reads the step itself. What goes on leaves through write queues: the thread never
// waits for the transport. The stream to the next stage is a client call on the same queue. (1.8) Steps that
// come over local links are read by the thread itself, which then waits in poll() while the queue's
// background thread drives the calls.
class stage_server::run_call final : public stage_server::call {
 public:
  static void accept(stage_server* s) { new run_call(s); }
  ~run_call() override {
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

 private:
  explicit run_call(stage_server* s) : call(s) {
    grpc_service().RequestRun(&ctx_, &up_, cq(), cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept);
    run_on_thread("mlxd-stage-run", [this] { serve(); });
  }

  // The thread's work, from admission to the stream's Finish.
  void serve() {
    grpc::Status s = rpc::admit(ctx_, service().options().cluster_token);
    stage_service::joined j;
    if (s.ok()) s = service().join_plan(rpc::plan_of(ctx_), &j);
    st_ = j.stage;
    direct_ = j.replies;
    loop_sink_ = j.loop;
    // The stage before waits for the answer to its link offer; the Loop opens next: the last stage then has
    // its sink before its own Run stream joins the plan.
    if (s.ok()) answer_link();
    if (s.ok()) s = open_loop();
    if (s.ok()) s = open_down();
    if (!s.ok()) {
      ended_ = true;
      stop_polling();
      return up_.Finish(s, start(finished_));
    }
    up_.Read(&in_, start(read_done_));
    compute();
    wind_down();
    stop_polling();
  }

  // (1.8) Takes the link the stage before offers, if it does, and answers the offer in the call's initial
  // metadata: "ok", or why not (it then sends its steps on the call).
  void answer_link() {
    std::string answer;
    std::unique_ptr<local_link> link = connect_offered_link(ctx_, answer);
    if (answer.empty()) return;
    if (link) {
      try {
        start_polling();  // before the answer: the stage before sends on the link once it reads "ok"
        up_link_ = std::move(link);
        service().count_link();
      } catch (const std::exception& e) {
        answer = e.what();
      }
    }
    ctx_.AddInitialMetadata(link_key, answer);
    up_.SendInitialMetadata(start(metadata_sent_tag_));
    await([&] { return metadata_sent_; }, clock::time_point::max());
  }

  // (1.8) An offer of a link on a call to another stage of this machine: its listening socket, named in the
  // call's metadata; none (the steps go on the call) when it cannot listen, or cannot poll a link it reads.
  std::unique_ptr<link_offer> offer_link(grpc::ClientContext& ctx, const std::string& to, bool to_read) {
    try {
      if (to_read) start_polling();
      auto offer = std::make_unique<link_offer>();
      ctx.AddMetadata(link_key, offer->description());
      return offer;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[worker] no local link to %s: %s\n", to.c_str(), e.what());
      return nullptr;
    }
  }
  // The link the peer connected before it answered "ok"; null (and why, on stderr) otherwise.
  std::unique_ptr<local_link> take_link(link_offer& offer, const grpc::ClientContext& ctx,
                                        const std::string& to) {
    std::string why = rpc::link_answer(ctx);
    if (why == "ok") {
      try {
        auto link = offer.take();
        service().count_link();
        return link;
      } catch (const std::exception& e) {
        why = e.what();
      }
    }
    std::fprintf(stderr, "[worker] no local link to %s: %s\n", to.c_str(), why.c_str());
    return nullptr;
  }

  // From the first link this thread reads on, it waits in poll(): the calls' events wake it through an
  // eventfd, and the queue's background thread drives them.
  void start_polling() {
    if (wake_fd_ >= 0) return;
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::runtime_error("cannot make an eventfd for the local link");
    driver().hold_background(true);
  }
  void stop_polling() {
    if (wake_fd_ < 0) return;
    driver().hold_background(false);
    expect_serial_work();  // the pool forgets the links' descriptors, closed with this call
  }

  // A call of this plan to the stage at `address`: its stub (with this worker's TLS files) and its context
  // (the token, no deadline, the plan).
  grpc::Status prepare_call(const std::string& address, std::unique_ptr<v1::Stage::Stub>& stub,
                            grpc::ClientContext& ctx) {
    const worker_options& o = service().options();
    try {
      auto creds = comm::rpc::channel_credentials({o.tls_cert, o.tls_key, o.tls_ca});
      stub = v1::Stage::NewStub(rpc::make_channel(address, creds));
    } catch (const std::exception& e) {
      return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    }
    rpc::prepare(ctx, o.cluster_token, std::chrono::milliseconds(0));
    ctx.AddMetadata(rpc::plan_key, std::to_string(st_->assignment.plan_id()));
    return grpc::Status::OK;
  }

  // The stream to the next stage, when there is one.
  grpc::Status open_down() {
    const std::string next = st_->assignment.next_address();
    if (next.empty()) return grpc::Status::OK;
    if (grpc::Status s = prepare_call(next, stub_, down_ctx_); !s.ok()) return s;
    std::unique_ptr<link_offer> offer;
    if (st_->assignment.next_link()) offer = offer_link(down_ctx_, next, false);
    down_offered_ = offer != nullptr;
    down_ = stub_->PrepareAsyncRun(&down_ctx_, cq());
    down_->StartCall(start(down_started_));
    // gRPC refuses a write while the call's start is in flight (TOO_MANY_OPERATIONS); with an offer, the
    // answer comes first.
    await([&] { return down_open_; }, clock::time_point::max());
    // A call that failed before its answer has no metadata to read; its end says the next stage was lost.
    if (offer && down_answer_came_) down_link_ = take_link(*offer, down_ctx_, next);
    return grpc::Status::OK;
  }

  // (1.7) The first stage's Loop stream from the last stage, when the plan has one: the steps of rings come
  // in on it and join those from upstream.
  grpc::Status open_loop() {
    const std::string last = st_->assignment.loop_address();
    if (last.empty()) return grpc::Status::OK;
    if (grpc::Status s = prepare_call(last, loop_stub_, loop_ctx_); !s.ok()) return s;
    std::unique_ptr<link_offer> offer;
    if (st_->assignment.loop_link()) offer = offer_link(loop_ctx_, last, true);
    loop_ = loop_stub_->PrepareAsyncLoop(&loop_ctx_, cq());
    loop_->StartCall(start(loop_started_));
    bool failed = false;
    await(
        [&] {
          failed = loop_done_;
          return loop_open_ || loop_done_;
        },
        clock::time_point::max());
    if (failed)
      return {grpc::StatusCode::UNAVAILABLE,
              "cannot open the Loop stream to the last stage " + last + ": " + loop_status_.error_message()};
    // The answer came with the stream's first message.
    if (offer) loop_link_ = take_link(*offer, loop_ctx_, last);
    return grpc::Status::OK;
  }

  void compute() {
    while (!down_lost_) {
      std::deque<v1::StepRequest> taken;
      rest_if_idle();
      await([&] { return !inbox_.empty() || upstream_over_locked() || down_lost_; },
            clock::time_point::max());
      take(taken);
      if (taken.empty()) break;
      // (1.5) A group of decode steps runs as one batch: wait for the rest of the last one begun. Its steps
      // were sent back to back, so this is a wait for bytes in flight; the bound only covers a sender that
      // failed part of a group without lowering its size.
      for (const auto deadline = clock::now() + group_wait;;) {
        const bool open = take(taken);
        if (missing_of_last_group(taken) == 0 || !open || clock::now() >= deadline) break;
        await([&] { return !inbox_.empty() || upstream_over_locked(); }, deadline);
      }
      if (leave_if_replaced()) break;
      run(taken);
      if (left_) break;
    }
  }

  // No step waits: the pool's workers stop polling, so that the stage that computes now (another process of
  // this machine, maybe) has the cores. The next step wakes them: its arrival on a link this thread reads,
  // else its heads-up.
  void rest_if_idle() {
    std::lock_guard lock(mu_);
    if (!inbox_.empty()) return;
    int fds[2];
    size_t n = 0;
    if (up_link_ && !up_link_read_over_) fds[n++] = up_link_->fd();
    if (loop_link_ && !loop_link_over_) fds[n++] = loop_link_->fd();
    expect_serial_work(std::span<const int>(fds, n));
  }

  // In arrival order: a run of one-row decode steps of distinct sequences forms one batch; any other step
  // (a prefill chunk, logits, an end) ends the run and goes alone, so each sequence's steps keep their order.
  void run(std::deque<v1::StepRequest>& taken) {
    std::vector<v1::StepRequest*> group;
    std::set<uint64_t> in_group;
    int64_t rows = 0;
    // `last`: no step of `taken` follows the group, so that the pool may rest as soon as its products are
    // done.
    auto flush = [&](bool last) {
      if (group.empty()) return;
      std::vector<v1::StepReply> replies(group.size());
      std::vector<std::string> errors(group.size());
      for (size_t i = 0; i < group.size(); ++i) {
        replies[i].set_step_id(group[i]->step_id());
        replies[i].set_sequence_id(group[i]->sequence_id());
      }
      service().run_forward(*st_, group, replies, errors);
      // Before the sends: the next stage wakes at the first of them, and this pool's polling would take its
      // core (its workers and this stage's took turns on it for 0.1-0.3 ms at each hop, traced).
      if (last) rest_if_idle();
      // The steps of a group that go on stay one group, of the size that goes on together (a batch may hold
      // steps of several groups, or part of one).
      std::map<uint64_t, uint32_t> going_on;
      for (size_t i = 0; i < group.size(); ++i)
        if (errors[i].empty()) ++going_on[group[i]->group_id()];
      for (size_t i = 0; i < group.size(); ++i)
        if (group[i]->group_size() > 1) group[i]->set_group_size(going_on[group[i]->group_id()]);
      for (size_t i = 0; i < group.size(); ++i) deliver(*group[i], replies[i], errors[i]);
      send_out();
      group.clear();
      in_group.clear();
      rows = 0;
    };
    for (v1::StepRequest& req : taken) {
      const bool forward = req.kind() == v1::STEP_FORWARD && req.steps_size() == 0;
      const int64_t n = step_rows(req);
      const bool batchable =
          forward && req.position() > 0 && !req.want_logits() && !req.want_hidden() && n == 1;
      // An end from the coordinator overtook this ring (the ring's later replies are not waited for).
      if (req.looped() && st_->assignment.embedding() && !service().holds_sequence(req.sequence_id()))
        continue;
      if (req.ring() > 0 && !(batchable && req.sample())) {
        flush(false);
        refuse(req, "a ring on a step that is not a one-token decode step that samples");
        continue;
      }
      if (!batchable || in_group.contains(req.sequence_id()) || rows + n > max_batch_rows) flush(false);
      if (batchable) {
        group.push_back(&req);
        in_group.insert(req.sequence_id());
        rows += n;
        continue;
      }
      if (forward) {
        group.push_back(&req);
        flush(&req == &taken.back());
        continue;
      }
      if (req.steps_size() > 0) {
        refuse(req, "a carrier inside a carrier");
      } else if (req.kind() == v1::STEP_END) {
        // An end travels down to the other stages and the last one answers it.
        service().drop_sequence(req.sequence_id());
        v1::StepReply reply;
        reply.set_step_id(req.step_id());
        reply.set_sequence_id(req.sequence_id());
        deliver(req, reply, "");
      } else {
        refuse(req, "unknown step kind " + std::to_string(req.kind()));
      }
    }
    flush(true);
    send_out();
  }

  // Answers `req` here with `error`.
  void refuse(v1::StepRequest& req, const std::string& error) {
    v1::StepReply reply;
    deliver(req, reply, error);
  }

  void deliver(v1::StepRequest& req, v1::StepReply& reply, const std::string& error) {
    if (left_ || (!error.empty() && leave_if_replaced())) return;
    if (!error.empty()) {
      service().drop_sequence(req.sequence_id());
      reply.Clear();
      reply.set_step_id(req.step_id());
      reply.set_sequence_id(req.sequence_id());
      reply.set_error(error);
      reply.set_error_node(service().node_id());
      answer(reply);
    } else if (down_) {
      onward_.push_back(std::move(req));
    } else {
      go_round(req, reply);
      reply.mutable_stage_ms()->CopyFrom(req.stage_ms());
      reply.mutable_stage_batch()->CopyFrom(req.stage_batch());
      answers_.push_back(std::move(reply));
    }
  }

  // (1.7) The last stage continues a ring with the next step, made from the token it sampled.
  void go_round(const v1::StepRequest& req, const v1::StepReply& reply) {
    const auto& stops = req.stop_ids();
    if (req.ring() <= 1 || !reply.sampled() ||
        std::find(stops.begin(), stops.end(), reply.token()) != stops.end())
      return;
    v1::StepRequest& next = looped_.emplace_back();
    next.set_step_id(req.step_id() + 1);
    next.set_sequence_id(req.sequence_id());
    next.set_kind(v1::STEP_FORWARD);
    next.set_position(req.position() + 1);
    next.add_tokens(reply.token());
    next.set_sample(true);
    next.set_ring(req.ring() - 1);
    *next.mutable_stop_ids() = stops;
    next.set_looped(true);
  }

  // The steps of rings leave first (they are the next tokens' path): into this stage's own inbox when it is
  // the first stage too, else on the plan's Loop stream. Without one the first stage is gone: this stream
  // ends as when the next stage is lost, so the coordinator re-plans (a step's error would fail its request).
  void send_looped() {
    if (looped_.empty()) return;
    if (st_->assignment.embedding()) {
      std::lock_guard lock(mu_);
      std::move(looped_.begin(), looped_.end(), std::back_inserter(inbox_));
    } else if (!loop_sink_ || !write_looped()) {
      end_as_lost("no Loop stream from the first stage of plan " + std::to_string(st_->assignment.plan_id()) +
                      " is open on " + service().node_id() + " for its rings",
                  service().node_id());
    }
    looped_.clear();
  }
  bool write_looped() {
    if (carried_ && looped_.size() > 1) {
      v1::StepRequest c;
      for (v1::StepRequest& r : looped_) c.add_steps()->Swap(&r);
      return loop_sink_->write(c);
    }
    for (const v1::StepRequest& r : looped_)
      if (!loop_sink_->write(r)) return false;
    return true;
  }

  // What goes on (steps to the next stage, the last stage's answers) leaves after each batch, in order: in
  // one carrier when the upstream sends carriers.
  void send_out() {
    send_looped();
    if (carried_ && onward_.size() > 1) {
      v1::StepRequest c;
      for (v1::StepRequest& r : onward_) c.add_steps()->Swap(&r);
      send_down(std::move(c));
    } else {
      for (v1::StepRequest& r : onward_) send_down(std::move(r));
    }
    if (carried_ && answers_.size() > 1) {
      v1::StepReply c;
      for (v1::StepReply& r : answers_) c.add_replies()->Swap(&r);
      answer(c);
    } else {
      for (const v1::StepReply& r : answers_) answer(r);
    }
    onward_.clear();
    answers_.clear();
  }

  // A step to the next stage: on the link when there is one, else on the call.
  void send_down(v1::StepRequest&& r) {
    if (!down_link_) {
      down_writes_.push(std::move(r));
    } else if (!down_link_->send(r)) {
      const std::string next = st_->assignment.next_address();
      end_as_lost("the next stage " + next + " was lost: its local link broke", next);
    }
  }

  // A step's answer: straight to the coordinator when it listens on a Replies stream.
  void answer(const v1::StepReply& r) {
    if (!direct_ || !direct_->write(r)) up_writes_.push(r);
  }

  // A new assignment forgot this plan's sequences: end its stream (as a lost stage does) so the coordinator
  // re-prefills on the plan that replaced it, instead of failing its requests on sequences gone here.
  bool leave_if_replaced() {
    const std::shared_ptr<stage_service::loaded> now = service().stage();
    if (now == st_) return false;
    if (!std::exchange(left_, true)) {
      v1::StepReply e;
      e.set_error(service().node_id() + " left plan " + std::to_string(st_->assignment.plan_id()) + " for " +
                  (now ? "plan " + std::to_string(now->assignment.plan_id()) : std::string("a new plan")));
      e.set_error_node(service().node_id());
      up_writes_.push(std::move(e));
    }
    return true;
  }

  void wind_down() {
    bool read_all = false;
    {
      std::lock_guard lock(mu_);
      read_all = up_done_;
    }
    // The next stage was lost, or this plan was left: end the read, once the reply that says why is out.
    if (!read_all) up_writes_.when_flushed([this] { ctx_.TryCancel(); });
    await([&] { return up_done_; }, clock::time_point::max());
    winding_down_ = !down_lost_;
    if (loop_) {
      loop_ctx_.TryCancel();
      await([&] { return loop_done_; }, clock::time_point::max());
    }
    if (down_link_) down_link_->close_writing();
    if (down_) {
      down_writes_.close([this] { down_->WritesDone(start(writes_done_)); });
      down_ctx_.TryCancel();
      await([&] { return down_done_; }, clock::time_point::max());
    }
    ended_ = true;
    up_writes_.close([this] { up_.Finish(grpc::Status::OK, start(finished_)); });
  }

  // Moves what arrived into `taken`; false once the upstream has ended.
  bool take(std::deque<v1::StepRequest>& taken) {
    std::lock_guard lock(mu_);
    std::move(inbox_.begin(), inbox_.end(), std::back_inserter(taken));
    inbox_.clear();
    return !upstream_over_locked();
  }
  // The stage before has sent everything: its call ended, and its link too when it had one (the link's last
  // steps may still be in the socket when the call's end arrives), or went silent for link_end_grace after.
  // Under mu_.
  bool upstream_over_locked() const { return up_done_ && clock::now() >= upstream_end_locked(); }
  // When the upstream is over once its call has ended. Under mu_.
  clock::time_point upstream_end_locked() const {
    if (!up_link_ || up_link_over_) return clock::time_point::min();
    return up_link_heard_ + link_end_grace;
  }

  // Returns when `ready` (called under mu_) holds or at `deadline`. Meanwhile this thread drives the queue
  // whenever no other thread does, so the step it waits for is read here.
  void await(const std::function<bool()>& ready, clock::time_point deadline) {
    if (wake_fd_ >= 0) return await_polling(ready, deadline);
    for (;;) {
      comm::request::state woken;
      woken.deadline = deadline;
      {
        std::lock_guard lock(mu_);
        if (ready() || clock::now() >= deadline) return;
        waiter_ = &woken;
      }
      driver().wait(woken);
      std::lock_guard lock(mu_);
      waiter_ = nullptr;
    }
  }
  // (1.8) await() of a thread that reads links: it reads each step that arrives on them.
  void await_polling(const std::function<bool()>& ready, clock::time_point deadline) {
    for (;;) {
      clock::time_point until = deadline;
      {
        std::lock_guard lock(mu_);
        if (ready() || clock::now() >= deadline) return;
        polling_ = true;
        if (up_done_ && up_link_ && !up_link_over_)  // to see the link's grace run out
          until = std::min(until, up_link_heard_ + link_end_grace);
      }
      pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLIN, 0}};
      if (up_link_ && !up_link_read_over_) fds[1].fd = up_link_->fd();
      if (loop_link_ && !loop_link_over_) fds[2].fd = loop_link_->fd();
      int timeout = -1;
      if (until != clock::time_point::max())
        timeout = static_cast<int>(
            std::chrono::ceil<std::chrono::milliseconds>(std::max(until - clock::now(), clock::duration{}))
                .count());
      const int n = ::poll(fds, 3, timeout);
      {
        std::lock_guard lock(mu_);
        polling_ = false;
      }
      if (n <= 0) continue;
      // The pool's workers wake while the step is read and parsed (traced on a VM: a worker woke 80 us after
      // the call; told at the parsed step, it left a 1B stage's first 85 us of compute to one thread).
      if (fds[1].revents != 0 || fds[2].revents != 0) expect_parallel_work();
      if (fds[0].revents != 0) {
        uint64_t count = 0;
        [[maybe_unused]] const ssize_t r = ::read(wake_fd_, &count, sizeof count);
      }
      if (fds[1].revents != 0)
        if (std::string e = take_from(*up_link_, true); !e.empty()) up_link_ended(e);
      if (fds[2].revents != 0)
        if (std::string e = take_from(*loop_link_, false); !e.empty()) loop_link_ended(e);
    }
  }
  // Queues the steps that arrived on `link` (from the stage before when `upstream`): "" when read, else why
  // the link ended.
  std::string take_from(local_link& link, bool upstream) {
    do {
      v1::StepRequest step;
      if (std::string e = link.receive(step, rpc::max_message_bytes); !e.empty()) return e;
      std::lock_guard lock(mu_);
      if (upstream) up_link_heard_ = clock::now();
      if (queue_locked(step) && upstream) carried_ = true;
    } while (link.buffered());
    return "";
  }
  void up_link_ended(const std::string& e) {
    up_link_read_over_ = true;
    {
      std::lock_guard lock(mu_);
      up_link_over_ = true;
    }
    // A link that ends before the call does lost steps: the stage before is gone or broken.
    if (e != "closed") end_as_lost("the local link from the stage before failed: " + e, service().node_id());
  }
  void loop_link_ended(const std::string& e) {
    loop_link_over_ = true;
    const std::string last = st_->assignment.loop_address();
    end_as_lost("the local link from the last stage " + last + " ended: " + e, last);
  }

  // Something the thread may wait for happened. Under mu_.
  void wake_locked() {
    if (waiter_) waiter_->complete(array());
    if (polling_) {
      const uint64_t one = 1;
      [[maybe_unused]] const ssize_t w = ::write(wake_fd_, &one, sizeof one);
    }
  }

  // The upstream's reads, on the driving thread.
  void on_read(bool ok) {
    if (ok) expect_parallel_work();  // the pool's workers wake while the step is taken in and prepared
    std::lock_guard lock(mu_);
    wake_locked();
    if (!ok) {
      up_done_ = true;
      up_link_heard_ = clock::now();
      return;
    }
    if (queue_locked(in_)) carried_ = true;
    up_.Read(&in_, start(read_done_));
  }
  void on_up_written(bool ok) { up_writes_.completed(ok); }

  // The downstream: its replies (stages older than protocol 1.4 answer through the Run streams) go up; its
  // end while this stream still runs means the next stage was lost.
  void on_down_started(bool ok) {
    // (1.8) The answer to a link offer comes in the initial metadata, read before any message.
    if (ok && down_offered_) return down_->ReadInitialMetadata(start(down_answered_));
    on_down_answered(ok);
  }
  void on_down_answered(bool ok) {
    {
      std::lock_guard lock(mu_);
      down_open_ = true;
      down_answer_came_ = ok;
      wake_locked();
    }
    if (!ok) return down_->Finish(&down_status_, start(down_finished_));
    down_->Read(&down_in_, start(down_read_));
  }
  void on_metadata_sent(bool) {
    std::lock_guard lock(mu_);
    metadata_sent_ = true;
    wake_locked();
  }
  void on_down_read(bool ok) {
    if (!ok) return down_->Finish(&down_status_, start(down_finished_));
    up_writes_.push(std::move(down_in_));
    down_in_.Clear();
    down_->Read(&down_in_, start(down_read_));
  }
  void on_down_finished(bool) {
    std::lock_guard lock(mu_);
    down_done_ = true;
    wake_locked();
    const std::string next = st_->assignment.next_address();
    end_as_lost("the next stage " + next + " was lost: " + down_status_.error_message(), next);
  }
  void on_down_written(bool ok) { down_writes_.completed(ok); }

  // The Loop stream: its first message says it is open; the steps of rings follow. Its end while this stream
  // still runs means the last stage was lost.
  void on_loop_started(bool ok) {
    if (!ok) return loop_->Finish(&loop_status_, start(loop_finished_));
    loop_->Read(&loop_in_, start(loop_opened_));
  }
  void on_loop_opened(bool ok) {
    if (!ok) return loop_->Finish(&loop_status_, start(loop_finished_));
    {
      std::lock_guard lock(mu_);
      loop_open_ = true;
      wake_locked();
    }
    loop_in_.Clear();
    loop_->Read(&loop_in_, start(loop_read_));
  }
  void on_loop_read(bool ok) {
    if (!ok) return loop_->Finish(&loop_status_, start(loop_finished_));
    expect_parallel_work();
    {
      std::lock_guard lock(mu_);
      wake_locked();
      queue_locked(loop_in_);
    }
    loop_->Read(&loop_in_, start(loop_read_));
  }
  void on_loop_finished(bool) {
    std::lock_guard lock(mu_);
    loop_done_ = true;
    wake_locked();
    if (!loop_open_) return;  // open_loop() says why
    const std::string last = st_->assignment.loop_address();
    end_as_lost("the Loop stream from the last stage " + last + " ended: " + loop_status_.error_message(),
                last);
  }

  // Moves a step that arrived, or each step of a carrier, into the inbox; true for a carrier. Under mu_.
  bool queue_locked(v1::StepRequest& in) {
    const bool carrier = in.steps_size() > 0;
    if (carrier) {
      for (v1::StepRequest& step : *in.mutable_steps()) inbox_.push_back(std::move(step));
    } else {
      inbox_.push_back(std::move(in));
    }
    in.Clear();
    return carrier;
  }

  // This stream ends as when a stage is lost, the first time only: `why` (naming `node`) goes up with step id
  // 0, then the read ends, and the coordinator re-plans. Not while winding down, when streams end anyway.
  void end_as_lost(const std::string& why, const std::string& node) {
    if (winding_down_ || down_lost_.exchange(true)) return;
    v1::StepReply e;
    e.set_error(why);
    e.set_error_node(node);
    up_writes_.push(std::move(e));
    up_writes_.when_flushed([this] { ctx_.TryCancel(); });
  }

  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<v1::StepReply, v1::StepRequest> up_{&ctx_};
  std::shared_ptr<stage_service::loaded> st_;
  std::shared_ptr<stage_service::reply_sink> direct_;    // the last stage's way to the coordinator, if open
  std::shared_ptr<stage_service::loop_sink> loop_sink_;  // the last stage's way to the first, if open
  std::unique_ptr<v1::Stage::Stub> stub_;
  grpc::ClientContext down_ctx_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::StepRequest, v1::StepReply>> down_;
  v1::StepReply down_in_;
  grpc::Status down_status_;
  std::unique_ptr<v1::Stage::Stub> loop_stub_;
  grpc::ClientContext loop_ctx_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::RepliesRequest, v1::StepRequest>> loop_;
  v1::StepRequest loop_in_;
  grpc::Status loop_status_;

  // (1.8) Local links: to the next stage, from the stage before, from the last stage (the first stage's).
  std::unique_ptr<local_link> down_link_, up_link_, loop_link_;
  bool down_offered_ = false;  // set before the call starts
  int wake_fd_ = -1;           // the eventfd that wakes the thread in poll()

  std::mutex mu_;  // guards what follows, up to the thread's own
  std::deque<v1::StepRequest> inbox_;
  bool up_done_ = false, down_open_ = false, down_done_ = false, loop_open_ = false, loop_done_ = false;
  // (1.8) The next stage's initial metadata came, with its answer to a link offer.
  bool down_answer_came_ = false;
  bool metadata_sent_ = false, polling_ = false, up_link_over_ = false;
  clock::time_point up_link_heard_;  // the last step on the link from the stage before, or its call's end
  comm::request::state* waiter_ = nullptr;
  v1::StepRequest in_;  // the read in flight's

  std::atomic<bool> down_lost_ = false, winding_down_ = false;
  std::atomic<bool> carried_ = false;  // (1.6) the upstream sends carriers, so this stage sends them too
  // The thread's own.
  bool left_ = false;
  bool up_link_read_over_ = false, loop_link_over_ = false;
  std::vector<v1::StepRequest> onward_;
  std::vector<v1::StepReply> answers_;
  std::vector<v1::StepRequest> looped_;  // the steps of rings, made by the last stage

  comm::rpc::cq_driver::tag up_written_ = then(this, &run_call::on_up_written);
  comm::rpc::cq_driver::tag down_written_ = then(this, &run_call::on_down_written);
  comm::rpc::write_queue<v1::StepReply> up_writes_{
      [this](const v1::StepReply& r) { up_.Write(r, start(up_written_)); }};
  comm::rpc::write_queue<v1::StepRequest> down_writes_{
      [this](const v1::StepRequest& r) { down_->Write(r, start(down_written_)); }};
  comm::rpc::cq_driver::tag accepted_ = then(this, &run_call::on_accepted);
  comm::rpc::cq_driver::tag read_done_ = then(this, &run_call::on_read);
  comm::rpc::cq_driver::tag down_started_ = then(this, &run_call::on_down_started);
  comm::rpc::cq_driver::tag down_answered_ = then(this, &run_call::on_down_answered);
  comm::rpc::cq_driver::tag metadata_sent_tag_ = then(this, &run_call::on_metadata_sent);
  comm::rpc::cq_driver::tag down_read_ = then(this, &run_call::on_down_read);
  comm::rpc::cq_driver::tag down_finished_ = then(this, &run_call::on_down_finished);
  comm::rpc::cq_driver::tag loop_started_ = then(this, &run_call::on_loop_started);
  comm::rpc::cq_driver::tag loop_opened_ = then(this, &run_call::on_loop_opened);
  comm::rpc::cq_driver::tag loop_read_ = then(this, &run_call::on_loop_read);
  comm::rpc::cq_driver::tag loop_finished_ = then(this, &run_call::on_loop_finished);
  comm::rpc::cq_driver::tag writes_done_ = then<async_call>(this, &run_call::ignore);
};

void stage_server::accept_run(stage_server* s) {
  run_call::accept(s);
}

}  // namespace mlxd::dist
