#include "mlxd/serve/responses.h"

#include <chrono>
#include <cstdio>
#include <random>

namespace mlxd::serve {
namespace {

using json = nlohmann::json;

// A token's text (possibly part of a character) and its bytes, as OpenAI reports them.
json token_entry(const tokenizer& tok, int32_t id, float logprob) {
  const std::string text = tok.decode(std::span<const token_id>(&id, 1));
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return {{"token", text}, {"logprob", logprob}, {"bytes", bytes}};
}

}  // namespace

response_meta new_response_meta(api_kind kind, const std::string& model) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char hex[25];
  std::snprintf(hex, sizeof hex, "%016llx%08x", static_cast<unsigned long long>(rng()),
                static_cast<unsigned>(rng() & 0xffffffffu));
  response_meta m;
  m.kind = kind;
  m.id = (kind == api_kind::chat ? "chatcmpl-" : "cmpl-") + std::string(hex);
  m.created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  m.model = model;
  return m;
}

json usage_json(const usage_counts& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json logprobs_json(api_kind kind, const tokenizer& tok,
                   const std::vector<mlxd::engine::sample_result>& tokens, bool with_top) {
  if (kind == api_kind::chat) {
    json content = json::array();
    for (const auto& t : tokens) {
      json e = token_entry(tok, t.id, t.logprob);
      json top = json::array();
      if (with_top)
        for (const auto& a : t.top) top.push_back(token_entry(tok, a.id, a.logprob));
      e["top_logprobs"] = top;
      content.push_back(std::move(e));
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json texts = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = 0;
  for (const auto& t : tokens) {
    const json e = token_entry(tok, t.id, t.logprob);
    texts.push_back(e["token"]);
    lps.push_back(t.logprob);
    offsets.push_back(offset);
    offset += e["token"].get_ref<const std::string&>().size();
    json top = json::object();
    for (const auto& a : t.top)
      top[token_entry(tok, a.id, a.logprob)["token"].get<std::string>()] = a.logprob;
    tops.push_back(with_top ? top : json(nullptr));
  }
  return {{"tokens", texts}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json completion_json(const response_meta& meta, const tokenizer& tok,
                     const std::vector<choice_result>& choices, const usage_counts& usage, bool logprobs,
                     bool with_top) {
  json list = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const choice_result& c = choices[i];
    const json lp = logprobs ? logprobs_json(meta.kind, tok, c.tokens, with_top) : json(nullptr);
    if (meta.kind == api_kind::chat) {
      list.push_back({{"index", i},
                      {"message", {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}}},
                      {"logprobs", lp},
                      {"finish_reason", c.finish_reason}});
    } else {
      list.push_back({{"index", i}, {"text", c.text}, {"logprobs", lp}, {"finish_reason", c.finish_reason}});
    }
  }
  return {{"id", meta.id},
          {"object", meta.kind == api_kind::chat ? "chat.completion" : "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"system_fingerprint", "mlxd"},
          {"choices", list},
          {"usage", usage_json(usage)}};
}

json chunk_json(const response_meta& meta, int index, const json& delta_or_text,
                const std::string& finish_reason, const json& logprobs) {
  const json finish = finish_reason.empty() ? json(nullptr) : json(finish_reason);
  json choice =
      meta.kind == api_kind::chat
          ? json{{"index", index},
                 {"delta", delta_or_text},
                 {"logprobs", logprobs},
                 {"finish_reason", finish}}
          : json{
                {"index", index}, {"text", delta_or_text}, {"logprobs", logprobs}, {"finish_reason", finish}};
  return {{"id", meta.id},
          {"object", meta.kind == api_kind::chat ? "chat.completion.chunk" : "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"system_fingerprint", "mlxd"},
          {"choices", json::array({choice})}};
}

json usage_chunk_json(const response_meta& meta, const usage_counts& usage) {
  return {{"id", meta.id},
          {"object", meta.kind == api_kind::chat ? "chat.completion.chunk" : "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"system_fingerprint", "mlxd"},
          {"choices", json::array()},
          {"usage", usage_json(usage)}};
}

json models_json(const std::string& model, int64_t created, int context_length) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model},
                                 {"object", "model"},
                                 {"created", created},
                                 {"owned_by", "mlxd"},
                                 {"max_model_len", context_length}}})}};
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace mlxd::serve
