// `mlxd bench comm`: point-to-point latency and bandwidth over the gRPC group beside a raw TCP socket between
// the same two processes in the same run, and all-reduce algbw/busbw (nccl-tests definitions) for 2..N ranks
// beside the same ring algorithm over raw TCP sockets. Started without MLXD_RANK it launches itself as N
// local ranks; rank 0 prints one JSON object.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "bench_stats.h"
#include "bench_tcp.h"
#include "comm_flags.h"
#include "commands.h"
#include "mlxd/comm/launch.h"
#include "mlxd/comm/registry.h"
#include "mlxd/comm/rendezvous.h"

namespace mlxd::app {
namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

struct bench_args {
  int ranks = 4;
  int max_mb = 256;
  int max_allreduce_mb = 128;
  int latency_iters = 2000;
};

// The median of each rank's times, taken as the slowest rank's (a collective is as slow as its slowest rank).
double slowest_median(comm::group& g, const std::vector<double>& t) {
  return g.all_reduce(array::from({static_cast<float>(median(t))}, {1}), comm::reduce_op::max).item<float>();
}

// Round trip of `bytes` (rank 0 -> 1 -> 0), median over iterations, in microseconds.
std::pair<double, double> ping_pong(comm::group& g, int fd, size_t bytes, int iters) {
  array msg = array::empty({static_cast<int64_t>(bytes)}, dtype::u8);
  std::memset(msg.mutable_data<uint8_t>(), 1, bytes);
  std::vector<char> buf(bytes);
  std::vector<double> grpc_us, tcp_us;
  for (int i = 0; i < iters + iters / 10; ++i) {  // the first tenth warms up
    const bool keep = i >= iters / 10;
    auto t = clock_type::now();
    if (g.rank() == 0) {
      g.send(msg, 1, 2);
      g.recv(1, 2);
    } else {
      g.send(g.recv(0, 2), 0, 2);
    }
    if (keep) grpc_us.push_back(seconds_since(t) * 1e6);
    t = clock_type::now();
    if (g.rank() == 0) {
      tcp::write_all(fd, buf.data(), bytes);
      tcp::read_all(fd, buf.data(), bytes);
    } else {
      tcp::read_all(fd, buf.data(), bytes);
      tcp::write_all(fd, buf.data(), bytes);
    }
    if (keep) tcp_us.push_back(seconds_since(t) * 1e6);
  }
  return {median(grpc_us), median(tcp_us)};
}

// One-way transfer of `bytes` from rank 0 to 1 ended by a 1-byte acknowledgement; GB/s (1e9 bytes/s).
std::pair<double, double> stream(comm::group& g, int fd, size_t bytes, int iters) {
  array msg = array::empty({static_cast<int64_t>(bytes)}, dtype::u8);
  std::memset(msg.mutable_data<uint8_t>(), 1, bytes);
  std::vector<char> buf(bytes);
  array ack = array::empty({1}, dtype::u8);
  std::vector<double> grpc_s, tcp_s;
  for (int i = 0; i <= iters; ++i) {  // the first is a warm-up
    auto t = clock_type::now();
    if (g.rank() == 0) {
      g.send(msg, 1, 3);
      g.recv(1, 3);
    } else {
      g.recv(0, 3);
      g.send(ack, 0, 3);
    }
    if (i > 0) grpc_s.push_back(seconds_since(t));
    t = clock_type::now();
    char one = 0;
    if (g.rank() == 0) {
      tcp::write_all(fd, buf.data(), bytes);
      tcp::read_all(fd, &one, 1);
    } else {
      tcp::read_all(fd, buf.data(), bytes);
      tcp::write_all(fd, &one, 1);
    }
    if (i > 0) tcp_s.push_back(seconds_since(t));
  }
  return {static_cast<double>(bytes) / median(grpc_s) / 1e9,
          static_cast<double>(bytes) / median(tcp_s) / 1e9};
}

// All-reduce of f32 ones over gRPC and over the TCP ring, alternating, for each size up to the limit.
void all_reduce_rows(comm::group& g, const bench_args& a, double tcp_stream_gbs, nlohmann::json& out) {
  const int k = g.size();
  tcp::ring ring;
  tcp::connect_ring(g, ring);
  for (int mb = 1; mb <= a.max_allreduce_mb; mb *= 4) {
    const size_t bytes = static_cast<size_t>(mb) << 20;
    array x = array::empty({static_cast<int64_t>(bytes / 4)}, dtype::f32);
    std::fill_n(x.mutable_data<float>(), x.size(), 1.0f);
    std::vector<float> y(bytes / 4);
    const int iters = std::clamp(256 / mb, 2, 10);
    std::vector<double> t, t_tcp;
    for (int i = 0; i <= iters; ++i) {  // the first is a warm-up
      g.barrier();
      auto t0 = clock_type::now();
      g.all_reduce(x, comm::reduce_op::sum);
      if (i > 0) t.push_back(seconds_since(t0));
      std::fill(y.begin(), y.end(), 1.0f);
      g.barrier();
      t0 = clock_type::now();
      tcp::ring_all_reduce(ring, y.data(), static_cast<int64_t>(y.size()), g.rank(), k);
      if (i > 0) t_tcp.push_back(seconds_since(t0));
    }
    if (y.front() != static_cast<float>(k) || y.back() != static_cast<float>(k))
      throw std::runtime_error("bench: the TCP ring all-reduce gave a wrong sum");
    const double bus = 2.0 * (k - 1) / k;
    const double algbw = static_cast<double>(bytes) / slowest_median(g, t) / 1e9;
    const double tcp_busbw = static_cast<double>(bytes) / slowest_median(g, t_tcp) / 1e9 * bus;
    nlohmann::json row = {{"ranks", k},
                          {"bytes", bytes},
                          {"time_ms", static_cast<double>(bytes) / algbw / 1e6},
                          {"algbw_GBps", algbw},
                          {"busbw_GBps", algbw * bus},
                          {"tcp_ring_busbw_GBps", tcp_busbw},
                          {"ratio_vs_tcp_ring", algbw * bus / tcp_busbw}};
    if (tcp_stream_gbs > 0) row["ratio_vs_tcp_stream"] = algbw * bus / tcp_stream_gbs;
    out.push_back(row);
  }
}

nlohmann::json run_bench(comm::group& world, const bench_args& a, const comm::group_options& o) {
  nlohmann::json out;
  out["world"] = world.size();
  out["backend"] = world.backend();
  out["cluster_token"] = !o.cluster_token.empty();
  out["tls"] = o.tls_cert.empty() ? "off" : o.tls_ca.empty() ? "tls" : "mutual tls";
  double tcp_stream_gbs = 0;  // the best raw TCP stream, on ranks 0 and 1
  auto pair = world.split(world.rank() < 2 ? 0 : -1, world.rank());
  if (pair) {
    const int fd = tcp::connect_pair(*pair);
    for (size_t bytes : {size_t{8}, size_t{16384}}) {
      auto [grpc_us, tcp_us] = ping_pong(*pair, fd, bytes, a.latency_iters);
      out["p2p_latency"].push_back(
          {{"bytes", bytes}, {"grpc_rtt_us", grpc_us}, {"tcp_rtt_us", tcp_us}, {"ratio", grpc_us / tcp_us}});
    }
    for (int mb = 1; mb <= a.max_mb; mb *= 4) {
      const size_t bytes = static_cast<size_t>(mb) << 20;
      const int iters = std::clamp(512 / mb, 2, 20);
      auto [grpc_gbs, tcp_gbs] = stream(*pair, fd, bytes, iters);
      tcp_stream_gbs = std::max(tcp_stream_gbs, tcp_gbs);
      out["p2p_bandwidth"].push_back(
          {{"bytes", bytes}, {"grpc_GBps", grpc_gbs}, {"tcp_GBps", tcp_gbs}, {"ratio", grpc_gbs / tcp_gbs}});
    }
    close(fd);
    out["tcp_stream_GBps"] = tcp_stream_gbs;
  }
  world.barrier();
  for (int k = 2; k <= world.size(); ++k) {
    auto sub = world.split(world.rank() < k ? 0 : -1, world.rank());
    if (sub) all_reduce_rows(*sub, a, tcp_stream_gbs, out["all_reduce"]);
    world.barrier();
  }
  return out;
}

}  // namespace

