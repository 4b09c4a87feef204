#include "comm/grpc/service.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "comm/grpc/admission.h"
#include "comm/grpc/capabilities.h"
#include "comm/grpc/frame.h"
#include "comm/grpc/tsan_sync.h"

namespace mlxd::comm::rpc {
namespace {

const protocol_id& comm_protocol() {
  static const protocol_id id{"mlxd protocol", wire::protocol_key, wire::protocol_major,
                              wire::protocol_minor};
  return id;
}

std::string ours() {
  return "this node speaks mlxd protocol " + version_string(wire::protocol_major, wire::protocol_minor);
}

// A call refused before it starts.
template <class Base>
class refused final : public Base {
 public:
  explicit refused(const grpc::Status& s) { this->Finish(s); }
  void OnDone() override { delete this; }
};

// One rank's stream of point-to-point messages: every chunk is validated, complete tensors go to the mailbox.
// Between chunks the mailbox may pause the stream (too many bytes from this rank wait for a recv); it is
// resumed from the thread that makes room.
class exchange_reactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  exchange_reactor(comm_service* svc, int src, grpc::ByteBuffer* summary)
      : svc_(svc), src_(src), summary_(summary), assembler_(svc->id().limits) {
    svc_->stream_opened(src_);
    read_next();
  }
  void OnReadDone(bool ok) override {
    tsan_acquire(this);
    if (!ok) return end_of_stream();
    std::string error = envelope_.parse(message_);
    message_.Clear();
    if (!error.empty()) return refuse(error);
    if (goodbye_) return refuse("rank " + std::to_string(src_) + " sent a message after its goodbye");
    if (envelope_.goodbye) {
      if (assembler_.in_progress()) return refuse("goodbye inside a tensor: " + assembler_.progress());
      goodbye_ = true;
      goodbye_reason_ = envelope_.goodbye_reason;
      return read_next();
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
    if (!svc_->box().pause(src_, this, [this] { read_next(); })) read_next();
  }
  // Only a paused stream needs this: otherwise its pending read reports the end.
  void OnCancel() override {
    tsan_acquire(this);
    if (svc_->box().cancel_pause(src_, this))
      lost("its call was cancelled", grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }
  void OnDone() override {
    tsan_acquire(this);
    delete this;
  }

 private:
  // Every hand-over to gRPC (the next read, the end) tells TSan it orders this callback before the next.
  void read_next() {
    tsan_release(this);
    StartRead(&message_);
  }
  void finish(const grpc::Status& status) {
    tsan_release(this);
    Finish(status);
  }
  void end_of_stream() {
    if (goodbye_) {
      svc_->stream_closed(src_, true, goodbye_reason_);
      v1::ExchangeSummary summary;
      summary.set_messages(n_messages_);
      grpc::Slice bytes(summary.SerializeAsString());
      *summary_ = grpc::ByteBuffer(&bytes, 1);
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

  comm_service* svc_;
  int src_;
  grpc::ByteBuffer* summary_;
  wire::assembler assembler_;
  grpc::ByteBuffer message_;
  frame::envelope envelope_;
  uint64_t group_ = 0, tag_ = 0, n_messages_ = 0;
  size_t reserved_ = 0;                      // counted in the mailbox for the tensor in progress
  std::shared_ptr<request::state> claimed_;  // the receive whose sink the tensor in progress fills
  bool goodbye_ = false;
  std::string goodbye_reason_;
};

// Receives tensors and sends each back, chunk by chunk, until the client closes its side.
class echo_reactor final : public grpc::ServerBidiReactor<v1::TensorChunk, v1::TensorChunk> {
 public:
  explicit echo_reactor(comm_service* svc) : svc_(svc), assembler_(svc->id().limits) { StartRead(&in_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      if (assembler_.in_progress())
        return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "stream ended inside a tensor: " + assembler_.progress()));
      return Finish(grpc::Status::OK);
    }
    std::optional<array> done;
    std::string error;
    try {
      error = assembler_.add(in_, done);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error));
    if (!done) return StartRead(&in_);
    out_tensor_ = std::move(*done);
    offset_ = 0;
    write_next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "echo write failed"));
    if (offset_ < out_tensor_.nbytes()) return write_next();
    StartRead(&in_);
  }
  void OnDone() override { delete this; }

 private:
  void write_next() {
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
    StartWrite(&out_);
  }

