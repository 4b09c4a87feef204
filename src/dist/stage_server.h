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

#include "comm/grpc/async_call.h"
#include "comm/grpc/cq_driver.h"
#include "dist/server_calls.h"
#include "dist/stage_service.h"

namespace mlxd::dist {

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
  class replies_call;
  class run_call;

 private:
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

// What every call of the stage server has: the server, and its count of live calls once accepted.
class stage_server::call : public comm::rpc::async_call {
 public:
  ~call() override {
    if (began_) srv_->calls_.ended();
  }

 protected:
  explicit call(stage_server* srv) : async_call(*srv->driver_, srv->parked_), srv_(srv) {}
  // gRPC gave this handler its call (on the driving thread, once): counts it and asks for the next call of
  // the method (`next` is the handler's accept).
  void begin(void (*next)(stage_server*)) {
    began_ = true;
    srv_->calls_.began();
    next(srv_);
  }
  // The call's blocking work, on a thread of its own that keeps the call until it returns.
  void run_on_thread(std::function<void()> work) {
    hold();
    srv_->calls_.spawn([this, work = std::move(work)] {
      work();
      settle();
    });
  }
  stage_service& service() { return srv_->service_; }
  v1::Stage::AsyncService& grpc_service() { return srv_->grpc_service_; }

  stage_server* srv_;

 private:
  bool began_ = false;
};

}  // namespace mlxd::dist