void add_bench_commands(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  add_bench_model_command(bench);
  add_bench_pipeline_command(bench);
  auto* cmd = bench->add_subcommand("comm", "gRPC point-to-point and all-reduce against raw TCP, as JSON");
  auto a = std::make_shared<bench_args>();
  auto security = std::make_shared<comm_security_flags>();
  cmd->add_option("-n,--ranks", a->ranks, "local ranks to launch (all-reduce runs on 2..n)")
      ->check(CLI::Range(2, 64));
  cmd->add_option("--max-mb", a->max_mb, "largest point-to-point message, MB")->check(CLI::Range(1, 4096));
  cmd->add_option("--max-allreduce-mb", a->max_allreduce_mb, "largest all-reduce, MB")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--latency-iters", a->latency_iters, "round trips per latency figure")
      ->check(CLI::Range(10, 1000000));
  add_comm_security_flags(cmd, *security);
  cmd->callback([a, security] {
    auto env = comm::options_from_env();
    if (!env) {
      char self[4096] = {};
      const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
      if (n <= 0) throw std::runtime_error("bench comm: cannot find this executable");
      comm::launch_options lo;
      lo.n_ranks = a->ranks;
      lo.prefix = false;
      lo.only_rank0_stdout = true;
      lo.env = comm_security_env(*security);  // through the environment, not the ranks' command lines
      const int status = comm::launch_local(
          {self, "bench", "comm", "--max-mb", std::to_string(a->max_mb), "--max-allreduce-mb",
           std::to_string(a->max_allreduce_mb), "--latency-iters", std::to_string(a->latency_iters)},
          lo);
      if (status != 0) throw CLI::RuntimeError(status);
      return;
    }
    if (env->world_size < 2) throw std::invalid_argument("bench comm needs at least 2 ranks");
    apply_comm_security_flags(*security, *env);
    auto g = comm::make_group("grpc", *env);
    nlohmann::json out = run_bench(*g, *a, *env);
    if (g->rank() == 0) std::printf("%s\n", out.dump(2).c_str());
  });
}

}  // namespace mlxd::app
