#include "dist/stage_server.h"

#include <stdexcept>

#include "comm/grpc/write_queue.h"
#include "comm/request_state.h"
#include "dist/local_link.h"
#include "dist/stage_rpc.h"

namespace mlxd::dist {

std::unique_ptr<local_link> stage_server::call::connect_offered_link(const grpc::ServerContext& ctx,
                                                                     std::string& answer) {
  const auto it = ctx.client_metadata().find(link_key);
  if (it == ctx.client_metadata().end()) return nullptr;
  try {
    auto link = connect_link(std::string(it->second.data(), it->second.size()));
    answer = "ok";
    return link;
  } catch (const std::exception& e) {
    answer = e.what();
    return nullptr;
  }
}

// Answered on the driving thread: a Hello only reads the state.
class stage_server::hello_call final : public stage_server::call {
 public:
  static void accept(stage_server* s) { new hello_call(s); }

 private:
  explicit hello_call(stage_server* s) : call(s) {
    grpc_service().RequestHello(&ctx_, &request_, &responder_, cq(), cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept);
    v1::StageHelloReply reply;
    const grpc::Status s = service().hello(ctx_, request_, &reply);
    answer(responder_, reply, s);
  }

  grpc::ServerContext ctx_;
  v1::StageHelloRequest request_;
  grpc::ServerAsyncResponseWriter<v1::StageHelloReply> responder_{&ctx_};
  comm::rpc::cq_driver::tag accepted_ = then(this, &hello_call::on_accepted);
};

// Loading a stage takes seconds: on a thread of its own.
class stage_server::assign_call final : public stage_server::call {
 public:
  static void accept(stage_server* s) { new assign_call(s); }

 private:
  explicit assign_call(stage_server* s) : call(s) {
    grpc_service().RequestAssign(&ctx_, &request_, &responder_, cq(), cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept);
    run_on_thread("mlxd-assign", [this] {
      v1::AssignReply reply;
      const grpc::Status s = service().assign(ctx_, request_, &reply);
      answer(responder_, reply, s);
    });
  }

  grpc::ServerContext ctx_;
  v1::Assignment request_;
  grpc::ServerAsyncResponseWriter<v1::AssignReply> responder_{&ctx_};
  comm::rpc::cq_driver::tag accepted_ = then(this, &assign_call::on_accepted);
};

// Weights arrive in chunks of megabytes that go to disk: on a thread of its own, which waits for each chunk
// by driving the queue.
class stage_server::upload_call final : public stage_server::call {
 public:
  static void accept(stage_server* s) { new upload_call(s); }

 private:
  explicit upload_call(stage_server* s) : call(s) {
    grpc_service().RequestUpload(&ctx_, &reader_, cq(), cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept);
    run_on_thread("mlxd-upload", [this] {
      v1::UploadReply reply;
      const grpc::Status s = service().upload(
          ctx_, [this](v1::WeightsChunk* c) { return read(c); }, &reply);
      answer(reader_, reply, s);
    });
  }
  // The thread's hold keeps the call, so the read needs no count of its own. The state is shared: the
  // driving thread may still be in complete() when this thread sees it done and returns.
  bool read(v1::WeightsChunk* c) {
    reading_ = std::make_shared<comm::request::state>();
    const auto got = reading_;
    reader_.Read(c, comm::rpc::op(read_done_));
    driver().wait(*got);
    return read_ok_;
  }
  void on_read(bool ok) {
    const auto got = reading_;
    read_ok_ = ok;
    got->complete(array());
  }

  grpc::ServerContext ctx_;
  grpc::ServerAsyncReader<v1::UploadReply, v1::WeightsChunk> reader_{&ctx_};
  std::shared_ptr<comm::request::state> reading_;
  bool read_ok_ = false;
  comm::rpc::cq_driver::tag accepted_ = then(this, &upload_call::on_accepted);
  comm::rpc::cq_driver::tag read_done_{[this](bool ok) { on_read(ok); }};
};

// A plan's Replies stream on its last stage, or (1.7) its Loop stream there: the Run stream's thread queues
// replies (the steps of rings) on it; its reads only wait for the caller to end it. A Loop call (1.8) or a
// Replies call (1.9) may offer a local link: what the sink carries then goes there.
template <class Kind>
class stage_server::sink_call final : public stage_server::call {
 public:
  static void accept(stage_server* s) { new sink_call(s); }