  comm_service* svc_;
  wire::assembler assembler_;
  v1::TensorChunk in_, out_;
  array out_tensor_;
  size_t offset_ = 0;
};

}  // namespace

class comm_service::join_reactor final : public grpc::ServerUnaryReactor {
 public:
  explicit join_reactor(comm_service* svc) : svc_(svc) {}
  void OnCancel() override { svc_->cancel_join(this); }
  void OnDone() override { delete this; }

 private:
  comm_service* svc_;
};

comm_service::comm_service(identity id, mailbox* box)
    : id_(std::move(id)),
      box_(box),
      opened_(id_.world_size, false),
      closed_(id_.world_size, false),
      addresses_(id_.world_size) {}

grpc::Status comm_service::admit(const grpc::CallbackServerContext* ctx) const {
  grpc::Status s = check_token(*ctx, id_.token);
  return s.ok() ? check_version(*ctx, comm_protocol(), "this node") : s;
}

grpc::ServerUnaryReactor* comm_service::Hello(grpc::CallbackServerContext* ctx,
                                              const v1::HelloRequest* request, v1::HelloReply* reply) {
  auto* reactor = ctx->DefaultReactor();
  grpc::Status s = admit(ctx);
  if (s.ok() && request->protocol_major() != wire::protocol_major)
    s = {grpc::StatusCode::FAILED_PRECONDITION,
         "the caller speaks mlxd protocol " +
             version_string(request->protocol_major(), request->protocol_minor()) + " and " + ours() +
             " (major versions must match)"};
  if (s.ok() && request->rank() >= 0 &&
      (request->world_size() != id_.world_size || request->rank() >= id_.world_size ||
       request->rank() == id_.rank))
    s = {grpc::StatusCode::FAILED_PRECONDITION, "the caller claims rank " + std::to_string(request->rank()) +
                                                    " of " + std::to_string(request->world_size()) +
                                                    ", but this node is rank " + std::to_string(id_.rank) +
                                                    " of " + std::to_string(id_.world_size)};
  if (s.ok()) {
    reply->set_protocol_major(wire::protocol_major);
    reply->set_protocol_minor(wire::protocol_minor);
    reply->set_node_id(id_.node_id);
    reply->set_rank(id_.rank);
    reply->set_world_size(id_.world_size);
    fill_capabilities(reply->mutable_capabilities());
  }
  reactor->Finish(s);
  return reactor;
}

grpc::ServerReadReactor<grpc::ByteBuffer>* comm_service::Exchange(grpc::CallbackServerContext* ctx,
                                                                  grpc::ByteBuffer* summary) {
  grpc::Status s = admit(ctx);
  if (!s.ok()) return new refused<grpc::ServerReadReactor<grpc::ByteBuffer>>(s);
  auto it = ctx->client_metadata().find(wire::rank_key);
  int src = -1;
  if (it != ctx->client_metadata().end()) {
    const std::string text(it->second.data(), it->second.size());
    char extra = 0;
    if (std::sscanf(text.c_str(), "%d%c", &src, &extra) != 1) src = -1;
  }
  if (src < 0 || src >= id_.world_size || src == id_.rank)
    return new refused<grpc::ServerReadReactor<grpc::ByteBuffer>>(
        {grpc::StatusCode::INVALID_ARGUMENT,
         "the Exchange call needs an mlxd-rank of another rank of this group of " +
             std::to_string(id_.world_size)});
  return new exchange_reactor(this, src, summary);
}

grpc::ServerBidiReactor<v1::TensorChunk, v1::TensorChunk>* comm_service::Echo(
    grpc::CallbackServerContext* ctx) {
  grpc::Status s = admit(ctx);
  if (!s.ok()) return new refused<grpc::ServerBidiReactor<v1::TensorChunk, v1::TensorChunk>>(s);
  return new echo_reactor(this);
}

