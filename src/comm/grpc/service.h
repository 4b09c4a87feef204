// The server side of a node: admits calls (cluster token, protocol major version), validates every received
// chunk, and hands complete messages to the mailbox. One instance per node; thread-safe.
//
// Its calls run on gRPC's asynchronous API, on one completion queue driven by cq_driver: by the thread that
// waits for a message when there is one, else by a background thread (see cq_driver.h for why).
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "comm/grpc/async_call.h"
#include "comm/grpc/cq_driver.h"
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

class comm_service {
 public:
  using clock = std::chrono::steady_clock;
  // Exchange is a raw method: its messages are decoded by frame.h, straight from gRPC's buffers.
  using grpc_service_type = v1::Comm::WithAsyncMethod_Hello<v1::Comm::WithRawMethod_Exchange<
      v1::Comm::WithAsyncMethod_Echo<v1::Comm::WithAsyncMethod_Join<v1::Comm::Service>>>>;

  // `box` receives the messages of Exchange streams; it outlives the service.
  comm_service(identity id, mailbox* box);
  ~comm_service();
  comm_service(const comm_service&) = delete;
  comm_service& operator=(const comm_service&) = delete;

  // What the server registers; once it runs, serve() takes the completion queue made for these calls.
  grpc::Service* grpc_service() { return &grpc_service_; }
  void serve(std::unique_ptr<grpc::ServerCompletionQueue> cq);
  // Drains the queue and stops its driver: after the server's Shutdown, before the server is destroyed
  // (comm_server does it).
  void stop();
  // Receives on this node's mailbox wait through it (request::state::progress).
  std::shared_ptr<progress_engine> progress() { return driver_; }

  // Master only: accept Join calls; `own_address` is rank 0's. wait_for_joins returns every rank's address
  // once all have joined, or throws comm_error naming the missing ranks at the deadline.
  void enable_join(const std::string& own_address);
  std::vector<std::string> wait_for_joins(clock::time_point deadline);
  // Blocks until every other rank has opened its Exchange stream (throws comm_error naming the missing ranks
  // at the deadline), or until every other rank has said goodbye or been lost (returns at the deadline).
  void wait_for_streams(clock::time_point deadline);
  void wait_for_goodbyes(clock::time_point deadline);

  // Cluster token, then protocol version: the status to refuse a call with, or OK.
  grpc::Status admit(const grpc::ServerContextBase& ctx) const;
  // The answer to a Hello.
  grpc::Status hello(const v1::HelloRequest& request, v1::HelloReply* reply) const;
  // The handlers of the four methods' calls (service.cpp).
  class call;
  class hello_call;
  class exchange_call;
  class echo_call;
  class join_call;
  // Records a Join. Returns the status to answer it with now, or OK when `joiner` waits until every rank has
  // joined. The Join that completes the group gets every waiting call (itself too) in `ready`, their
  // replies filled in, to answer.
  grpc::Status join(const v1::JoinRequest& request, join_call* joiner, v1::JoinReply* reply,
                    std::vector<join_call*>* ready);
  // A waiting Join's caller went away: drops it; false when it was answered already.
  bool cancel_join(join_call* joiner);

  // How errors name each rank once its address is known: "rank 2 (10.0.0.3:8101)".
  void set_peer_names(std::vector<std::string> names);
  std::string peer_name(int rank);
  // Called by the Exchange calls.
  void stream_opened(int rank);
  // `reason`: why the peer left (its goodbye's reason) or why it was lost.
  void stream_closed(int rank, bool goodbye, const std::string& reason);
  const identity& id() const { return id_; }
  mailbox& box() { return *box_; }

 private:
  identity id_;
  mailbox* box_;
  grpc_service_type grpc_service_;
  // Starts the reads of the Exchange streams waiting for one (cq_driver's `arm`).
  void arm_streams();
  // Only the driving thread touches these two. Calls whose acceptance failed (the server stopping) are kept
  // until the queue is drained: gRPC may still deliver their done-notification.
  std::vector<exchange_call*> streams_;
  async_call::parking parked_;
  std::shared_ptr<cq_driver> driver_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> opened_, closed_;  // by rank: an Exchange stream has opened / ended
  bool join_enabled_ = false, join_complete_ = false;
  std::vector<std::string> addresses_;  // by rank, "" until joined
  std::vector<std::string> names_;
  std::vector<std::pair<join_call*, v1::JoinReply*>> pending_joins_;
};

}  // namespace mlxd::comm::rpc