 private:
  using message = typename Kind::message;
  using sink = stage_service::sink<message>;
  explicit sink_call(stage_server* s) : call(s) {
    Kind::request(grpc_service(), &ctx_, &stream_, cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept);
    grpc::Status s = rpc::admit(ctx_, service().options().cluster_token);
    if (!s.ok()) return finish(s);
    plan_ = rpc::plan_of(ctx_);
    sink_ = std::make_shared<sink>();
    answer_link();
    if (link_)
      sink_->push = [link = link_](const message& m) { return link->send(m); };
    else
      sink_->push = [this](const message& m) { return writes_.push(m); };
    {
      // Registered and announced under the sink's lock, so the announcement is the stream's first message.
      std::lock_guard lock(sink_->mu);
      s = Kind::open(service(), plan_, sink_);
      if (s.ok()) writes_.push(message());
    }
    if (!s.ok()) return finish(s);
    stream_.Read(&ignored_, start(read_done_));
  }
  void on_read(bool ok) {
    if (ok) return stream_.Read(&ignored_, start(read_done_));
    Kind::close(service(), plan_, sink_);
    if (link_) link_->close_writing();
    writes_.close([this] { finish(grpc::Status::OK); });
  }
  // Connects to the link the caller offers, if it does; the answer ("ok" or why not) goes in the initial
  // metadata, with the stream's first message. The connect to a local listening socket does not wait.
  void answer_link() {
    std::string answer;
    link_ = connect_offered_link(ctx_, answer);
    if (link_) service().count_link();
    if (!answer.empty()) ctx_.AddInitialMetadata(link_key, answer);
  }
  void finish(const grpc::Status& s) {
    ended_ = true;
    stream_.Finish(s, start(finished_));
  }
  void on_written(bool ok) { writes_.completed(ok); }

  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<message, v1::RepliesRequest> stream_{&ctx_};
  uint64_t plan_ = 0;
  std::shared_ptr<sink> sink_;
  std::shared_ptr<local_link> link_;  // (1.8) shared with the sink's push
  v1::RepliesRequest ignored_;
  comm::rpc::cq_driver::tag written_ = then(this, &sink_call::on_written);
  comm::rpc::write_queue<message> writes_{[this](const message& m) { stream_.Write(m, start(written_)); }};
  comm::rpc::cq_driver::tag accepted_ = then(this, &sink_call::on_accepted);
  comm::rpc::cq_driver::tag read_done_ = then(this, &sink_call::on_read);
};

namespace {

// What tells a Replies call from a Loop call: the message, the method to ask gRPC for, and the service's
// registration of the sink.
template <class Message, auto request_method, auto open_method, auto close_method>
struct sink_kind {
  using message = Message;
  using sink = stage_service::sink<Message>;
  static void request(v1::Stage::AsyncService& g, grpc::ServerContext* ctx,
                      grpc::ServerAsyncReaderWriter<Message, v1::RepliesRequest>* s,
                      grpc::ServerCompletionQueue* cq, void* tag) {
    (g.*request_method)(ctx, s, cq, cq, tag);
  }
  static grpc::Status open(stage_service& s, uint64_t plan, const std::shared_ptr<sink>& k) {
    return (s.*open_method)(plan, k);
  }
  static void close(stage_service& s, uint64_t plan, const std::shared_ptr<sink>& k) {
    (s.*close_method)(plan, k);
  }
};

using replies_kind = sink_kind<v1::StepReply, &v1::Stage::AsyncService::RequestReplies,
                               &stage_service::open_replies, &stage_service::close_replies>;
using loop_kind = sink_kind<v1::StepRequest, &v1::Stage::AsyncService::RequestLoop, &stage_service::open_loop,
                            &stage_service::close_loop>;

}  // namespace

stage_server::stage_server(stage_service& service, grpc::ServerBuilder& builder, const std::string& address)
    : service_(service) {
  builder.RegisterService(&grpc_service_);
  auto cq = builder.AddCompletionQueue();
  server_ = builder.BuildAndStart();
  if (!server_) throw std::runtime_error("[worker] cannot listen on " + address);
  driver_ = std::make_shared<comm::rpc::cq_driver>(
      std::move(cq), [] {}, rpc::background_after);
  hello_call::accept(this);
  assign_call::accept(this);
  upload_call::accept(this);
  sink_call<replies_kind>::accept(this);
  sink_call<loop_kind>::accept(this);
  accept_run(this);
  driver_->start();
}

stage_server::~stage_server() {
  shutdown(std::chrono::system_clock::now());
}

void stage_server::shutdown(std::chrono::system_clock::time_point deadline) {
  {
    std::unique_lock lock(mu_);
    if (shutting_down_) return cv_.wait(lock, [&] { return stopped_; });
    shutting_down_ = true;
  }
  server_->Shutdown(deadline);
  calls_.drain();
  driver_->stop();
  parked_.clear();
  std::lock_guard lock(mu_);
  stopped_ = true;
  cv_.notify_all();
}

}  // namespace mlxd::dist
