#include "dist/cluster_server.h"

#include <stdexcept>

#include "dist/stage_rpc.h"

namespace mlxd::dist {

// A Join or Members call. Both run on a thread of their own: a join reaches the worker and re-plans, and
// either takes the coordinator's locks, which a thread waiting on the queue may hold.
class cluster_server::call : public comm::rpc::async_call {
 public:
  ~call() override {
    if (began_) srv_->calls_.ended();
  }

 protected:
  explicit call(cluster_server* srv) : async_call(*srv->driver_, srv->parked_), srv_(srv) {}
  // gRPC gave this handler its call: counts it, asks for the next one (`next`) and runs `work` on a thread
  // that keeps the call until it returns.
  void begin(void (*next)(cluster_server*), std::function<void()> work) {
    began_ = true;
    srv_->calls_.began();
    next(srv_);
    hold();
    srv_->calls_.spawn([this, work = std::move(work)] {
      work();
      settle();
    });
  }

  cluster_server* srv_;

 private:
  bool began_ = false;
};

class cluster_server::join_call final : public cluster_server::call {
 public:
  static void accept(cluster_server* s) { new join_call(s); }

 private:
  explicit join_call(cluster_server* s) : call(s) {
    grpc::ServerCompletionQueue* q = cq();  // read before start() hands the call to the driving thread
    s->grpc_service_.RequestJoin(&ctx_, &request_, &responder_, q, q, start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept, [this] {
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

class cluster_server::members_call final : public cluster_server::call {
 public:
  static void accept(cluster_server* s) { new members_call(s); }

 private:
  explicit members_call(cluster_server* s) : call(s) {
    grpc::ServerCompletionQueue* q = cq();  // as in join_call
    s->grpc_service_.RequestMembers(&ctx_, &request_, &responder_, q, q, start(accepted_));
  }
  void on_accepted(bool ok) {
    if (!ok) return park();
    begin(accept, [this] {
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
