#include "comm/grpc/node.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "comm/grpc/capabilities.h"
#include "comm/grpc/message_memory.h"
#include "comm/grpc/wire.h"
#include "mlxd/comm/rendezvous.h"

namespace mlxd::comm::rpc {
namespace {

using sys_clock = std::chrono::system_clock;

constexpr auto join_retry_pause = std::chrono::milliseconds(20);

std::string join_host_port(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// The local address the kernel would use to reach host:port (no packet is sent).
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res)
    throw comm_error("rendezvous: cannot resolve the master address " + host);
  std::string out;
  const int fd = socket(res->ai_family, SOCK_DGRAM, 0);
  if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    char text[INET6_ADDRSTRLEN] = {};
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      const void* addr = local.ss_family == AF_INET6
                             ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                             : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
      if (inet_ntop(local.ss_family, addr, text, sizeof text)) out = text;
    }
  }
  if (fd >= 0) ::close(fd);
  freeaddrinfo(res);
  if (out.empty()) throw comm_error("rendezvous: no local address routes to the master " + host);
  return out;
}

const group_options& validated(const group_options& o) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size)
    throw std::invalid_argument("[grpc] rank " + std::to_string(o.rank) + " is outside a world of " +
                                std::to_string(o.world_size));
  if (!o.peers.empty() && static_cast<int>(o.peers.size()) != o.world_size)
    throw std::invalid_argument("[grpc] " + std::to_string(o.peers.size()) +
                                " peer addresses for a world of " + std::to_string(o.world_size));
  if (o.peers.empty() && o.master_addr.empty())
    throw std::invalid_argument("[grpc] give the peer list or a master address (MLXD_MASTER_ADDR)");
  if (o.peers.empty() && (o.master_port < 1 || o.master_port > 65535))
    throw std::invalid_argument("[grpc] master port " + std::to_string(o.master_port) +
                                " is not in 1..65535");
  if (o.chunk_bytes == 0 || o.chunk_bytes > o.max_message_bytes)
    throw std::invalid_argument("[grpc] chunk_bytes must be in 1..max_message_bytes");
  if (o.max_message_bytes > (size_t{1} << 30))
    throw std::invalid_argument("[grpc] max_message_bytes is limited to 1 GiB");
  return o;
}

}  // namespace

comm_server::comm_server(comm_service& service, std::unique_ptr<grpc::Server> server)
    : service_(service), server_(std::move(server)) {}

comm_server::~comm_server() {
  shutdown(sys_clock::now() + std::chrono::milliseconds(500));
  service_.stop();
}

void comm_server::shutdown(sys_clock::time_point deadline) {
  if (shut_) return;
  shut_ = true;
  server_->Shutdown(deadline);
}

