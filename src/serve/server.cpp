#include "mlxd/serve/server.h"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "mlxd/serve/responses.h"
#include "server_state.h"

namespace mlxd::serve {
namespace detail {

std::shared_ptr<backend> server_state::backend_or_503() {
  std::lock_guard lock(mu);
  if (!loaded)
    throw api_error(503, "the model is still loading; retry shortly", "server_error", {}, "model_loading");
  return loaded;
}

void send_error(httplib::Response& res, const api_error& e) {
  send_json(res, dump(e.to_json()), e.status());
}

void send_json(httplib::Response& res, const std::string& body, int status) {
  res.status = status;
  res.set_content(body, "application/json");
}

httplib::Server::Handler guarded(std::function<void(const httplib::Request&, httplib::Response&)> route) {
  return [route = std::move(route)](const httplib::Request& req, httplib::Response& res) {
    try {
      route(req, res);
    } catch (const api_error& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      send_error(res, api_error(500, e.what(), "server_error"));
    }
  };
}

}  // namespace detail

namespace {

const std::set<std::string> get_paths = {"/", "/app.js", "/style.css", "/health", "/metrics", "/v1/models"};
const std::set<std::string> post_paths = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                          "/tokenize", "/detokenize"};

std::string route_label(const std::string& path) {
  if (get_paths.count(path) || post_paths.count(path)) return path;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}

// Compares without an early exit, so the time taken does not reveal how much of the key matched.
bool same_key(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string default_model_name(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

struct server::impl {
  detail::server_state state;
  httplib::Server http;
  std::thread loader;
};

server::server(server_options options) : impl_(std::make_unique<impl>()) {
  if (options.model_path.empty()) throw std::invalid_argument("[serve] no model given");
  impl_->state.model_name =
      options.model_name.empty() ? default_model_name(options.model_path) : options.model_name;
  impl_->state.options = std::move(options);
}

server::~server() {
  stop();
  if (impl_->loader.joinable()) impl_->loader.join();
}

void server::stop() {
  impl_->http.stop();
}

void server::run(const std::function<void(int)>& on_listening) {
  detail::server_state& st = impl_->state;
  httplib::Server& http = impl_->http;
  const server_options& o = st.options;
  const int threads = o.http_threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(o.max_body_bytes);
  // A response's headers and body leave in separate writes: without this, Nagle holds the body until the
  // client's delayed ACK, which put about 5 ms on every other request.
  http.set_tcp_nodelay(true);
  if (!o.cors_origin.empty())
    http.set_default_headers({{"Access-Control-Allow-Origin", o.cors_origin},
                              {"Access-Control-Allow-Headers", "Authorization, Content-Type"},
                              {"Access-Control-Allow-Methods", "GET, POST, OPTIONS"}});
  http.set_pre_routing_handler([&st](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "OPTIONS" && !st.options.cors_origin.empty()) {
      res.status = 204;
      return httplib::Server::HandlerResponse::Handled;
    }
    // The page's static files hold no data; the page itself asks for the key.
    if (st.options.api_key.empty() || req.path == "/health" || req.path == "/" || req.path == "/app.js" ||
        req.path == "/style.css")
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) == 0 && same_key(auth.substr(prefix.size()), st.options.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    detail::send_error(res, api_error(401,
                                      auth.empty() ? "missing API key: send \"Authorization: Bearer KEY\""
                                                   : "incorrect API key provided",
                                      "invalid_request_error", {}, "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib sets itself (unknown route, body too large, bad request line) get OpenAI's error body.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.status == 204) return;
    std::string message = "the request cannot be served (HTTP " + std::to_string(res.status) + ")";
    if (res.status == 400) message = "malformed HTTP request";
    if (res.status == 404) message = "unknown route " + req.method + " " + req.path;
    if (res.status == 413) message = "the request body is too large";
    if (res.status == 414) message = "the request line is too long";
    detail::send_error(
        res, api_error(res.status, message, res.status >= 500 ? "server_error" : "invalid_request_error"));
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    detail::send_error(res, api_error(500, what, "server_error"));
  });
  // Counted just before the status line goes out (the logger runs after the body): a client that reads
  // /metrics as soon as it has its answer sees that answer counted.
  http.set_post_routing_handler([&st](const httplib::Request& req, httplib::Response& res) {
    st.stats.count_request(route_label(req.path), res.status);
  });
  detail::add_generation_routes(http, st);
  detail::add_info_routes(http, st);
  detail::add_embedding_routes(http, st);
  detail::add_web_routes(http);
  auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    detail::send_error(res, api_error(405, "method " + req.method + " is not allowed on " + req.path));
  };
  for (const auto& p : get_paths)
    http.Post(p, not_allowed).Put(p, not_allowed).Delete(p, not_allowed).Patch(p, not_allowed);
  for (const auto& p : post_paths)
    http.Get(p, not_allowed).Put(p, not_allowed).Delete(p, not_allowed).Patch(p, not_allowed);

  // httplib 0.11 (Debian's build) listens with a backlog of 5: 16 clients connecting at once to a busy
  // server overflowed it, and a connection whose SYN cookie then failed was reset before its request was read
  // (the kernel logs "Possible SYN flooding"). Its socket hook sees the listening socket first (before bind),
  // and listen() again once bound raises the backlog (the kernel caps it at net.core.somaxconn).
  int listener = -1;
  http.set_socket_options([&listener](socket_t sock) {
    httplib::default_socket_options(sock);
    if (listener < 0) listener = sock;
  });
  int port = o.port;
  if (port == 0) {
    port = http.bind_to_any_port(o.host);
    if (port < 0) throw std::runtime_error("[serve] cannot bind " + o.host + " to any port");
  } else if (!http.bind_to_port(o.host, port)) {
    throw std::runtime_error("[serve] cannot bind " + o.host + ":" + std::to_string(port) +
                             " (in use, or not an address of this machine)");
  }
  if (listener >= 0 && ::listen(listener, SOMAXCONN) != 0)
    throw std::runtime_error(std::string("[serve] cannot listen: ") + std::strerror(errno));
  if (on_listening) on_listening(port);
  impl_->loader = std::thread([this, &st] {
    try {
      std::shared_ptr<backend> e = detail::load_backend(st.options, &st.stats);
      std::lock_guard lock(st.mu);
      st.loaded = std::move(e);
      st.created = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
    } catch (const std::exception& e) {
      {
        std::lock_guard lock(st.mu);
        st.load_error = e.what();
      }
      // stop() only takes effect once listening has begun.
      while (!impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      impl_->http.stop();
    }
  });
  http.listen_after_bind();
  impl_->loader.join();
  {
    std::lock_guard lock(st.mu);
    st.loaded.reset();
    if (!st.load_error.empty()) throw std::runtime_error("[serve] cannot load the model: " + st.load_error);
  }
}

}  // namespace mlxd::serve
