// The worker's gRPC server for the stage protocol, on gRPC's asynchronous API with one completion queue that
// comm's cq_driver drives: the thread of a Run stream that waits for a step reads it itself. With the
// synchronous API a step went from gRPC's poller thread through a reader thread to the stage's thread, and
// that hand-over alone took 60-100 us per worker and token on this VM. Calls that block (Assign's load,
// Upload, Run's compute) get a thread of their own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "comm/grpc/cq_driver.h"
#include "dist/server_calls.h"
#include "dist/stage_service.h"

namespace mlxd::dist {

class local_link;

class stage_server {
 public:
  // Registers the calls on `builder` (its port and options set), builds the server and serves. Throws
  // std::runtime_error naming `address` when it cannot listen.
  stage_server(stage_service& service, grpc::ServerBuilder& builder, const std::string& address);
  ~stage_server();
  stage_server(const stage_server&) = delete;
  stage_server& operator=(const stage_server&) = delete;

  // Refuses new calls, cancels those still running at `deadline`, and returns once every call has ended and
  // the queue is drained (a second caller waits for the first).
  void shutdown(std::chrono::system_clock::time_point deadline);

  class call;
  class hello_call;
  class assign_call;
  class upload_call;
  template <class Kind>
  class sink_call;
  class run_call;

 private:
  template <class>
  friend class server_call;
  static void accept_run(stage_server* s);  // stage_run.cpp

  stage_service& service_;
  v1::Stage::AsyncService grpc_service_;
  std::shared_ptr<comm::rpc::cq_driver> driver_;
  comm::rpc::async_call::parking parked_;  // only the driving thread touches it
  std::unique_ptr<grpc::Server> server_;   // destroyed before the queue and the service it points into
  server_calls calls_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool shutting_down_ = false, stopped_ = false;
};

// What every call of the stage server has: the server, its count of live calls once accepted, and the
// stage protocol's logic.
class stage_server::call : public server_call<stage_server> {
 protected:
  using server_call::server_call;
  stage_service& service() { return srv_->service_; }
  v1::Stage::AsyncService& grpc_service() { return srv_->grpc_service_; }
  // (1.8) The local link the caller offers in `ctx`'s metadata, connected; null when it offers none (`answer`
  // left empty) or when it cannot be taken (`answer` says why). Counted by the caller once in use.
  static std::unique_ptr<local_link> connect_offered_link(const grpc::ServerContext& ctx,
                                                          std::string& answer);
};

}  // namespace mlxd::dist
