// The comm service's calls on gRPC's asynchronous API. Each handler owns itself: it asks gRPC for the next
// call of its method and, when one comes, first asks for another, then serves this one. Every completion
// runs on the thread that drives the queue (cq_driver), one at a time.
#include <algorithm>
#include <cstdio>
#include <mutex>

#include "comm/grpc/async_call.h"
#include "comm/grpc/frame.h"
#include "comm/grpc/service.h"

namespace mlxd::comm::rpc {

// The comm service's own view of a call: the service it serves.
class comm_service::call : public async_call {
 protected:
  explicit call(comm_service* svc) : async_call(*svc->driver_, svc->parked_), svc_(svc) {}

  comm_service* svc_;
};

class comm_service::hello_call final : public comm_service::call {
 public:
  static void accept(comm_service* svc) { new hello_call(svc); }

 private:
  explicit hello_call(comm_service* svc) : call(svc) {
    svc_->grpc_service_.RequestHello(&ctx_, &request_, &responder_, cq(), cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    accept(svc_);
    ended_ = true;
    if (closing()) return;
    v1::HelloReply reply;
    grpc::Status s = svc_->admit(ctx_);
    if (s.ok()) s = svc_->hello(request_, &reply);
    answer(responder_, reply, s);
  }

  grpc::ServerContext ctx_;
  v1::HelloRequest request_;
  grpc::ServerAsyncResponseWriter<v1::HelloReply> responder_{&ctx_};
  cq_driver::tag accepted_ = then(this, &hello_call::on_accepted);
};

// A Join waits until every rank has joined; a caller that goes away is dropped from the waiting ones.
class comm_service::join_call final : public comm_service::call {
 public:
  static void accept(comm_service* svc) { new join_call(svc); }
  // On the driving thread, once.
  void answer(const grpc::Status& s) {
    ended_ = true;
    if (!closing()) async_call::answer(responder_, reply_, s);
  }

 private:
  explicit join_call(comm_service* svc) : call(svc) {
    ctx_.AsyncNotifyWhenDone(op(done_));
    svc_->grpc_service_.RequestJoin(&ctx_, &request_, &responder_, cq(), cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    hold();  // for the done-notification asked for before the call was requested
    accept(svc_);
    grpc::Status s = svc_->admit(ctx_);
    std::vector<join_call*> ready;
    if (s.ok()) s = svc_->join(request_, this, &reply_, &ready);
    if (!s.ok()) answer(s);
    for (auto* c : ready) c->answer(grpc::Status::OK);
  }
  void on_done(bool) {
    if (ctx_.IsCancelled() && svc_->cancel_join(this)) answer(grpc::Status::CANCELLED);
  }

  grpc::ServerContext ctx_;
  v1::JoinRequest request_;
  v1::JoinReply reply_;
  grpc::ServerAsyncResponseWriter<v1::JoinReply> responder_{&ctx_};
  cq_driver::tag accepted_ = then(this, &join_call::on_accepted);
  cq_driver::tag done_ = then(this, &join_call::on_done);
};

// One rank's stream of point-to-point messages: every chunk is validated, complete tensors go to the mailbox.
// A read starts only while some thread drives the queue (cq_driver's `arm`). Between messages the mailbox
// may pause the stream (too many bytes from this rank wait for a recv); the thread that makes room resumes
// it.
class comm_service::exchange_call final : public comm_service::call {
 public:
  static void accept(comm_service* svc) { new exchange_call(svc); }
  ~exchange_call() override {
    auto& streams = svc_->streams_;
    streams.erase(std::remove(streams.begin(), streams.end(), this), streams.end());
  }
  // Starts the next read when the stream waits for one. On the driving thread.
  void arm() {
    int expected = idle;
    if (state_.compare_exchange_strong(expected, reading)) read();
  }

 private:
  enum : int { idle, reading, paused, over };

