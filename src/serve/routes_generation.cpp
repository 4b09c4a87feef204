// POST /v1/chat/completions and /v1/completions, with and without streaming.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "mlxd/serve/request.h"
#include "mlxd/serve/responses.h"
#include "mlxd/serve/sse.h"
#include "mlxd/tokenizer/chat_template.h"
#include "peer_socket.h"
#include "server_state.h"

namespace mlxd::serve::detail {
namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
constexpr int default_max_tokens = 4096;

struct prepared {
  api_kind kind = api_kind::chat;
  std::vector<std::vector<int32_t>> prompts;
  generation_params params;
};

void check_model(const std::string& asked, const server_state& st) {
  if (!asked.empty() && asked != st.model_name)
    throw api_error(404,
                    "The model `" + asked + "` does not exist; this server serves `" + st.model_name + "`",
                    "invalid_request_error", "model", "model_not_found");
}

prepared prepare(api_kind kind, const std::string& body, const server_state& st, const backend& eng) {
  prepared p;
  p.kind = kind;
  if (kind == api_kind::chat) {
    chat_request r = parse_chat_request(body);
    check_model(r.model, st);
    mlxd::chat_request c;
    c.messages = std::move(r.messages);
    c.add_generation_prompt = true;
    std::string text;
    try {
      text = apply_chat_template(eng.tok(), c);
    } catch (const std::exception& e) {
      throw bad_request(std::string("cannot render the messages with the model's chat template: ") + e.what(),
                        "messages");
    }
    // The template writes BOS and the turn markers itself.
    p.prompts.push_back(eng.tok().encode(text, false));
    p.params = r.params;
  } else {
    completion_request r = parse_completion_request(body);
    check_model(r.model, st);
    for (const prompt_input& in : r.prompts)
      p.prompts.push_back(in.is_ids ? in.ids : eng.tok().encode(in.text, true));
    p.params = r.params;
  }
  for (const auto& prompt : p.prompts)
    if (prompt.empty())
      throw bad_request("the prompt encodes to no tokens", kind == api_kind::chat ? "messages" : "prompt");
  return p;
}

// Choice i of prompt k is sequence k * n + i, sampled with seed + k * n + i.
std::vector<sequence_request> sequences_of(const prepared& p, int context) {
  uint64_t seed = p.params.sampling.seed;
  if (!p.params.seed_given)
    seed = std::random_device{}() | (static_cast<uint64_t>(std::random_device{}()) << 32);
  std::vector<sequence_request> out;
  for (const auto& prompt : p.prompts) {
    for (int i = 0; i < p.params.n; ++i) {
      sequence_request s;
      s.prompt = prompt;
      // Without max_tokens: to the end of the context, at most default_max_tokens (the KV cache is reserved
      // up front for prompt + max_tokens positions).
      s.max_tokens = p.params.max_tokens > 0
                         ? p.params.max_tokens
                         : std::clamp(context - static_cast<int>(prompt.size()), 1, default_max_tokens);
      s.sampling = p.params.sampling;
      s.sampling.seed = seed + out.size();
      s.stop = p.params.stop;
      out.push_back(std::move(s));
    }
  }
  return out;
}

int64_t prompt_tokens(const prepared& p) {
  int64_t n = 0;
  for (const auto& prompt : p.prompts) n += static_cast<int64_t>(prompt.size());
  return n;
}

// When a request started at `start` must end under --request-timeout (time_point::max(): never).
clock_type::time_point deadline_of(clock_type::time_point start, double timeout_s) {
  if (timeout_s <= 0) return clock_type::time_point::max();
  return start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(timeout_s));
}

api_error timeout_error(double timeout_s) {
  char text[96];
  std::snprintf(text, sizeof text, "the request did not finish within the server's limit of %g seconds",
                timeout_s);
  return api_error(504, text, "server_error", {}, "request_timeout");
}

// Why the backend failed a request, with its status (400 a request it refused, 500 a fault of the server,
// 503 a cluster that cannot serve).
api_error failure_of(request_handle& h) {
  const int status = h.error_status();
  return api_error(status, h.error(), status < 500 ? "invalid_request_error" : "server_error");
}

void respond_whole(const httplib::Request& req, httplib::Response& res, const prepared& p,
                   const std::shared_ptr<backend>& eng, const std::shared_ptr<request_handle>& handle,
                   const response_meta& meta, size_t n_seqs, clock_type::time_point deadline,
                   double timeout_s) {
  std::vector<choice_result> choices(n_seqs);
  usage_counts usage{prompt_tokens(p), 0};
  const peer_socket peer(req);
  for (;;) {
    // The sequences are dropped at the backend's next step, which frees their place and KV caches.
    if (clock_type::now() > deadline) {
      handle->cancel();
      throw timeout_error(timeout_s);
    }
    if (peer.closed()) {
      handle->cancel();
      res.status = 499;  // nginx's "client closed request", so /metrics counts it apart; nobody reads it
      return;
    }
    for (sequence_event& ev : handle->wait(std::chrono::milliseconds(200))) {
      choice_result& c = choices[static_cast<size_t>(ev.index)];
      c.text += ev.text;
      usage.completion_tokens += static_cast<int64_t>(ev.tokens.size());
      c.tokens.insert(c.tokens.end(), ev.tokens.begin(), ev.tokens.end());
      if (!ev.finish_reason.empty()) c.finish_reason = ev.finish_reason;
    }
    if (handle->done()) break;
  }
  if (!handle->error().empty()) throw failure_of(*handle);
  send_json(res, dump(completion_json(meta, eng->tok(), choices, usage, p.params.logprobs,
                                      p.params.sampling.top_logprobs > 0)));
}

