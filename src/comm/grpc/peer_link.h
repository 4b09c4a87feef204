// The client side of one rank-to-rank connection: a channel with keepalive, the handshake, and one long-lived
// Exchange stream that carries every message to that peer in order.
//
// The stream is driven through a completion queue of its own by the thread that writes, so a send involves
// no other thread; chunks are encoded by frame.h, pointing at the array's memory. send() writes in the
// caller's thread; isend() queues for a worker thread; both keep the order in which they were called. A write
// that fails, or that makes no progress for `timeout` (the peer stopped reading), breaks the link for good
// and reports the peer as lost.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "comm/request_state.h"
#include "mlxd/v1/comm.grpc.pb.h"

namespace mlxd::comm::rpc {

struct link_config {
  int rank = 0;  // this rank
  int world_size = 1;
  std::string node_id;
  std::string token;
  size_t chunk_bytes = 1 << 20;
  // How long one chunk's write may wait for the peer to read (see group_options::timeout).
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

// Channel arguments shared by every mlxd client: keepalive, message limits, fast reconnects, HTTP/2 windows.
grpc::ChannelArguments channel_arguments(std::chrono::milliseconds keepalive,
                                         std::chrono::milliseconds keepalive_timeout,
                                         size_t max_message_bytes);
// Adds the protocol version and (when set) the cluster token to a call.
void add_call_metadata(grpc::ClientContext& ctx, const std::string& token);

class peer_link {
 public:
  // `on_lost` is told (once) why the link broke.
  peer_link(link_config config, int peer, std::string address, std::shared_ptr<grpc::Channel> channel,
            std::function<void(const std::string&)> on_lost);
  ~peer_link();
  peer_link(const peer_link&) = delete;
  peer_link& operator=(const peer_link&) = delete;

  // Handshake, then opens the Exchange stream. Waits for the peer to come up until `deadline`; throws
  // comm_error naming the peer (refused version, wrong token, timeout).
  void connect(std::chrono::system_clock::time_point deadline);
  // Returns once gRPC holds no reference to x's memory any more (x may then change).
  void send(uint64_t group, uint64_t tag, const array& x, const char* op);
  // Completes `done` when the bytes are out; x must not change until then.
  void isend(uint64_t group, uint64_t tag, array x, const char* op, std::shared_ptr<request::state> done);
  // Goodbye (with `reason`, why this process leaves, "" for a plain exit), close the stream, stop the worker.
  // Errors are ignored (the peer may be gone already).
  void close(const std::string& reason = "");
  const std::string& name() const { return name_; }

 private:
  struct job {
    uint64_t group, tag;
    array x;
    const char* op;
    std::shared_ptr<request::state> done;
  };
  void write_message(uint64_t group, uint64_t tag, const array& x, const char* op);
  // Starts an operation with `start(tag)` and waits for its completion on cq_; false when it failed or
  // did not complete by `deadline` (the call is then cancelled).
  bool run_op(const std::function<void(void*)>& start, std::chrono::system_clock::time_point deadline,
              bool* timed_out = nullptr);
  // Reads the server's summary and the final status (once).
  void finish_stream(std::chrono::system_clock::time_point deadline);
  // Why the stream broke, from its final status.
  std::string broken_reason(bool timed_out);
  void fail(const std::string& why);
  void worker_loop();

  link_config config_;
  int peer_;
  std::string address_, name_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Comm::Stub> stub_;
  std::function<void(const std::string&)> on_lost_;

  // The Exchange stream, used by one thread at a time (the one that set busy_).
  grpc::GenericStub generic_;
  grpc::CompletionQueue cq_;
  grpc::ClientContext stream_ctx_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream_;
  bool finished_ = false;  // Finish has run on stream_
  grpc::Status final_status_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> queue_;
  bool busy_ = false, stopping_ = false, closed_ = false;
  std::string failed_;  // why the link broke; "" while healthy
  std::thread worker_;
};

}  // namespace mlxd::comm::rpc