std::unique_ptr<comm_server> start_server(comm_service& service, const std::string& host, int port,
                                          const group_options& o, int* bound_port) {
  keep_message_buffers();
  grpc::ServerBuilder builder;
  const std::string address = join_host_port(host, port);
  builder.AddListeningPort(address, server_credentials({o.tls_cert, o.tls_key, o.tls_ca}), bound_port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a port in use is an error (worker.cpp)
  builder.RegisterService(service.grpc_service());
  auto cq = builder.AddCompletionQueue();
  const int max_message = static_cast<int>(o.max_message_bytes + 4096);
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(o.keepalive.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(o.keepalive_timeout.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);  // peers ping as often as they like
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // gRPC's bandwidth-delay probing held 16 MB messages to 0.2-0.9 GB/s here; without it they move at the TCP
  // stream's 2-3 GB/s (peer_link.cpp turns it off on the sending side too). Without the probe a stream's
  // window stays at its initial size, so that is 8 MB: a ring step's send must fit in the receiver's window
  // while the receiver is sending too (under a small max_buffered_bytes, the default 64 KB hung a ring).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, wire::max_frame_bytes);
  auto server = builder.BuildAndStart();
  if (!server || *bound_port == 0) throw comm_error("cannot listen on " + address);
  service.serve(std::move(cq));
  return std::make_unique<comm_server>(service, std::move(server));
}

node::node(const group_options& o)
    : options_(validated(o)),
      rank_(o.rank),
      world_size_(o.world_size),
      tls_{o.tls_cert, o.tls_key, o.tls_ca},
      box_(o.world_size, o.max_buffered_bytes) {
  if (options_.node_id.empty()) options_.node_id = default_node_id();
  const auto deadline = sys_clock::now() + o.connect_timeout;

  std::string bind_host = o.bind_host, own_address;
  int bind_port = 0;
  if (!o.peers.empty()) {
    auto [host, port] = split_host_port(o.peers[rank_]);
    if (bind_host.empty()) bind_host = is_loopback_host(host) ? host : "0.0.0.0";
    bind_port = port;
    own_address = o.peers[rank_];
  } else {
    if (bind_host.empty()) bind_host = is_loopback_host(o.master_addr) ? "127.0.0.1" : "0.0.0.0";
    if (rank_ == 0) bind_port = o.master_port;
  }
  if (!is_loopback_host(bind_host) && o.cluster_token.empty())
    throw std::invalid_argument("[grpc] a cluster token is required to listen on " + bind_host +
                                " (set --cluster-token or MLXD_CLUSTER_TOKEN, or bind to 127.0.0.1)");
  service_ = std::make_unique<comm_service>(
      identity{
          rank_, world_size_, options_.node_id, o.cluster_token, {o.max_message_bytes, o.max_tensor_bytes}},
      &box_);
  // The master takes Joins from the moment it listens: a rank that joined earlier than this process got
  // round to it would be told, for good, that this node is not the master.
  if (o.peers.empty() && rank_ == 0)
    service_->enable_join(
        join_host_port(o.advertise_host.empty() ? o.master_addr : o.advertise_host, bind_port));
  server_ = start_server(*service_, bind_host, bind_port, o, &port_);

  if (o.peers.empty()) {
    std::string host = o.advertise_host;
    if (host.empty() && rank_ == 0) host = o.master_addr;
    if (host.empty())
      host =
          is_loopback_host(o.master_addr) ? "127.0.0.1" : local_address_towards(o.master_addr, o.master_port);
    own_address = join_host_port(host, port_);
  }
  addresses_ = o.peers.empty() ? rendezvous(own_address) : o.peers;
  std::vector<std::string> names;
  for (int r = 0; r < world_size_; ++r) names.push_back(peer_name(r));
  service_->set_peer_names(std::move(names));

  links_.resize(world_size_);
  auto creds = channel_credentials(tls_);
  auto args = channel_arguments(o.keepalive, o.keepalive_timeout, o.max_message_bytes);
  link_config lc{rank_, world_size_, options_.node_id, o.cluster_token, o.chunk_bytes, o.timeout};
  for (int i = 1; i < world_size_; ++i) {
    const int r = (rank_ + i) % world_size_;
    auto channel = grpc::CreateCustomChannel(addresses_[r], creds, args);
    links_[r] = std::make_unique<peer_link>(lc, r, addresses_[r], channel,
                                            [this, r](const std::string& why) { box_.mark_lost(r, why); });
    links_[r]->connect(deadline);
  }
  service_->wait_for_streams(std::chrono::steady_clock::now() + (deadline - sys_clock::now()));
}

std::vector<std::string> node::rendezvous(const std::string& own_address) {
  const auto deadline = sys_clock::now() + options_.connect_timeout;
  if (rank_ == 0) {
    return service_->wait_for_joins(std::chrono::steady_clock::now() + options_.connect_timeout);
  }
  const std::string master = join_host_port(options_.master_addr, options_.master_port);
  auto channel = grpc::CreateCustomChannel(
      master, channel_credentials(tls_),
      channel_arguments(options_.keepalive, options_.keepalive_timeout, options_.max_message_bytes));
  auto stub = v1::Comm::NewStub(channel);
  v1::JoinRequest request;
  request.set_rank(rank_);
  request.set_world_size(world_size_);
  request.set_address(own_address);
  request.set_node_id(options_.node_id);
  v1::JoinReply reply;
  grpc::Status s;
  // A master that answers "already formed", or cancels the call or drops the connection, may be the
  // previous group of the same processes (which form groups one after another on one master port) on its
  // way out: ask again until the new group forms or time runs out.
  auto transient = [](const grpc::Status& st) {
    return st.error_code() == grpc::StatusCode::ABORTED || st.error_code() == grpc::StatusCode::CANCELLED ||
           st.error_code() == grpc::StatusCode::UNAVAILABLE;
  };
  for (;;) {
    grpc::ClientContext ctx;
    add_call_metadata(ctx, options_.cluster_token);
    ctx.set_deadline(deadline);
    ctx.set_wait_for_ready(true);
    s = stub->Join(&ctx, request, &reply);
    if (!transient(s) || sys_clock::now() + join_retry_pause >= deadline) break;
    std::this_thread::sleep_for(join_retry_pause);
  }
  if (!s.ok())
    throw comm_error("rendezvous with the master " + master + " failed: " +
                     (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                          ? "not every rank joined within the connect timeout"
                          : s.error_message()));
  if (reply.addresses_size() != world_size_)
    throw comm_error("rendezvous: the master " + master + " sent " + std::to_string(reply.addresses_size()) +
                     " addresses for a world of " + std::to_string(world_size_));
  std::vector<std::string> out(reply.addresses().begin(), reply.addresses().end());
  for (const auto& a : out) split_host_port(a);
  return out;
}

std::string node::peer_name(int world_rank) const {
  if (world_rank == rank_) return "rank " + std::to_string(world_rank) + " (this process)";
  return "rank " + std::to_string(world_rank) + " (" + addresses_[world_rank] + ")";
}

node::~node() {
  const std::string why = box_.first_loss();
  for (auto& l : links_)
    if (l) l->close(why);
  if (service_) service_->wait_for_goodbyes(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  if (server_) server_->shutdown(sys_clock::now() + std::chrono::milliseconds(500));
  links_.clear();
}

}  // namespace mlxd::comm::rpc
