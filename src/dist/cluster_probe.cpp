#include <algorithm>
#include <cmath>
#include <thread>

#include "comm/grpc/credentials.h"
#include "dist/stage_rpc.h"
#include "mlxd/dist/coordinator.h"

namespace mlxd::dist {
namespace {

node_status hello(const std::string& address, const cluster_access& a,
                  const std::shared_ptr<grpc::ChannelCredentials>& creds, int pings) {
  node_status out;
  out.address = address;
  out.info.address = address;
  auto stub = v1::Stage::NewStub(rpc::make_channel(address, creds));
  std::vector<double> times;
  for (int i = 0; i < std::max(1, pings); ++i) {
    grpc::ClientContext ctx;
    rpc::prepare(ctx, a.cluster_token, a.hello_timeout);
    v1::StageHelloRequest req;
    req.set_protocol_major(rpc::protocol_major);
    req.set_protocol_minor(rpc::protocol_minor);
    req.set_caller_id("coordinator");
    v1::StageHelloReply reply;
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status s = stub->Hello(&ctx, req, &reply);
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    if (!s.ok()) {
      out.error = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                          s.error_code() == grpc::StatusCode::UNAVAILABLE
                      ? "unreachable: " + s.error_message()
                      : s.error_message();
      return out;
    }
    if (reply.protocol_major() != rpc::protocol_major) {
      out.error = "it speaks mlxd stage protocol " +
                  rpc::version_string(reply.protocol_major(), reply.protocol_minor()) +
                  " and this coordinator " + rpc::version_string(rpc::protocol_major, rpc::protocol_minor);
      return out;
    }
    out.node_id = reply.node_id();
    out.info.cores = reply.capabilities().cores();
    out.info.memory_bytes = reply.capabilities().memory_bytes();
    const double gflops = reply.capabilities().gflops();
    out.info.gflops = std::isfinite(gflops) && gflops > 0 ? gflops : 0;
    const v1::Assignment& as = reply.assignment();
    out.plan_id = as.plan_id();
    out.layers = {as.layer_begin(), as.layer_end(), as.embedding(), as.head()};
    out.weight_bytes = reply.weight_bytes();
    out.kv_bytes = reply.kv_bytes();
    out.n_sequences = reply.n_sequences();
    out.loads = reply.loads();
    out.layers_read = reply.layers_read();
    out.local_links = reply.local_links();
    out.protocol_minor = reply.protocol_minor();
    out.host_id = reply.host_id();
  }
  std::sort(times.begin(), times.end());
  out.latency_ms = times[times.size() / 2];
  out.healthy = true;
  return out;
}

}  // namespace

std::vector<node_status> probe_cluster(const cluster_access& access, int pings) {
  const auto creds = comm::rpc::channel_credentials({access.tls_cert, access.tls_key, access.tls_ca});
  std::vector<node_status> out(access.workers.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < access.workers.size(); ++i)
    threads.emplace_back([&, i] { out[i] = hello(access.workers[i], access, creds, pings); });
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace mlxd::dist
