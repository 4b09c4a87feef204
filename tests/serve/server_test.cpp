// `mlxd serve` as a client sees it: a real server process on a free port, spoken to over HTTP. Response
// shapes are OpenAI's, streams carry the same text as whole responses, errors have the right status and JSON,
// hostile bodies leave the server answering, and concurrent streams get the text they get alone.
#include <gtest/gtest.h>

#include <future>
#include <regex>

#include "server_process.h"
#include "streamed_answer.h"

namespace mlxd::serve::testing {
namespace {

using json = nlohmann::json;

json chat_body(const std::string& content, int max_tokens, uint64_t seed, json extra = json::object()) {
  json b = {{"model", "tiny"},
            {"messages", {{{"role", "user"}, {"content", content}}}},
            {"max_tokens", max_tokens},
            {"seed", seed},
            {"temperature", 0.9}};
  b.update(extra);
  return b;
}

TEST(Server, HealthModelsAndThePage) {
  server_process server;
  auto c = server.client();
  const json node = {{"status", "up"},
                     {"layers", {{"begin", 0}, {"end", 2}, {"embedding", true}, {"head", true}}},
                     {"sequences", 0}};
  EXPECT_EQ(get(c, "/health").body, json({{"status", "ok"}, {"node", node}}));
  const reply models = get(c, "/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.body["object"], "list");
  ASSERT_EQ(models.body["data"].size(), 1u);
  EXPECT_EQ(models.body["data"][0]["id"], "tiny");
  EXPECT_EQ(models.body["data"][0]["object"], "model");
  EXPECT_TRUE(models.body["data"][0]["created"].is_number_integer());
  EXPECT_EQ(get(c, "/v1/models/tiny").body["id"], "tiny");
  const reply missing = get(c, "/v1/models/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body["error"]["code"], "model_not_found");
  const reply page = get(c, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.content_type.find("text/html"), std::string::npos);
  EXPECT_NE(page.raw.find("<title>mlxd chat</title>"), std::string::npos);
  EXPECT_NE(get(c, "/app.js").raw.find("/v1/chat/completions"), std::string::npos);
  EXPECT_EQ(get(c, "/style.css").status, 200);
}

TEST(Server, ServesTheDefaultModelWithoutModelFlag) {
  server_process server({}, {}, true, model_dir().string());
  auto c = server.client();
  const reply models = get(c, "/v1/models");
  ASSERT_EQ(models.status, 200) << models.raw;
  EXPECT_EQ(models.body["data"][0]["id"], "tiny");  // the name of the folder MLXD_DEFAULT_MODEL names
  const reply r = post(c, "/v1/completions", R"({"prompt":"ab","max_tokens":3,"temperature":0})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 3);
}

TEST(Server, ChatCompletionHasOpenAIsShape) {
  server_process server;
  auto c = server.client();
  const reply r = post(c, "/v1/chat/completions",
                       chat_body("hello", 8, 3, {{"logprobs", true}, {"top_logprobs", 2}}).dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  const json& b = r.body;
  EXPECT_TRUE(std::regex_match(b["id"].get<std::string>(), std::regex("chatcmpl-[0-9a-f]{24}")));
  EXPECT_EQ(b["object"], "chat.completion");
  EXPECT_GT(b["created"].get<int64_t>(), 1700000000);
  EXPECT_EQ(b["model"], "tiny");
  ASSERT_EQ(b["choices"].size(), 1u);
  const json& choice = b["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_TRUE(choice["message"]["content"].is_string());
  const std::string finish = choice["finish_reason"];
  EXPECT_TRUE(finish == "stop" || finish == "length") << finish;
  // "user: hello<|endoftext|>assistant:" in the tiny vocabulary, as /tokenize counts it.
  const reply count =
      post(c, "/tokenize", json{{"messages", {{{"role", "user"}, {"content", "hello"}}}}}.dump());
  EXPECT_EQ(b["usage"]["prompt_tokens"], count.body["count"]);
  const auto& lp = choice["logprobs"]["content"];
  EXPECT_EQ(b["usage"]["completion_tokens"], lp.size());
  EXPECT_LE(lp.size(), 8u);
  EXPECT_EQ(b["usage"]["total_tokens"],
            b["usage"]["prompt_tokens"].get<int>() + b["usage"]["completion_tokens"].get<int>());
  for (const auto& t : lp) {
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    EXPECT_EQ(t["top_logprobs"].size(), 2u);
    EXPECT_TRUE(t["bytes"].is_array());
  }
}

TEST(Server, StreamCarriesTheSameTextAsTheWholeResponse) {
  server_process server;
  auto c = server.client();
  const json body = chat_body("tell me", 40, 11);
  const reply whole = post(c, "/v1/chat/completions", body.dump());
  ASSERT_EQ(whole.status, 200);
  json sbody = body;
  sbody["stream"] = true;
  sbody["stream_options"] = {{"include_usage", true}};
  const streamed s = collect(post_stream(c, "/v1/chat/completions", sbody.dump()));
  ASSERT_TRUE(s.done);
  ASSERT_GE(s.chunks.size(), 3u);
  EXPECT_EQ(s.chunks.front()["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(s.text, whole.body["choices"][0]["message"]["content"]);
  EXPECT_EQ(s.finish_reason, whole.body["choices"][0]["finish_reason"]);
  const json& usage_chunk = s.chunks.back();
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_EQ(usage_chunk["usage"], whole.body["usage"]);
  int finishes = 0;
  for (const auto& ch : s.chunks) {
    EXPECT_EQ(ch["id"], s.chunks.front()["id"]);
    EXPECT_EQ(ch["object"], "chat.completion.chunk");
    for (const auto& choice : ch["choices"]) finishes += !choice["finish_reason"].is_null();
  }
  EXPECT_EQ(finishes, 1);
}

TEST(Server, TextCompletionsWholeAndStreamed) {
  server_process server;
  auto c = server.client();
  const json body = {
      {"model", "tiny"}, {"prompt", "hello"}, {"max_tokens", 6}, {"seed", 4}, {"temperature", 1.0}};
  const reply whole = post(c, "/v1/completions", body.dump());
  ASSERT_EQ(whole.status, 200) << whole.raw;
  EXPECT_EQ(whole.body["object"], "text_completion");
  EXPECT_EQ(whole.body["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(whole.body["usage"]["prompt_tokens"], 1);  // "hello" is one merged token
  EXPECT_TRUE(whole.body["choices"][0]["text"].is_string());
  json sbody = body;
  sbody["stream"] = true;
  const streamed s = collect(post_stream(c, "/v1/completions", sbody.dump()));
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, whole.body["choices"][0]["text"]);
  EXPECT_EQ(s.finish_reason, whole.body["choices"][0]["finish_reason"]);
  // Token ids as the prompt, and the legacy logprobs shape.
  const reply ids =
      post(c, "/v1/completions", json{{"prompt", {104, 101}}, {"max_tokens", 3}, {"logprobs", 2}}.dump());
  ASSERT_EQ(ids.status, 200) << ids.raw;
  EXPECT_EQ(ids.body["usage"]["prompt_tokens"], 2);
  const json& lp = ids.body["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"].size(), lp["token_logprobs"].size());
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
}

TEST(Server, SeveralChoicesAndSeeds) {
  server_process server;
  auto c = server.client();
  const reply three = post(c, "/v1/chat/completions", chat_body("hi", 12, 21, {{"n", 3}}).dump());
  ASSERT_EQ(three.status, 200) << three.raw;
  ASSERT_EQ(three.body["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(three.body["choices"][i]["index"], i);
    EXPECT_FALSE(three.body["choices"][i]["finish_reason"].is_null());
  }
  const reply one = post(c, "/v1/chat/completions", chat_body("hi", 12, 21).dump());
  EXPECT_EQ(one.body["choices"][0]["message"],
            three.body["choices"][0]["message"]);  // choice 0 uses the seed
  EXPECT_EQ(one.body["usage"]["prompt_tokens"], three.body["usage"]["prompt_tokens"]);
  const reply again = post(c, "/v1/chat/completions", chat_body("hi", 12, 21).dump());
  EXPECT_EQ(again.body["choices"][0]["message"], one.body["choices"][0]["message"]);
  // n > 1 streamed: every choice gets its role first and its finish reason.
  const auto events =
      post_stream(c, "/v1/chat/completions", chat_body("hi", 12, 21, {{"n", 3}, {"stream", true}}).dump());
  for (int i = 0; i < 3; ++i) {
    const streamed s = collect(events, i);
    EXPECT_EQ(s.text, three.body["choices"][i]["message"]["content"]) << i;
    EXPECT_EQ(s.finish_reason, three.body["choices"][i]["finish_reason"]) << i;
  }
}

// `n` whole UTF-8 characters of `s` from character `from` on.
std::string characters(const std::string& s, size_t from, size_t n) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
  starts.push_back(s.size());
  if (from + n >= starts.size()) return {};
  return s.substr(starts[from], starts[from + n] - starts[from]);
}

TEST(Server, StopStringsNeverAppear) {
  server_process server;
  auto c = server.client();
  const reply free_run = post(c, "/v1/chat/completions", chat_body("go", 80, 5).dump());
  const std::string text = free_run.body["choices"][0]["message"]["content"];
  const std::string stop = characters(text, 3, 2);  // two characters, several byte-level tokens
  ASSERT_FALSE(stop.empty()) << text;
  const std::string expected = text.substr(0, text.find(stop));
  const reply cut =
      post(c, "/v1/chat/completions", chat_body("go", 80, 5, {{"stop", {stop, "never-seen"}}}).dump());
  EXPECT_EQ(cut.body["choices"][0]["message"]["content"], expected);
  EXPECT_EQ(cut.body["choices"][0]["finish_reason"], "stop");
  const streamed s = collect(post_stream(c, "/v1/chat/completions",
                                         chat_body("go", 80, 5, {{"stop", stop}, {"stream", true}}).dump()));
  EXPECT_EQ(s.text, expected);
  EXPECT_EQ(s.text.find(stop), std::string::npos);
  EXPECT_EQ(s.finish_reason, "stop");
}

TEST(Server, TokenizeAndDetokenize) {
  server_process server;
  auto c = server.client();
  const reply t = post(c, "/tokenize", R"({"prompt": "hello world"})");
  ASSERT_EQ(t.status, 200);
  EXPECT_EQ(t.body["tokens"], json({259, 260, 261, 108, 100}));  // "hello", " w", "or", "l", "d"
  EXPECT_EQ(t.body["count"], t.body["tokens"].size());
  EXPECT_EQ(t.body["max_model_len"], 2048);
  const reply d = post(c, "/detokenize", json{{"tokens", t.body["tokens"]}}.dump());
  EXPECT_EQ(d.body["prompt"], "hello world");
  EXPECT_EQ(post(c, "/detokenize", R"({"tokens": [1, 263]})").status, 400);
  EXPECT_EQ(post(c, "/detokenize", R"({"tokens": "x"})").status, 400);
  EXPECT_EQ(post(c, "/tokenize", R"({"prompt": 5})").status, 400);
}

}  // namespace
}  // namespace mlxd::serve::testing