grpc::ServerUnaryReactor* comm_service::Join(grpc::CallbackServerContext* ctx, const v1::JoinRequest* request,
                                             v1::JoinReply* reply) {
  auto* reactor = new join_reactor(this);
  grpc::Status s = admit(ctx);
  std::vector<std::pair<join_reactor*, v1::JoinReply*>> ready;
  {
    std::lock_guard lock(mu_);
    const int r = request->rank();
    if (s.ok() && !join_enabled_)
      s = {grpc::StatusCode::FAILED_PRECONDITION, "this node is not the rendezvous master"};
    else if (s.ok() && join_complete_)  // ABORTED: the joiner retries, as this may be a group on its way out
      s = {grpc::StatusCode::ABORTED, "the group is already formed"};
    else if (s.ok() && (request->world_size() != id_.world_size || r <= 0 || r >= id_.world_size))
      s = {grpc::StatusCode::INVALID_ARGUMENT,
           "rank " + std::to_string(r) + " of " + std::to_string(request->world_size()) +
               " does not fit a group of " + std::to_string(id_.world_size)};
    else if (s.ok() && !addresses_[r].empty())
      s = {grpc::StatusCode::ALREADY_EXISTS,
           "rank " + std::to_string(r) + " already joined from " + addresses_[r]};
    else if (s.ok() && request->address().empty())
      s = {grpc::StatusCode::INVALID_ARGUMENT, "a joining rank must give its address"};
    if (s.ok()) {
      addresses_[r] = request->address();
      pending_joins_.emplace_back(reactor, reply);
      if (std::all_of(addresses_.begin(), addresses_.end(),
                      [](const std::string& a) { return !a.empty(); })) {
        join_complete_ = true;
        ready.swap(pending_joins_);
        for (auto& [re, rep] : ready)
          for (const auto& a : addresses_) rep->add_addresses(a);
        cv_.notify_all();
      }
    }
  }
  if (!s.ok()) reactor->Finish(s);
  for (auto& [re, rep] : ready) re->Finish(grpc::Status::OK);
  return reactor;
}

void comm_service::cancel_join(join_reactor* r) {
  std::unique_lock lock(mu_);
  auto it =
      std::find_if(pending_joins_.begin(), pending_joins_.end(), [&](const auto& p) { return p.first == r; });
  if (it == pending_joins_.end()) return;  // already answered
  pending_joins_.erase(it);
  lock.unlock();
  r->Finish(grpc::Status::CANCELLED);
}

void comm_service::enable_join(const std::string& own_address) {
  std::lock_guard lock(mu_);
  join_enabled_ = true;
  addresses_[id_.rank] = own_address;
  join_complete_ = id_.world_size == 1;
}

std::vector<std::string> comm_service::wait_for_joins(clock::time_point deadline) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_until(lock, deadline, [&] { return join_complete_; })) {
    std::string missing;
    for (int r = 0; r < id_.world_size; ++r)
      if (addresses_[r].empty()) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    throw comm_error("rendezvous: ranks " + missing + " did not join within the connect timeout");
  }
  return addresses_;
}

void comm_service::wait_for_streams(clock::time_point deadline) {
  std::unique_lock lock(mu_);
  auto all_open = [&] {
    for (int r = 0; r < id_.world_size; ++r)
      if (r != id_.rank && !opened_[r]) return false;
    return true;
  };
  if (!cv_.wait_until(lock, deadline, all_open)) {
    std::string missing;
    for (int r = 0; r < id_.world_size; ++r)
      if (r != id_.rank && !opened_[r]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    throw comm_error("rendezvous: ranks " + missing + " did not connect to rank " + std::to_string(id_.rank) +
                     " within the connect timeout");
  }
}

void comm_service::wait_for_goodbyes(clock::time_point deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] {
    for (int r = 0; r < id_.world_size; ++r)
      if (r != id_.rank && opened_[r] && !closed_[r]) return false;
    return true;
  });
}

void comm_service::set_peer_names(std::vector<std::string> names) {
  std::lock_guard lock(mu_);
  names_ = std::move(names);
}

std::string comm_service::peer_name(int rank) {
  std::lock_guard lock(mu_);
  if (rank >= 0 && rank < static_cast<int>(names_.size())) return names_[rank];
  return "rank " + std::to_string(rank);
}

void comm_service::stream_opened(int rank) {
  box_->mark_alive(rank);
  std::lock_guard lock(mu_);
  opened_[rank] = true;
  closed_[rank] = false;
  cv_.notify_all();
}

void comm_service::stream_closed(int rank, bool goodbye, const std::string& reason) {
  if (goodbye)
    box_->mark_left(rank, reason);
  else
    box_->mark_lost(rank, reason);
  std::lock_guard lock(mu_);
  closed_[rank] = true;
  cv_.notify_all();
}

}  // namespace mlxd::comm::rpc
