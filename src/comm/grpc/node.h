// One process's membership in a gRPC world: its server, its links to every other rank, and its mailbox.
// Shared by the world group and every group split from it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "comm/grpc/credentials.h"
#include "comm/grpc/peer_link.h"
#include "comm/grpc/service.h"
#include "comm/mailbox.h"
#include "mlxd/comm/options.h"

namespace mlxd::comm::rpc {

// A running server of a comm_service. It ends in the order gRPC's asynchronous API needs: the server shuts
// down (calls still open are cancelled at the deadline), the service's queue is drained, and only then is
// the server destroyed (gRPC keeps requests of its own on that queue that point into it).
class comm_server {
 public:
  comm_server(comm_service& service, std::unique_ptr<grpc::Server> server);
  ~comm_server();
  comm_server(const comm_server&) = delete;
  comm_server& operator=(const comm_server&) = delete;
  void shutdown(std::chrono::system_clock::time_point deadline);

 private:
  comm_service& service_;
  std::unique_ptr<grpc::Server> server_;
  bool shut_ = false;
};

// Starts a gRPC server for `service` on host:port (port 0 picks a free one) with the keepalive and message
// limits of `o`. Returns the server and sets `*bound_port`; throws comm_error when it cannot listen.
std::unique_ptr<comm_server> start_server(comm_service& service, const std::string& host, int port,
                                          const group_options& o, int* bound_port);

class node {
 public:
  // Listens, finds every rank (peer list or master), connects to all of them and waits until all have
  // connected back. Throws std::invalid_argument for bad options and comm_error when forming fails.
  explicit node(const group_options& o);
  // Says goodbye to every peer, waits briefly for theirs, stops the server.
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  mailbox& box() { return box_; }
  // What a receive waits through (see cq_driver.h).
  std::shared_ptr<progress_engine> progress() { return service_->progress(); }
  const group_options& options() const { return options_; }
  // null for this rank.
  peer_link* link(int world_rank) { return links_[world_rank].get(); }
  std::string peer_name(int world_rank) const;

 private:
  void listen(const std::string& host, int port);
  std::vector<std::string> rendezvous(const std::string& own_address);

  group_options options_;
  int rank_, world_size_;
  tls_files tls_;
  mailbox box_;
  std::unique_ptr<comm_service> service_;
  std::unique_ptr<comm_server> server_;
  int port_ = 0;
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<peer_link>> links_;
};

}  // namespace mlxd::comm::rpc
