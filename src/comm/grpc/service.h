// The server side of a node: admits calls (cluster token, protocol major version), validates every received
// chunk, and hands complete messages to the mailbox. One instance per node; thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "comm/grpc/wire.h"
#include "comm/mailbox.h"
#include "mlxd/v1/comm.grpc.pb.h"

namespace mlxd::comm::rpc {

struct identity {
  int rank = 0;
  int world_size = 1;
  std::string node_id;
  std::string token;  // empty: no token required
  wire::limits limits;
  size_t echo_chunk_bytes = 1 << 20;
};

// Exchange is a raw method: its messages are decoded by frame.h, straight from gRPC's buffers.
class comm_service final : public v1::Comm::WithRawCallbackMethod_Exchange<v1::Comm::CallbackService> {
 public:
  using clock = std::chrono::steady_clock;
  // `box` receives the messages of Exchange streams; it outlives the server.
  comm_service(identity id, mailbox* box);

  // Master only: accept Join calls; `own_address` is rank 0's. wait_for_joins returns every rank's address
  // once all have joined, or throws comm_error naming the missing ranks at the deadline.
  void enable_join(const std::string& own_address);
  std::vector<std::string> wait_for_joins(clock::time_point deadline);
  // Blocks until every other rank has opened its Exchange stream (throws comm_error naming the missing ranks
  // at the deadline), or until every other rank has said goodbye or been lost (returns at the deadline).
  void wait_for_streams(clock::time_point deadline);
  void wait_for_goodbyes(clock::time_point deadline);

  // Cluster token, then protocol version: the status to refuse a call with, or OK.
  grpc::Status admit(const grpc::CallbackServerContext* ctx) const;

  grpc::ServerUnaryReactor* Hello(grpc::CallbackServerContext* ctx, const v1::HelloRequest* request,
                                  v1::HelloReply* reply) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* Exchange(grpc::CallbackServerContext* ctx,
                                                      grpc::ByteBuffer* summary) override;
  grpc::ServerBidiReactor<v1::TensorChunk, v1::TensorChunk>* Echo(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* ctx, const v1::JoinRequest* request,
                                 v1::JoinReply* reply) override;

  // How errors name each rank once its address is known: "rank 2 (10.0.0.3:8101)".
  void set_peer_names(std::vector<std::string> names);
  std::string peer_name(int rank);
  // Called by the Exchange reactors.
  void stream_opened(int rank);
  // `reason`: why the peer left (its goodbye's reason) or why it was lost.
  void stream_closed(int rank, bool goodbye, const std::string& reason);
  const identity& id() const { return id_; }
  mailbox& box() { return *box_; }

  class join_reactor;
  void cancel_join(join_reactor* r);

 private:
  identity id_;
  mailbox* box_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> opened_, closed_;  // by rank: an Exchange stream has opened / ended
  bool join_enabled_ = false, join_complete_ = false;
  std::vector<std::string> addresses_;  // by rank, "" until joined
  std::vector<std::string> names_;
  std::vector<std::pair<join_reactor*, v1::JoinReply*>> pending_joins_;
};

}  // namespace mlxd::comm::rpc