struct stream_state {
  prepared p;
  std::shared_ptr<backend> eng;
  std::shared_ptr<request_handle> handle;
  response_meta meta;
  size_t n_seqs = 0;
  bool started = false;
  clock_type::time_point deadline = clock_type::time_point::max();
  double timeout_s = 0;
  usage_counts usage;
  clock_type::time_point last_write = clock_type::now();
};

// One call of httplib's chunked content provider: whatever events arrived within 100 ms, as SSE.
bool stream_step(stream_state& s, httplib::DataSink& sink) {
  const bool chat = s.meta.kind == api_kind::chat;
  std::string out;
  if (!s.started) {
    s.started = true;
    if (chat)
      for (size_t i = 0; i < s.n_seqs; ++i)
        out +=
            sse_event(chunk_json(s.meta, static_cast<int>(i), {{"role", "assistant"}, {"content", ""}}, ""));
  }
  for (const sequence_event& ev : s.handle->wait(std::chrono::milliseconds(100))) {
    s.usage.completion_tokens += static_cast<int64_t>(ev.tokens.size());
    const json lp = s.p.params.logprobs ? logprobs_json(s.meta.kind, s.eng->tok(), ev.tokens,
                                                        s.p.params.sampling.top_logprobs > 0)
                                        : json(nullptr);
    if (!ev.text.empty() || !lp.is_null())
      out +=
          sse_event(chunk_json(s.meta, ev.index, chat ? json{{"content", ev.text}} : json(ev.text), "", lp));
    if (!ev.finish_reason.empty())
      out += sse_event(chunk_json(s.meta, ev.index, chat ? json::object() : json(""), ev.finish_reason));
  }
  bool done = s.handle->done();
  if (!done && clock_type::now() > s.deadline) {
    s.handle->cancel();
    out += sse_event(timeout_error(s.timeout_s).to_json()) + sse_done();
    done = true;
  } else if (done) {
    if (!s.handle->error().empty())
      out += sse_event(failure_of(*s.handle).to_json());
    else if (s.p.params.include_usage)
      out += sse_event(usage_chunk_json(s.meta, s.usage));
    out += sse_done();
  }
  if (out.empty() && clock_type::now() - s.last_write > std::chrono::seconds(1)) out = sse_keepalive();
  if (!out.empty()) {
    if (!sink.write(out.data(), out.size())) {
      s.handle->cancel();
      return false;
    }
    s.last_write = clock_type::now();
  }
  if (done) sink.done();
  return true;
}

void generate(api_kind kind, const httplib::Request& req, httplib::Response& res, server_state& st) {
  const double timeout_s = st.options.request_timeout_s;
  const clock_type::time_point deadline = deadline_of(clock_type::now(), timeout_s);
  const std::shared_ptr<backend> eng = st.backend_or_503();
  prepared p = prepare(kind, req.body, st, *eng);
  std::vector<sequence_request> seqs = sequences_of(p, eng->context_length());
  const size_t n_seqs = seqs.size();
  const std::shared_ptr<request_handle> handle = eng->submit(std::move(seqs));
  const response_meta meta = new_response_meta(kind, st.model_name);
  if (!p.params.stream) return respond_whole(req, res, p, eng, handle, meta, n_seqs, deadline, timeout_s);
  auto s = std::make_shared<stream_state>();
  s->usage.prompt_tokens = prompt_tokens(p);
  s->p = std::move(p);
  s->eng = eng;
  s->handle = handle;
  s->meta = meta;
  s->n_seqs = n_seqs;
  s->deadline = deadline;
  s->timeout_s = timeout_s;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [s](size_t, httplib::DataSink& sink) {
        try {
          return stream_step(*s, sink);
        } catch (const std::exception&) {  // a provider must not throw: it runs after routing, unguarded
          s->handle->cancel();
          return false;
        }
      },
      [s](bool) { s->handle->cancel(); });  // a client that went away frees its sequences
}

}  // namespace

void add_generation_routes(httplib::Server& http, server_state& st) {
  http.Post("/v1/chat/completions", guarded([&st](const httplib::Request& req, httplib::Response& res) {
              generate(api_kind::chat, req, res, st);
            }));
  http.Post("/v1/completions", guarded([&st](const httplib::Request& req, httplib::Response& res) {
              generate(api_kind::completion, req, res, st);
            }));
}

}  // namespace mlxd::serve::detail
