// GET /v1/models, /health, /metrics; POST /tokenize, /detokenize.
#include <limits>

#include "mlxd/serve/request.h"
#include "mlxd/serve/responses.h"
#include "mlxd/tokenizer/chat_template.h"
#include "server_state.h"

namespace mlxd::serve::detail {
namespace {

using json = nlohmann::json;

bool flag(const json& body, const char* name, bool fallback) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw bad_request(std::string(name) + " must be a boolean", name);
  return it->get<bool>();
}

void tokenize(const httplib::Request& req, httplib::Response& res, server_state& st) {
  const auto eng = st.backend_or_503();
  const json body = parse_json_body(req.body);
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  std::vector<token_id> ids;
  if (body.contains("messages")) {
    // The same validation and rendering as a chat completion.
    const chat_request r = parse_chat_request(req.body);
    mlxd::chat_request c;
    c.messages = r.messages;
    c.add_generation_prompt = flag(body, "add_generation_prompt", true);
    try {
      ids = eng->tok().encode(apply_chat_template(eng->tok(), c), false);
    } catch (const std::exception& e) {
      throw bad_request(std::string("cannot render the messages with the model's chat template: ") + e.what(),
                        "messages");
    }
  } else {
    auto it = body.find("prompt");
    if (it == body.end() || !it->is_string()) throw bad_request("prompt must be a string", "prompt");
    ids = eng->tok().encode(it->get<std::string>(), flag(body, "add_special_tokens", true));
  }
  send_json(res, dump({{"tokens", ids}, {"count", ids.size()}, {"max_model_len", eng->context_length()}}));
}

void detokenize(const httplib::Request& req, httplib::Response& res, server_state& st) {
  const auto eng = st.backend_or_503();
  const json body = parse_json_body(req.body);
  auto it = body.is_object() ? body.find("tokens") : body.end();
  if (it == body.end() || !it->is_array()) throw bad_request("tokens must be a list of token ids", "tokens");
  std::vector<token_id> ids;
  const int64_t vocab = eng->tok().vocab_size();
  for (const json& id : *it) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab)
      throw bad_request("tokens: " + dump(id) + " is not a token id of this vocabulary (0.." +
                            std::to_string(vocab - 1) + ")",
                        "tokens");
    ids.push_back(static_cast<token_id>(id.get<int64_t>()));
  }
  send_json(res, dump({{"prompt", eng->tok().decode(ids, flag(body, "skip_special_tokens", false))}}));
}

}  // namespace

void add_info_routes(httplib::Server& http, server_state& st) {
  http.Get("/health", guarded([&st](const httplib::Request&, httplib::Response& res) {
             std::shared_ptr<backend> b;
             {
               std::lock_guard lock(st.mu);
               b = st.loaded;
             }
             if (!b) return send_json(res, R"({"status":"loading"})", 503);
             const health_report h = b->health();  // outside the lock: a cluster asks its workers
             send_json(res, dump(h.body), h.status);
           }));
  http.Get("/metrics", guarded([&st](const httplib::Request&, httplib::Response& res) {
             std::shared_ptr<backend> b;
             {
               std::lock_guard lock(st.mu);
               b = st.loaded;
             }
             res.set_content(st.stats.render() + (b ? b->metrics_text() : std::string()),
                             "text/plain; version=0.0.4");
           }));
  http.Get("/v1/models", guarded([&st](const httplib::Request&, httplib::Response& res) {
             const auto eng = st.backend_or_503();
             send_json(res, dump(models_json(st.model_name, st.created, eng->context_length())));
           }));
  http.Get(R"(/v1/models/(.+))", guarded([&st](const httplib::Request& req, httplib::Response& res) {
             const auto eng = st.backend_or_503();
             if (req.matches[1] != st.model_name)
               throw api_error(404, "The model `" + std::string(req.matches[1]) + "` does not exist",
                               "invalid_request_error", "model", "model_not_found");
             send_json(res, dump(models_json(st.model_name, st.created, eng->context_length())["data"][0]));
           }));
  http.Post("/tokenize",
            guarded([&st](const httplib::Request& req, httplib::Response& res) { tokenize(req, res, st); }));
  http.Post("/detokenize", guarded([&st](const httplib::Request& req, httplib::Response& res) {
              detokenize(req, res, st);
            }));
}

}  // namespace mlxd::serve::detail
