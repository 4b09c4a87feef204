// `mlxd serve`: the OpenAI-compatible HTTP server. One process binds one port; the model loads in the
// background while GET /health answers 503, then one backend serves every request: the engine loop
// (engine.h), or with `cluster` the pipeline of worker nodes (cluster_engine.h).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "mlxd/dist/coordinator.h"
#include "mlxd/serve/backend.h"

namespace mlxd::serve {

struct server_options {
  std::string host = "127.0.0.1";     // --host 0.0.0.0 to expose
  int port = 8100;                    // 0: any free port (printed)
  std::string model_path;             // HF folder or .gguf file
  std::string tokenizer_path;         // empty: the model's
  bool mmap = false;                  // map the weight files (models::llama_load_options::mmap); local only
  std::string model_name;             // the id clients name; empty: the model folder's or file's name
  std::string api_key;                // empty: no authentication; else "Authorization: Bearer KEY" on all but
                                      // /health and the static page
  std::string cors_origin;            // empty: no CORS headers; "*" or one origin
  size_t max_body_bytes = 16u << 20;  // larger bodies get 413
  int http_threads = 64;              // connections served at once (each stream holds one)
  double request_timeout_s = 600;     // a generation running longer ends with a 504 error; 0: no limit
  engine_options engine;
  // --workers: the model's layers run on these workers, planned and driven by a coordinator in this process
  // (which reads the model's config and names its path to the workers); nullopt: the whole model runs here.
  std::optional<dist::coordinator_options> cluster;
};

class server {
 public:
  explicit server(server_options options);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds the port and serves until stop(); `on_listening(port)` is called once bound, before the model has
  // loaded. Throws std::runtime_error when the port cannot be bound or the model or tokenizer cannot be
  // loaded (the load error, after the server has stopped).
  void run(const std::function<void(int port)>& on_listening = nullptr);
  // Thread-safe; makes run() return.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace mlxd::serve
