// A worker node of pipeline-parallel inference (`mlxd worker`): a gRPC server of the stage protocol
// (proto/mlxd/v1/inference.proto). It reports its capabilities, loads the layer range a coordinator assigns
// (only that range's tensors, from a path it can read), runs steps for many sequences with one KV cache per
// sequence, and forwards hidden states to the next stage over one long-lived stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace mlxd::dist {

struct worker_options {
  std::string host = "0.0.0.0";  // beyond loopback a cluster token is required
  int port = 8101;               // 0 picks a free port (see worker::port)
  std::string cluster_token;     // checked on every call; also sent to the next stage
  std::string tls_cert, tls_key,
      tls_ca;  // PEM files: TLS, and mutual TLS with a CA (also for the next stage)
  // Memory this worker offers for weights and KV caches; 0: 90% of the memory available at start.
  uint64_t memory_bytes = 0;
  // A sequence's KV cache is freed after this long without a step.
  std::chrono::milliseconds kv_idle_timeout{std::chrono::minutes(5)};
  std::string node_id;  // default hostname:pid
  // Where stages shipped by a coordinator (Upload) are kept, one folder per weights hash; empty: the default
  // (MLXD_CACHE_DIR, else XDG_CACHE_HOME/mlxd/weights, else ~/.cache/mlxd/weights).
  std::filesystem::path cache_dir;
};

// What the worker measured and offers, as its handshake reports it.
struct worker_capabilities {
  uint32_t cores = 0;
  uint64_t memory_bytes = 0;
  double gflops = 0;  // fp32 matmul, measured at start
};

class worker {
 public:
  // Validates the options, measures the machine, and starts serving. Throws std::invalid_argument for bad
  // options (no token beyond loopback, half a TLS pair) and std::runtime_error when it cannot listen.
  explicit worker(const worker_options& o);
  ~worker();  // stops serving and frees everything
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  int port() const;
  const worker_capabilities& capabilities() const;
  const std::string& node_id() const;
  // Blocks until shutdown() is called (from another thread or a signal handler's thread).
  void wait();
  void shutdown();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace mlxd::dist
