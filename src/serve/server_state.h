// What the routes share: options, figures, and the backend once the model has loaded.
#pragma once

#include <httplib.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "mlxd/serve/api_error.h"
#include "mlxd/serve/backend.h"
#include "mlxd/serve/metrics.h"
#include "mlxd/serve/server.h"

namespace mlxd::serve::detail {

struct server_state {
  server_options options;
  std::string model_name;
  std::atomic<int64_t> created{0};  // when the model was loaded (seconds since the epoch)
  metrics stats;
  std::mutex mu;
  std::shared_ptr<backend> loaded;  // null while loading
  std::string load_error;

  // The backend, or api_error 503 while the model loads.
  std::shared_ptr<backend> backend_or_503();
};

// Writes `e` as OpenAI's error JSON with its status.
void send_error(httplib::Response& res, const api_error& e);
void send_json(httplib::Response& res, const std::string& body, int status = 200);

// Wraps a route so that an api_error becomes its error response and any other exception a 500.
httplib::Server::Handler guarded(std::function<void(const httplib::Request&, httplib::Response&)> route);

// The local engine, or the cluster engine with options.cluster: loads the model (or assigns its layers to
// the workers) and the tokenizer. Throws what loading throws.
std::shared_ptr<backend> load_backend(const server_options& o, metrics* stats);

void add_generation_routes(httplib::Server& http, server_state& state);
void add_info_routes(httplib::Server& http, server_state& state);
void add_embedding_routes(httplib::Server& http, server_state& state);
void add_web_routes(httplib::Server& http);

}  // namespace mlxd::serve::detail
