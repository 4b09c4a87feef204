#include "mlxd/dist/worker.h"

#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "comm/grpc/capabilities.h"
#include "comm/grpc/credentials.h"
#include "comm/grpc/message_memory.h"
#include "comm/grpc/wire.h"
#include "dist/stage_rpc.h"
#include "dist/stage_server.h"
#include "dist/stage_service.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"

namespace mlxd::dist {
namespace {

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// MemAvailable from /proc/meminfo, else physical memory.
uint64_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

// fp32 matmul speed of the kernels this process uses: the best of 20 256^3 products (a few ms).
double measure_gflops() {
  const int n = 256;
  const array a = random::normal(random::split({1}, 0), {n, n}, 0.0f, 1.0f);
  const array b = random::normal(random::split({1}, 1), {n, n}, 0.0f, 1.0f);
  double best = 1e30;
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const array c = matmul(a, b);
    (void)c.data<float>();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

std::string join_host_port(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

struct worker::impl {
  worker_options options;
  std::string node_id;
  worker_capabilities caps;
  std::unique_ptr<stage_service> service;
  std::unique_ptr<stage_server> server;
  int port = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread evictor;
};

worker::worker(const worker_options& o) : impl_(std::make_unique<impl>()) {
  impl& w = *impl_;
  w.options = o;
  if (o.port < 0 || o.port > 65535)
    throw std::invalid_argument("[worker] port " + std::to_string(o.port) + " is not in 0..65535");
  if (!is_loopback(o.host) && o.cluster_token.empty())
    throw std::invalid_argument(
        "[worker] a worker listening on " + o.host +
        " (beyond loopback) needs a cluster token (--cluster-token or MLXD_CLUSTER_TOKEN)");
  if (o.kv_idle_timeout.count() <= 0)
    throw std::invalid_argument("[worker] the KV idle timeout must be positive");
  w.node_id = o.node_id.empty() ? comm::rpc::default_node_id() : o.node_id;
  w.caps.cores = std::thread::hardware_concurrency();
  w.caps.memory_bytes = o.memory_bytes ? o.memory_bytes : available_memory() / 10 * 9;
  w.caps.gflops = measure_gflops();
  w.service = std::make_unique<stage_service>(o, w.node_id, w.caps);
  comm::rpc::keep_message_buffers();
  grpc::ServerBuilder builder;
  const std::string address = join_host_port(o.host, o.port);
  builder.AddListeningPort(address, comm::rpc::server_credentials({o.tls_cert, o.tls_key, o.tls_ca}),
                           &w.port);
  // gRPC sets SO_REUSEPORT by default: a second worker on a taken port would bind too and take part of the
  // first one's connections. Off, the port in use is an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(rpc::max_message_bytes + 4096));
  builder.SetMaxSendMessageSize(static_cast<int>(rpc::max_message_bytes + 4096));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 500);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, comm::wire::max_frame_bytes);
  w.server = std::make_unique<stage_server>(*w.service, builder, address);
  if (w.port == 0) throw std::runtime_error("[worker] cannot listen on " + address);
  const auto period = std::min<std::chrono::milliseconds>(
      o.kv_idle_timeout / 4 + std::chrono::milliseconds(1), std::chrono::seconds(1));
  w.evictor = std::thread([&w, period] {
    std::unique_lock lock(w.mu);
    while (!w.cv.wait_for(lock, period, [&] { return w.stopping; })) w.service->evict_idle();
  });
}

worker::~worker() {
  shutdown();
  impl_->server.reset();  // waits for a shutdown in progress on another thread
  impl_->evictor.join();
}

int worker::port() const {
  return impl_->port;
}
const worker_capabilities& worker::capabilities() const {
  return impl_->caps;
}
const std::string& worker::node_id() const {
  return impl_->node_id;
}

void worker::wait() {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->stopping; });
}

void worker::shutdown() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->server->shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

}  // namespace mlxd::dist