  explicit exchange_call(comm_service* svc) : call(svc), assembler_(svc->id().limits) {
    ctx_.AsyncNotifyWhenDone(op(done_));
    svc_->grpc_service_.RequestExchange(&ctx_, &reader_, cq(), cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    hold();  // for the done-notification asked for before the call was requested
    accept(svc_);
    grpc::Status s = svc_->admit(ctx_);
    const int src = sender_rank();
    if (s.ok() && (src < 0 || src >= svc_->id().world_size || src == svc_->id().rank))
      s = {grpc::StatusCode::INVALID_ARGUMENT,
           "the Exchange call needs an mlxd-rank of another rank of this "
           "group of " +
               std::to_string(svc_->id().world_size)};
    if (!s.ok()) return finish(s);
    src_ = src;
    svc_->stream_opened(src_);
    svc_->streams_.push_back(this);
    arm();
  }
  int sender_rank() const {
    auto it = ctx_.client_metadata().find(wire::rank_key);
    if (it == ctx_.client_metadata().end()) return -1;
    const std::string text(it->second.data(), it->second.size());
    int src = -1;
    char extra = 0;
    return std::sscanf(text.c_str(), "%d%c", &src, &extra) == 1 ? src : -1;
  }
  void read() {
    if (closing()) return stop_reading();
    reader_.Read(&message_, start(read_done_));
  }
  // On the driving thread.
  void stop_reading() {
    state_ = over;
    ended_ = true;
  }
  // From the thread that made room in the mailbox. A node being destroyed has no such thread.
  void resume() {
    std::lock_guard lock(resume_mu_);
    int expected = paused;
    if (!closing() && state_.compare_exchange_strong(expected, reading))
      reader_.Read(&message_, start(read_done_));
  }
  void on_read(bool ok) {
    { std::lock_guard lock(resume_mu_); }  // a read resume() started: it has returned from starting it
    if (!ok) return end_of_stream();
    std::string error = envelope_.parse(message_);
    message_.Clear();
    if (!error.empty()) return refuse(error);
    if (goodbye_) return refuse("rank " + std::to_string(src_) + " sent a message after its goodbye");
    if (envelope_.goodbye) {
      if (assembler_.in_progress()) return refuse("goodbye inside a tensor: " + assembler_.progress());
      goodbye_ = true;
      goodbye_reason_ = envelope_.goodbye_reason;
      state_ = idle;
      return;
    }
    if (!envelope_.has_chunk) return refuse("envelope without a chunk");
    if (assembler_.in_progress() && (envelope_.group != group_ || envelope_.tag != tag_))
      return refuse("group or tag changed inside a tensor");
    group_ = envelope_.group;
    tag_ = envelope_.tag;
    const bool starts = !assembler_.in_progress();
    if (starts) {
      // A receive already waiting with memory of the right size gets the bytes straight away.
      const auto t = wire::from_wire(envelope_.chunk.dtype);
      claimed_ = t ? svc_->box().claim_sink(group_, src_, tag_, *t, envelope_.chunk.total_bytes) : nullptr;
      if (claimed_)
        assembler_.write_next_to(
            [sink = claimed_->sink.get()](const char* p, size_t n) { sink->write(p, n); });
    }
    std::optional<array> done;
    try {
      error = assembler_.add(
          envelope_.chunk, envelope_.data_size(),
          [&](const auto& piece) { envelope_.for_each_data_piece(piece); }, done);
    } catch (const std::exception& e) {  // allocation failure of a tensor within the limits
      error = e.what();
    }
    if (!error.empty()) return refuse(error);
    if (starts && !claimed_) {
      reserved_ = static_cast<size_t>(envelope_.chunk.total_bytes);
      svc_->box().reserve(src_, reserved_);
    }
    if (done) {
      if (claimed_)
        claimed_->complete_in_sink();
      else
        svc_->box().deliver(group_, src_, tag_, std::move(*done), reserved_);
      claimed_.reset();
      reserved_ = 0;
      ++n_messages_;
    }
    // Paused before asking, so that a resume that comes at once finds it paused.
    state_ = paused;
    if (!svc_->box().pause(src_, this, [this] { resume(); })) {
      int expected = paused;
      state_.compare_exchange_strong(expected, idle);
    }
  }
  // A paused stream has no read to report its end: its call's cancellation does.
  void on_done(bool) {
    if (src_ >= 0 && ctx_.IsCancelled() && svc_->box().cancel_pause(src_, this))
      lost("its call was cancelled", grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    else if (closing() && state_ != reading)
      stop_reading();  // the queue drains: no read will come to end it
  }
  void end_of_stream() {
    if (goodbye_) {
      svc_->stream_closed(src_, true, goodbye_reason_);
      v1::ExchangeSummary summary;
      summary.set_messages(n_messages_);
      grpc::Slice bytes(summary.SerializeAsString());
      summary_ = grpc::ByteBuffer(&bytes, 1);
      return finish(grpc::Status::OK);
    }
    if (assembler_.in_progress()) return refuse("stream ended inside a tensor: " + assembler_.progress());
    lost("its connection closed without a goodbye",
         grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended without a goodbye"));
  }
  void lost(const std::string& why, const grpc::Status& status) {
    drop_message(svc_->peer_name(src_) + " was lost: " + why);
    finish(status);
  }
  void refuse(const std::string& why) {
    drop_message(svc_->peer_name(src_) + " sent a malformed message: " + why);
    finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
  }
  // The stream ends: the message in progress never completes.
  void drop_message(const std::string& reason) {
    svc_->box().release(src_, reserved_);
    if (claimed_) claimed_->fail(claimed_->what + " failed: " + reason);
    claimed_.reset();
    reserved_ = 0;
    svc_->stream_closed(src_, false, reason);
  }
  void finish(const grpc::Status& status) {
    stop_reading();
    if (closing()) return;
    if (status.ok())
      reader_.Finish(summary_, status, start(finished_));
    else
      reader_.FinishWithError(status, start(finished_));
  }

  grpc::ServerContext ctx_;
  grpc::ServerAsyncReader<grpc::ByteBuffer, grpc::ByteBuffer> reader_{&ctx_};
  std::atomic<int> state_{idle};
  int src_ = -1;  // the sending rank, once admitted
  wire::assembler assembler_;
  grpc::ByteBuffer message_, summary_;
  frame::envelope envelope_;
  uint64_t group_ = 0, tag_ = 0, n_messages_ = 0;
  size_t reserved_ = 0;                      // counted in the mailbox for the tensor in progress
  std::shared_ptr<request::state> claimed_;  // the receive whose sink the tensor in progress fills
  bool goodbye_ = false;
  std::string goodbye_reason_;
  cq_driver::tag accepted_ = then(this, &exchange_call::on_accepted);
  std::mutex resume_mu_;  // see on_read
  cq_driver::tag read_done_ = then(this, &exchange_call::on_read);
  cq_driver::tag done_ = then(this, &exchange_call::on_done);
};

// Receives tensors and sends each back, chunk by chunk, until the client closes its side.
class comm_service::echo_call final : public comm_service::call {
 public:
  static void accept(comm_service* svc) { new echo_call(svc); }

 private:
  explicit echo_call(comm_service* svc) : call(svc), assembler_(svc->id().limits) {
    svc_->grpc_service_.RequestEcho(&ctx_, &stream_, cq(), cq(), start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    accept(svc_);
    const grpc::Status s = svc_->admit(ctx_);
    if (!s.ok()) return finish(s);
    read();
  }
  void read() {
    if (closing()) return finish(grpc::Status::CANCELLED);
    stream_.Read(&in_, start(read_done_));
  }
  void on_read(bool ok) {
    if (!ok) {
      if (assembler_.in_progress())
        return finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "stream ended inside a tensor: " + assembler_.progress()));
      return finish(grpc::Status::OK);
    }
    std::optional<array> done;
    std::string error;
    try {
      error = assembler_.add(in_, done);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) return finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error));
    if (!done) return read();
    out_tensor_ = std::move(*done);
    offset_ = 0;
    write_next();
  }
  void on_written(bool ok) {
    if (!ok) return finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "echo write failed"));
    if (offset_ < out_tensor_.nbytes()) return write_next();
    read();
  }
  void write_next() {
    if (closing()) return finish(grpc::Status::CANCELLED);
    const size_t total = out_tensor_.nbytes();
    const size_t n = std::min(svc_->id().echo_chunk_bytes, total - offset_);
    out_.set_dtype(wire::to_wire(out_tensor_.type()));
    out_.clear_shape();
    for (int64_t d : out_tensor_.shape()) out_.add_shape(d);
    out_.set_total_bytes(total);
    out_.set_offset(offset_);
    out_.mutable_data()->assign(static_cast<const char*>(out_tensor_.raw_data()) + offset_, n);
    offset_ += n;
    if (total == 0) offset_ = 1;  // the one chunk of an empty tensor is out
    stream_.Write(out_, start(written_));
  }
  void finish(const grpc::Status& s) {
    ended_ = true;
    if (!closing()) stream_.Finish(s, start(finished_));
  }

  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<v1::TensorChunk, v1::TensorChunk> stream_{&ctx_};
  wire::assembler assembler_;
  v1::TensorChunk in_, out_;
  array out_tensor_;
  size_t offset_ = 0;
  cq_driver::tag accepted_ = then(this, &echo_call::on_accepted);
  cq_driver::tag read_done_ = then(this, &echo_call::on_read);
  cq_driver::tag written_ = then(this, &echo_call::on_written);
};

comm_service::~comm_service() {
  stop();
}

void comm_service::stop() {
  if (driver_) driver_->stop();
  parked_.clear();
}

void comm_service::serve(std::unique_ptr<grpc::ServerCompletionQueue> cq) {
  driver_ = std::make_shared<cq_driver>(std::move(cq), [this] { arm_streams(); });
  hello_call::accept(this);
  exchange_call::accept(this);
  echo_call::accept(this);
  join_call::accept(this);
  driver_->start();
}

void comm_service::arm_streams() {
  for (auto* s : streams_) s->arm();
}

}  // namespace mlxd::comm::rpc
