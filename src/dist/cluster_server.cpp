#include "dist/cluster_server.h"

#include <stdexcept>

#include "dist/stage_rpc.h"

namespace mlxd::dist {

// Join and Members run on a thread of their own: a join reaches the worker and re-plans, and either takes
// the coordinator's locks, which a thread waiting on the queue may hold.
class cluster_server::join_call final : public server_call<cluster_server> {
 public:
  static void accept(cluster_server* s) { new join_call(s); }

 private:
  explicit join_call(cluster_server* s) : server_call(s) {
    grpc::ServerCompletionQueue* q = cq();  // read before start() hands the call to the driving thread
    s->grpc_service_.RequestJoin(&ctx_, &request_, &responder_, q, q, start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept);
    run_on_thread("mlxd-join", [this] {
      v1::ClusterJoinReply reply;
      const grpc::Status s = srv_->service_.join(ctx_, request_, &reply);
      answer(responder_, reply, s);
    });
  }

  grpc::ServerContext ctx_;
  v1::ClusterJoinRequest request_;
  grpc::ServerAsyncResponseWriter<v1::ClusterJoinReply> responder_{&ctx_};
  comm::rpc::cq_driver::tag accepted_ = then(this, &join_call::on_accepted);
};

class cluster_server::members_call final : public server_call<cluster_server> {
 public:
  static void accept(cluster_server* s) { new members_call(s); }

 private:
  explicit members_call(cluster_server* s) : server_call(s) {
    grpc::ServerCompletionQueue* q = cq();  // as in join_call
    s->grpc_service_.RequestMembers(&ctx_, &request_, &responder_, q, q, start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept);
    run_on_thread("mlxd-members", [this] {
      v1::ClusterMembersReply reply;
      const grpc::Status s = srv_->service_.members(ctx_, &reply);
      answer(responder_, reply, s);
    });
  }

  grpc::ServerContext ctx_;
  v1::ClusterMembersRequest request_;
  grpc::ServerAsyncResponseWriter<v1::ClusterMembersReply> responder_{&ctx_};
  comm::rpc::cq_driver::tag accepted_ = then(this, &members_call::on_accepted);
};

cluster_server::cluster_server(cluster_service& service, grpc::ServerBuilder& builder,
                               const std::string& address)
    : service_(service) {
  builder.RegisterService(&grpc_service_);
  auto cq = builder.AddCompletionQueue();
  server_ = builder.BuildAndStart();
  if (!server_) throw std::runtime_error("[coordinator] cannot listen on " + address + " for joins");
  driver_ = std::make_shared<comm::rpc::cq_driver>(
      std::move(cq), [] {}, rpc::background_after);
  driver_->start();
}

cluster_server::~cluster_server() {
  shutdown();
  driver_->stop();
  parked_.clear();
}

void cluster_server::accept_calls() {
  join_call::accept(this);
  members_call::accept(this);
}

void cluster_server::shutdown() {
  if (shut_) return;
  shut_ = true;
  server_->Shutdown(std::chrono::system_clock::now());
  calls_.drain();
}

}  // namespace mlxd::dist
