// Parsing and validating request bodies: every bad field is a 400 naming it; hostile bodies (deep nesting,
// huge numbers, invalid UTF-8) are refused without crashing.
#include <gtest/gtest.h>

#include "mlxd/serve/api_error.h"
#include "mlxd/serve/request.h"

namespace mlxd::serve {
namespace {

// The api_error a body raises (status 0 when it parses).
api_error chat_error(const std::string& body) {
  try {
    parse_chat_request(body);
  } catch (const api_error& e) {
    return e;
  }
  return api_error(0, "parsed");
}

TEST(Request, ParsesAChatRequest) {
  const chat_request r = parse_chat_request(R"({"model": "m", "messages": [
      {"role": "developer", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}],
      "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 5, "min_p": 0.1, "seed": -3,
      "presence_penalty": 1, "frequency_penalty": -1, "repetition_penalty": 1.1, "stop": "END", "n": 2,
      "stream": true, "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 3,
      "logit_bias": {"5": -100}, "user": "u", "some_future_field": {"x": 1}})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "hi there");
  const generation_params& p = r.params;
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 0.9f);
  EXPECT_EQ(p.sampling.top_k, 5);
  EXPECT_EQ(p.sampling.seed, static_cast<uint64_t>(-3));
  EXPECT_TRUE(p.seed_given);
  EXPECT_EQ(p.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(p.n, 2);
  EXPECT_TRUE(p.stream && p.include_usage && p.logprobs);
  EXPECT_EQ(p.sampling.top_logprobs, 3);
  EXPECT_FLOAT_EQ(p.sampling.logit_bias.at(5), -100.0f);
}

TEST(Request, ParsesEveryPromptShape) {
  EXPECT_EQ(parse_completion_request(R"({"prompt": "a"})").prompts.size(), 1u);
  EXPECT_EQ(parse_completion_request(R"({"prompt": ["a", "b"]})").prompts.size(), 2u);
  const auto ids = parse_completion_request(R"({"prompt": [1, 2, 3], "logprobs": 2})");
  EXPECT_TRUE(ids.prompts[0].is_ids);
  EXPECT_EQ(ids.prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ids.params.sampling.top_logprobs, 2);
  EXPECT_EQ(parse_completion_request(R"({"prompt": [[1], [2, 3]]})").prompts.size(), 2u);
}

TEST(Request, NamesTheFieldOfEachError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"messages": []})", "messages"},
      {R"({})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", "temperature"},
      {R"({"messages": [{"role": "user", "content": "x"}], "temperature": 2.5})", "temperature"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_p": 0})", "top_p"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n": 17})", "n"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": ["a", 3]})", "stop"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": ""})", "stop"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"a": 1}})", "logit_bias"},
      {R"({"messages": [{"role": "user", "content": "x"}], "model": 5})", "model"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", "stream"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", "tools"},
  };
  for (const auto& [body, param] : cases) {
    const api_error e = chat_error(body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), param) << body << ": " << e.what();
    EXPECT_EQ(e.type(), "invalid_request_error");
  }
}

TEST(Request, RefusesHostileBodies) {
  EXPECT_EQ(chat_error(std::string(100000, '[')).status(), 400);  // would overflow a recursive parser's stack
  EXPECT_EQ(chat_error(std::string(100000, '{')).status(), 400);
  EXPECT_EQ(chat_error("{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}").status(), 400);
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e999})").status(),
            400);
  EXPECT_EQ(
      chat_error(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999})")
          .status(),
      400);
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user", "content": "x"}], "seed": 18446744073709551615})")
                .status(),
            400);
  EXPECT_EQ(chat_error("").status(), 400);
  EXPECT_EQ(chat_error("[1, 2]").status(), 400);
  EXPECT_EQ(chat_error("{\"a\": \"\\ud800\"}").status(), 400);  // a lone surrogate escape
  // Brackets inside strings do not count as nesting.
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user", "content": ")" + std::string(1000, '[') + R"("}]})")
                .status(),
            0);
}

TEST(Request, ErrorJsonHasOpenAIsShape) {
  const auto j = bad_request("temperature must be a number", "temperature").to_json();
  EXPECT_EQ(j["error"]["message"], "temperature must be a number");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "temperature");
  EXPECT_TRUE(j["error"]["code"].is_null());
}

}  // namespace
}  // namespace mlxd::serve
