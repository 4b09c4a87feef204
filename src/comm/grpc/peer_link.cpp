#include "comm/grpc/peer_link.h"

#include "comm/grpc/capabilities.h"
#include "comm/grpc/frame.h"
#include "comm/grpc/wire.h"
#include "mlxd/core/thread_name.h"

namespace mlxd::comm::rpc {
namespace {

using sys_clock = std::chrono::system_clock;

// Chunks up to this size are copied into their message; larger ones are sent from the array's memory.
constexpr size_t copy_below = 64 << 10;
constexpr const char* exchange_method = "/mlxd.v1.Comm/Exchange";

}  // namespace

grpc::ChannelArguments channel_arguments(std::chrono::milliseconds keepalive,
                                         std::chrono::milliseconds keepalive_timeout,
                                         size_t max_message_bytes) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(keepalive.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(keepalive_timeout.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per link
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);            // see start_server in node.cpp
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, wire::max_frame_bytes);
  args.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(max_message_bytes + 4096, INT32_MAX)));
  args.SetMaxSendMessageSize(static_cast<int>(std::min<size_t>(max_message_bytes + 4096, INT32_MAX)));
  return args;
}

void add_call_metadata(grpc::ClientContext& ctx, const std::string& token) {
  ctx.AddMetadata(wire::protocol_key,
                  std::to_string(wire::protocol_major) + "." + std::to_string(wire::protocol_minor));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
}

peer_link::peer_link(link_config config, int peer, std::string address,
                     std::shared_ptr<grpc::Channel> channel, std::function<void(const std::string&)> on_lost)
    : config_(std::move(config)),
      peer_(peer),
      address_(std::move(address)),
      name_("rank " + std::to_string(peer) + " (" + address_ + ")"),
      channel_(std::move(channel)),
      stub_(v1::Comm::NewStub(channel_)),
      on_lost_(std::move(on_lost)),
      generic_(channel_) {}

peer_link::~peer_link() {
  close();
  cq_.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
  }
}

void peer_link::connect(sys_clock::time_point deadline) {
  grpc::ClientContext ctx;
  add_call_metadata(ctx, config_.token);
  ctx.set_deadline(deadline);
  ctx.set_wait_for_ready(true);  // the peer may not listen yet
  v1::HelloRequest hello;
  hello.set_protocol_major(wire::protocol_major);
  hello.set_protocol_minor(wire::protocol_minor);
  hello.set_node_id(config_.node_id);
  hello.set_rank(config_.rank);
  hello.set_world_size(config_.world_size);
  fill_capabilities(hello.mutable_capabilities());
  v1::HelloReply reply;
  grpc::Status s = stub_->Hello(&ctx, hello, &reply);
  if (!s.ok())
    throw comm_error("handshake with " + name_ + " failed: " +
                     (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                          ? "no answer within the connect timeout"
                          : s.error_message()));
  if (reply.protocol_major() != wire::protocol_major || reply.rank() != peer_)
    throw comm_error("handshake with " + name_ + " failed: it answered as rank " +
                     std::to_string(reply.rank()) + " speaking mlxd protocol " +
                     std::to_string(reply.protocol_major()) + "." + std::to_string(reply.protocol_minor()));
  add_call_metadata(stream_ctx_, config_.token);
  stream_ctx_.AddMetadata(wire::rank_key, std::to_string(config_.rank));
  stream_ = generic_.PrepareCall(&stream_ctx_, exchange_method, &cq_);
  if (!stream_ || !run_op([&](void* tag) { stream_->StartCall(tag); }, deadline))
    throw comm_error("handshake with " + name_ + " failed: the Exchange stream did not open");
}

bool peer_link::run_op(const std::function<void(void*)>& start, sys_clock::time_point deadline,
                       bool* timed_out) {
  int op_tag = 0;
  start(&op_tag);
  for (;;) {
    void* got = nullptr;
    bool ok = false;
    switch (cq_.AsyncNext(&got, &ok, deadline)) {
      case grpc::CompletionQueue::GOT_EVENT:
        if (got == &op_tag) return ok;
        break;
      case grpc::CompletionQueue::TIMEOUT:
        // The operation completes, unsuccessfully, once the call is cancelled.
        stream_ctx_.TryCancel();
        deadline = sys_clock::time_point::max();
        if (timed_out) *timed_out = true;
        break;
      case grpc::CompletionQueue::SHUTDOWN:
        return false;
    }
  }
}

