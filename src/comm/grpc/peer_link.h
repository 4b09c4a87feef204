// The client side of one rank-to-rank connection: a channel with keepalive, the handshake, and one long-lived
// Exchange stream that carries every message to that peer in order.
//
// send() writes in the caller's thread; isend() queues for a worker thread; both keep the order in which
// they were called. A failed write breaks the link for good and reports the peer as lost.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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
};

// Channel arguments shared by every mlxd client: keepalive, message limits, fast reconnects.
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
  void send(uint64_t group, uint64_t tag, const array& x, const char* op);
  void isend(uint64_t group, uint64_t tag, array x, const char* op, std::shared_ptr<request::state> done);
  // Goodbye, close the stream, stop the worker. Errors are ignored (the peer may be gone already).
  void close();
  const std::string& name() const { return name_; }

 private:
  struct job {
    uint64_t group, tag;
    array x;
    const char* op;
    std::shared_ptr<request::state> done;
  };
  void write_message(uint64_t group, uint64_t tag, const array& x, const char* op);
  void fail(const std::string& why);
  void worker_loop();

  link_config config_;
  int peer_;
  std::string address_, name_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Comm::Stub> stub_;
  std::function<void(const std::string&)> on_lost_;

  grpc::ClientContext stream_ctx_;
  v1::ExchangeSummary summary_;
  std::unique_ptr<grpc::ClientWriter<v1::Envelope>> stream_;
  v1::Envelope envelope_;  // reused by writes (guarded by the busy_ flag)

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> queue_;
  bool busy_ = false, stopping_ = false, closed_ = false;
  std::string failed_;  // why the link broke; "" while healthy
  std::thread worker_;
};

}  // namespace mlxd::comm::rpc
