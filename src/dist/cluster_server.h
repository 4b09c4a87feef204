// The coordinator's gRPC server for joins (the Cluster service), on gRPC's asynchronous API. Its completion
// queue is the one the coordinator's pipeline streams use for their calls too, so one thread at a time reads
// every gRPC event of the process, the one that waits for a reply. A synchronous server's threads took the
// pipeline's events from it: `serve --workers` decoded 3-15% slower with a cluster port.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "comm/grpc/cq_driver.h"
#include "dist/cluster_service.h"
#include "dist/server_calls.h"

namespace mlxd::dist {

class cluster_server {
 public:
  // Registers the service on `builder` (its port and options set) and builds the server, which accepts calls
  // once accept_calls() is called. Throws std::runtime_error naming `address` when it cannot listen.
  cluster_server(cluster_service& service, grpc::ServerBuilder& builder, const std::string& address);
  // Stops the server if shutdown() has not, then the queue: every pipeline stream on it is gone by then.
  ~cluster_server();
  cluster_server(const cluster_server&) = delete;
  cluster_server& operator=(const cluster_server&) = delete;

  const std::shared_ptr<comm::rpc::cq_driver>& driver() const { return driver_; }
  void accept_calls();
  // Refuses new calls and returns once the running ones have ended; the queue goes on for the pipelines.
  void shutdown();

  class join_call;
  class members_call;

 private:
  template <class>
  friend class server_call;

  cluster_service& service_;
  v1::Cluster::AsyncService grpc_service_;
  std::shared_ptr<comm::rpc::cq_driver> driver_;
  comm::rpc::async_call::parking parked_;  // only the driving thread touches it
  std::unique_ptr<grpc::Server> server_;   // destroyed before the queue and the service it points into
  server_calls calls_;
  bool shut_ = false;
};

}  // namespace mlxd::dist