void peer_link::finish_stream(sys_clock::time_point deadline) {
  if (finished_) return;
  finished_ = true;
  // The status comes after the server's one message (its summary), which must be read first.
  grpc::ByteBuffer summary;
  run_op([&](void* t) { stream_->Read(&summary, t); }, deadline);
  run_op([&](void* t) { stream_->Finish(&final_status_, t); }, deadline);
}

std::string peer_link::broken_reason(bool timed_out) {
  finish_stream(sys_clock::now() + std::chrono::seconds(5));
  if (timed_out)
    return name_ + " read nothing for " + std::to_string(config_.timeout.count()) +
           " ms (a receiver buffers at most max_buffered_bytes of messages not yet received)";
  return "the connection to " + name_ + " broke (" + final_status_.error_message() + ")";
}

void peer_link::fail(const std::string& why) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    if (failed_.empty()) {
      failed_ = why;
      first = true;
    }
  }
  if (first && on_lost_) on_lost_(why);
}

void peer_link::write_message(uint64_t group, uint64_t tag, const array& x, const char* op) {
  const size_t total = x.nbytes();
  size_t offset = 0;
  bool timed_out = false;
  do {
    const size_t n = std::min(config_.chunk_bytes, total - offset);
    grpc::ByteBuffer message = frame::encode_chunk(group, tag, x, offset, n, copy_below);
    grpc::WriteOptions options;
    // Referenced memory must be written out before the caller may change it.
    if (n > copy_below) options.set_write_through();
    if (!run_op([&](void* t) { stream_->Write(message, options, t); }, sys_clock::now() + config_.timeout,
                &timed_out)) {
      const std::string why = broken_reason(timed_out);
      fail(why);
      throw comm_error(std::string(op) + ": send to " + name_ + " failed: " + why);
    }
    offset += n;
  } while (offset < total);
}

void peer_link::send(uint64_t group, uint64_t tag, const array& x, const char* op) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
  if (!failed_.empty()) throw comm_error(std::string(op) + ": send to " + name_ + " failed: " + failed_);
  if (closed_ || !stream_) throw comm_error(std::string(op) + ": the link to " + name_ + " is closed");
  busy_ = true;
  lock.unlock();
  try {
    write_message(group, tag, x, op);
  } catch (...) {
    lock.lock();
    busy_ = false;
    cv_.notify_all();
    throw;
  }
  lock.lock();
  busy_ = false;
  cv_.notify_all();
}

void peer_link::isend(uint64_t group, uint64_t tag, array x, const char* op,
                      std::shared_ptr<request::state> done) {
  std::lock_guard lock(mu_);
  if (!worker_.joinable())
    worker_ = std::thread([this] {
      name_this_thread("mlxd-send-" + std::to_string(peer_));
      worker_loop();
    });
  queue_.push_back({group, tag, std::move(x), op, std::move(done)});
  cv_.notify_all();
}

void peer_link::worker_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || (!queue_.empty() && !busy_); });
    if (queue_.empty()) return;  // stopping with nothing left
    job j = std::move(queue_.front());
    queue_.pop_front();
    if (!failed_.empty() || closed_ || !stream_) {
      const std::string why = failed_.empty() ? "the link is closed" : failed_;
      lock.unlock();
      j.done->fail(std::string(j.op) + ": send to " + name_ + " failed: " + why);
      lock.lock();
      cv_.notify_all();
      continue;
    }
    busy_ = true;
    lock.unlock();
    try {
      write_message(j.group, j.tag, j.x, j.op);
      j.done->complete(array::empty({0}, dtype::u8));
    } catch (const comm_error& e) {
      j.done->fail(e.what());
    }
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

void peer_link::close(const std::string& reason) {
  {
    std::unique_lock lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !busy_; });
  if (closed_) return;
  closed_ = true;
  if (!stream_) return;
  if (failed_.empty() && !finished_) {
    const auto deadline = sys_clock::now() + std::chrono::seconds(2);
    grpc::ByteBuffer bye = frame::encode_goodbye(reason);
    if (run_op([&](void* t) { stream_->Write(bye, t); }, deadline))
      run_op([&](void* t) { stream_->WritesDone(t); }, deadline);
  }
  finish_stream(sys_clock::now() + std::chrono::seconds(2));
}

}  // namespace mlxd::comm::rpc
