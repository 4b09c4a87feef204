#include "dist_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "mlxd/dist/membership.h"
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

int stop_pipe[2] = {-1, -1};

void on_stop_signal(int) {
  const char c = 0;
  const ssize_t written = write(stop_pipe[1], &c, 1);
  (void)written;  // a full pipe already holds a stop
}

// From now on SIGINT and SIGTERM stop the worker in order (serve_until_signalled). Libraries start threads
// before main (OpenBLAS's), which no signal mask set here covers, so a signal may land on any thread: a
// handler takes it there and wakes the thread that shuts down (with sigwait, it killed the process instead).
void catch_stop_signals() {
  if (pipe2(stop_pipe, O_CLOEXEC) != 0) throw std::runtime_error("cannot make a pipe for the stop signals");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void serve_until_signalled(dist::worker& w) {
  std::thread waiter([&] {
    char c = 0;
    while (read(stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    w.shutdown();
  });
  w.wait();
  on_stop_signal(0);  // a shutdown not caused by a signal releases the waiter
  waiter.join();
}

// `mlxd worker --join`: announces the worker to the coordinator now and again every `interval` (a join is
// idempotent, and a coordinator that restarted learns of the worker again). While the coordinator cannot be
// reached it keeps trying; a refusal (token, protocol, address) shuts the worker down with the reason.
class cluster_joiner {
 public:
  cluster_joiner(dist::worker& w, dist::join_options o, std::chrono::milliseconds interval)
      : worker_(w), o_(std::move(o)), interval_(interval), thread_([this] { run(); }) {}
  ~cluster_joiner() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  cluster_joiner(const cluster_joiner&) = delete;
  cluster_joiner& operator=(const cluster_joiner&) = delete;
  // Why the coordinator refused the worker; empty when it did not.
  std::string refusal() {
    std::lock_guard lock(mu_);
    return refusal_;
  }

 private:
  void run() {
    bool joined = false, said_waiting = false;
    for (;;) {
      try {
        const dist::join_result r = dist::join_cluster(o_);
        if (!joined)
          std::printf("mlxd worker: joined the cluster of %s as %s (%u workers)\n", o_.coordinator.c_str(),
                      r.address.c_str(), r.n_workers);
        joined = true;
      } catch (const dist::join_refused& e) {
        {
          std::lock_guard lock(mu_);
          refusal_ = e.what();
        }
        worker_.shutdown();
        return;
      } catch (const std::exception& e) {
        if (!joined && !said_waiting) std::printf("mlxd worker: waiting to join: %s\n", e.what());
        said_waiting = true;
      }
      std::fflush(stdout);
      std::unique_lock lock(mu_);
      // Until the first join succeeds, every second.
      if (cv_.wait_for(lock, joined ? interval_ : std::chrono::seconds(1), [&] { return stop_; })) return;
    }
  }
  dist::worker& worker_;
  dist::join_options o_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string refusal_;
  std::thread thread_;  // last: it starts once the rest is ready
};

}  // namespace

void add_cluster_flags(CLI::App* cmd, cluster_flags& f, bool planning) {
  cmd->add_option("--workers", f.workers, "worker nodes, host:port,... in pipeline order");
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
    cmd->add_option(
           "--ring-tokens", f.ring_tokens,
           "tokens a sequence decoding alone asks the pipeline for at a time, fed back from the last "
           "stage to the first without this process (0: every token from here)")
        ->default_val(f.ring_tokens)
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--local-links", f.local_links,
                    "workers on one machine send each other steps over a Unix socket, not gRPC (true/false)")
        ->default_val(f.local_links);
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
  o.ring_tokens = f.ring_tokens;
  o.local_links = f.local_links;
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
    auto join = std::make_shared<std::string>();
    auto advertise = std::make_shared<std::string>();
    auto join_interval_s = std::make_shared<double>(5);
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
    cmd->add_option("--join", *join,
                    "host:port of a running coordinator's cluster port (mlxd serve --cluster-port) to join");
    cmd->add_option(
        "--advertise", *advertise,
        "host:port the coordinator reaches this worker at (default: the IP it sees, with --port)");
    cmd->add_option("--join-interval", *join_interval_s,
                    "seconds between announcements to --join (default 5)")
        ->check(CLI::PositiveNumber);
    cmd->callback([o, memory_mb, idle_s, port_file, join, advertise, join_interval_s] {
      if (!join->empty() && join->find(':') == std::string::npos)
        throw std::invalid_argument("--join: \"" + *join + "\" is not host:port");
      if (!advertise->empty() && join->empty()) throw std::invalid_argument("--advertise needs --join");
      if (o->cluster_token.empty()) o->cluster_token = env_or("MLXD_CLUSTER_TOKEN", "");
      o->memory_bytes = *memory_mb << 20;
      o->kv_idle_timeout = std::chrono::milliseconds(static_cast<int64_t>(*idle_s * 1000));
      catch_stop_signals();
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
      if (join->empty()) {
        serve_until_signalled(w);
        return;
      }
      dist::join_options jo;
      jo.coordinator = *join;
      jo.port = w.port();
      jo.advertise = *advertise;
      jo.node_id = w.node_id();
      jo.cluster_token = o->cluster_token;
      jo.tls_cert = o->tls_cert;
      jo.tls_key = o->tls_key;
      jo.tls_ca = o->tls_ca;
      std::string refused;
      {
        cluster_joiner joiner(w, jo,
                              std::chrono::milliseconds(static_cast<int64_t>(*join_interval_s * 1000)));
        serve_until_signalled(w);
        refused = joiner.refusal();
      }
      if (!refused.empty()) throw std::runtime_error("--join: " + refused);
    });
  }
  {
    auto* cluster = app.add_subcommand("cluster", "inspect worker nodes");
    cluster->require_subcommand(1);
    auto* cmd = cluster->add_subcommand("status", "each worker's health, layers, memory and latency");
    auto f = std::make_shared<cluster_flags>();
    auto json = std::make_shared<bool>(false);
    auto coordinator = std::make_shared<std::string>();
    add_cluster_flags(cmd, *f, false);
    cmd->add_option("--coordinator", *coordinator,
                    "ask this coordinator's cluster port (mlxd serve --cluster-port) for its workers, joined "
                    "ones too, instead of --workers");
    cmd->add_flag("--json", *json, "one JSON object");
    cmd->callback([f, json, coordinator] {
      if (f->workers.empty() == coordinator->empty())
        throw std::invalid_argument("cluster status: give either --workers or --coordinator");
      dist::cluster_access access;
      dist::cluster_members members;
      if (coordinator->empty()) {
        access = cluster_access_of(*f);
      } else {
        access = f->access;
        if (access.cluster_token.empty()) access.cluster_token = env_or("MLXD_CLUSTER_TOKEN", "");
        members = dist::query_members(*coordinator, access);
        access.workers = members.workers;
        if (!*json) std::printf("coordinator %s: %s\n", coordinator->c_str(), members.plan.c_str());
      }
      const auto nodes = dist::probe_cluster(access, 5);
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
                       {"sequences", n.n_sequences},
                       {"loads", n.loads},
                       {"layers_read", n.layers_read},
                       {"local_links", n.local_links}});
        } else if (n.healthy) {
          std::printf("%-22s %-8s %7.3f ms %6u %6.0f MiB %9.1f %6.1f MiB %5.1f MiB %5u %s\n",
                      n.address.c_str(), "ok", n.latency_ms, n.info.cores, mib(n.info.memory_bytes),
                      n.info.gflops, mib(n.weight_bytes), mib(n.kv_bytes), n.n_sequences, layers.c_str());
        } else {
          std::printf("%-22s %-8s %s\n", n.address.c_str(), "DOWN", n.error.c_str());
        }
      }
      if (*json) {
        nlohmann::json out = {{"workers", j}};
        if (!coordinator->empty())
          out["coordinator"] = {
              {"address", *coordinator}, {"plan", members.plan}, {"replans", members.replans}};
        std::printf("%s\n", out.dump().c_str());
      }
      std::fflush(stdout);  // the table before the error, also when both go to one pipe
      if (!all) throw std::runtime_error("some workers are down");
    });
  }
}

}  // namespace mlxd::app
