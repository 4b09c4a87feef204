#include "dist_commands.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "mlxd/dist/worker.h"

namespace mlxd::app {
namespace {

std::vector<std::string> split_list(const std::string& text, const char* flag) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  if (out.empty()) throw std::invalid_argument(std::string(flag) + ": no addresses given");
  for (const std::string& a : out)
    if (a.find(':') == std::string::npos)
      throw std::invalid_argument(std::string(flag) + ": \"" + a + "\" is not host:port");
  return out;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

double mib(uint64_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}

// SIGINT and SIGTERM, blocked in every thread started after this (gRPC's too), so one thread can wait for
// them.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// The worker stops on SIGINT/SIGTERM: a thread waits for them and shuts the server down in order.
void serve_until_signalled(dist::worker& w, sigset_t set) {
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    w.shutdown();
  });
  w.wait();
  // A shutdown not caused by a signal leaves the waiter blocked; a signal to ourselves releases it.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
}

}  // namespace

void add_cluster_flags(CLI::App* cmd, cluster_flags& f, bool planning) {
  auto* w = cmd->add_option("--workers", f.workers, "worker nodes, host:port,... in pipeline order");
  if (!planning) w->required();
  cmd->add_option("--cluster-token", f.access.cluster_token, "cluster token (default: MLXD_CLUSTER_TOKEN)");
  cmd->add_option("--tls-cert", f.access.tls_cert, "PEM certificate presented to the workers (mutual TLS)");
  cmd->add_option("--tls-key", f.access.tls_key, "PEM key of --tls-cert");
  cmd->add_option("--tls-ca", f.access.tls_ca, "PEM CA the workers' certificates must be signed by (TLS)");
  if (planning) {
    cmd->add_option("--layers", f.layers, "layer ranges per worker, e.g. 0-11,12-23 (default: planned)");
    cmd->add_option("--coordinator-layers", f.coordinator_layers,
                    "layers this process runs before the workers, e.g. 0-3 (with the embedding)");
    cmd->add_flag("--ship-weights", f.ship_weights,
                  "send each worker its layers' tensors (kept in its --cache-dir) instead of the model path");
  }
}

dist::cluster_access cluster_access_of(const cluster_flags& f) {
  dist::cluster_access a = f.access;
  a.workers = split_list(f.workers, "--workers");
  if (a.cluster_token.empty()) a.cluster_token = env_or("MLXD_CLUSTER_TOKEN", "");
  return a;
}

dist::coordinator_options coordinator_options_of(const cluster_flags& f) {
  dist::coordinator_options o;
  o.access = cluster_access_of(f);
  o.ship_weights = f.ship_weights;
  if (!f.layers.empty()) o.layers = dist::parse_layer_ranges(f.layers);
  if (!f.coordinator_layers.empty()) {
    const auto ranges = dist::parse_layer_ranges(f.coordinator_layers);
    if (ranges.size() != 1) throw std::invalid_argument("--coordinator-layers: give one range, e.g. 0-3");
    o.coordinator_layers = ranges[0];
  }
  return o;
}

void add_dist_commands(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("worker", "serve a range of a model's layers to a coordinator (gRPC)");
    auto o = std::make_shared<dist::worker_options>();
    auto memory_mb = std::make_shared<uint64_t>(0);
    auto idle_s = std::make_shared<double>(300);
    auto port_file = std::make_shared<std::string>();
    cmd->add_option("--port", o->port, "port to listen on (0: a free one; default 8101)")
        ->check(CLI::Range(0, 65535));
    cmd->add_option("--host", o->host, "address to listen on (default 0.0.0.0: needs a cluster token)");
    cmd->add_option("--cluster-token", o->cluster_token,
                    "required on every call (default: MLXD_CLUSTER_TOKEN)");
    cmd->add_option("--tls-cert", o->tls_cert, "PEM certificate: serve TLS");
    cmd->add_option("--tls-key", o->tls_key, "PEM key of --tls-cert");
    cmd->add_option("--tls-ca", o->tls_ca, "PEM CA: require client certificates signed by it (mutual TLS)");
    cmd->add_option("--memory-mb", *memory_mb,
                    "memory offered for weights and KV caches (default: 90% available)");
    cmd->add_option("--kv-idle-timeout", *idle_s, "seconds before an idle sequence's KV cache is freed")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--node-id", o->node_id, "name in handshakes and errors (default hostname:pid)");
    cmd->add_option("--cache-dir", o->cache_dir,
                    "where shipped stages are kept (default MLXD_CACHE_DIR or ~/.cache/mlxd/weights)");
    cmd->add_option("--port-file", *port_file, "write the bound port here once listening");
    cmd->callback([o, memory_mb, idle_s, port_file] {
      if (o->cluster_token.empty()) o->cluster_token = env_or("MLXD_CLUSTER_TOKEN", "");
      o->memory_bytes = *memory_mb << 20;
      o->kv_idle_timeout = std::chrono::milliseconds(static_cast<int64_t>(*idle_s * 1000));
      const sigset_t stop_signals = block_stop_signals();
      dist::worker w(*o);
      const auto& caps = w.capabilities();
      std::printf("mlxd worker %s listening on %s:%d (%u cores, %.0f MiB offered, %.1f GFLOP/s)\n",
                  w.node_id().c_str(), o->host.c_str(), w.port(), caps.cores, mib(caps.memory_bytes),
                  caps.gflops);
      std::fflush(stdout);
      if (!port_file->empty()) {
        const std::string tmp = *port_file + ".tmp";
        std::ofstream(tmp) << w.port() << "\n";
        std::filesystem::rename(tmp, *port_file);
      }
      serve_until_signalled(w, stop_signals);
    });
  }
  {
    auto* cluster = app.add_subcommand("cluster", "inspect worker nodes");
    cluster->require_subcommand(1);
    auto* cmd = cluster->add_subcommand("status", "each worker's health, layers, memory and latency");
    auto f = std::make_shared<cluster_flags>();
    auto json = std::make_shared<bool>(false);
    add_cluster_flags(cmd, *f, false);
    cmd->add_flag("--json", *json, "one JSON object");
    cmd->callback([f, json] {
      const auto nodes = dist::probe_cluster(cluster_access_of(*f), 5);
      nlohmann::json j = nlohmann::json::array();
      bool all = true;
      if (!*json)
        std::printf("%-22s %-8s %-10s %6s %10s %9s %10s %9s %5s %s\n", "worker", "health", "latency", "cores",
                    "memory", "GFLOP/s", "weights", "kv", "seqs", "layers");
      for (const auto& n : nodes) {
        all = all && n.healthy;
        std::string layers = n.plan_id == 0
                                 ? std::string("none")
                                 : (n.layers.n_layers() ? std::to_string(n.layers.layer_begin) + "-" +
                                                              std::to_string(n.layers.layer_end - 1)
                                                        : std::string("no layers"));
        if (n.layers.embedding) layers += " +embedding";
        if (n.layers.head) layers += " +head";
        if (*json) {
          j.push_back({{"address", n.address},
                       {"healthy", n.healthy},
                       {"error", n.error},
                       {"node_id", n.node_id},
                       {"latency_ms", n.latency_ms},
                       {"cores", n.info.cores},
                       {"memory_bytes", n.info.memory_bytes},
                       {"gflops", n.info.gflops},
                       {"plan_id", n.plan_id},
                       {"layer_begin", n.layers.layer_begin},
                       {"layer_end", n.layers.layer_end},
                       {"embedding", n.layers.embedding},
                       {"head", n.layers.head},
                       {"weight_bytes", n.weight_bytes},
                       {"kv_bytes", n.kv_bytes},
                       {"sequences", n.n_sequences}});
        } else if (n.healthy) {
          std::printf("%-22s %-8s %7.3f ms %6u %6.0f MiB %9.1f %6.1f MiB %5.1f MiB %5u %s\n",
                      n.address.c_str(), "ok", n.latency_ms, n.info.cores, mib(n.info.memory_bytes),
                      n.info.gflops, mib(n.weight_bytes), mib(n.kv_bytes), n.n_sequences, layers.c_str());
        } else {
          std::printf("%-22s %-8s %s\n", n.address.c_str(), "DOWN", n.error.c_str());
        }
      }
      if (*json) std::printf("%s\n", nlohmann::json{{"workers", j}}.dump().c_str());
      std::fflush(stdout);  // the table before the error, also when both go to one pipe
      if (!all) throw std::runtime_error("some workers are down");
    });
  }
}

}  // namespace mlxd::app
