// POST /v1/embeddings on a real server: OpenAI's shape, unit-length vectors, a batch equal to its inputs sent
// alone, base64 that decodes to the same floats, and 400s that name what was wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "server_process.h"

namespace mlxd::serve::testing {
namespace {

using json = nlohmann::json;

std::vector<float> floats_of(const json& e) {
  return e.get<std::vector<float>>();
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// RFC 4648 base64, decoded independently of the server's encoder.
std::vector<float> floats_of_base64(const std::string& text) {
  std::string bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : text) {
    if (ch == '=') break;
    const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* at = std::strchr(digits, ch);
    if (!at || ch == '\0') throw std::runtime_error("not base64: " + text);
    acc = (acc << 6) | static_cast<uint32_t>(at - digits);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bytes.size() % 4 != 0) throw std::runtime_error("base64 of " + std::to_string(bytes.size()) + " bytes");
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

reply embed(httplib::Client& c, const json& body) {
  return post(c, "/v1/embeddings", body.dump());
}

TEST(ServerEmbeddings, ShapeUnitLengthAndUsage) {
  server_process server;
  auto c = server.client();
  const reply r = embed(c, {{"model", "tiny"}, {"input", "hello world"}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["object"], "list");
  EXPECT_EQ(r.body["model"], "tiny");
  ASSERT_EQ(r.body["data"].size(), 1u);
  EXPECT_EQ(r.body["data"][0]["object"], "embedding");
  EXPECT_EQ(r.body["data"][0]["index"], 0);
  const std::vector<float> e = floats_of(r.body["data"][0]["embedding"]);
  EXPECT_EQ(e.size(), 64u);           // tiny_serve.json's hidden_size
  EXPECT_NEAR(dot(e, e), 1.0, 1e-5);  // cosine with itself
  const reply tokens = post(c, "/tokenize", R"({"prompt": "hello world"})");
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], tokens.body["count"]);
  EXPECT_EQ(r.body["usage"]["total_tokens"], tokens.body["count"]);
  // Token ids give what their text gives; another text another direction.
  const reply ids = embed(c, {{"input", tokens.body["tokens"]}});
  ASSERT_EQ(ids.status, 200) << ids.raw;
  EXPECT_EQ(floats_of(ids.body["data"][0]["embedding"]), e);
  const std::vector<float> other = floats_of(embed(c, {{"input", "zzz"}}).body["data"][0]["embedding"]);
  EXPECT_LT(dot(e, other), 0.9999);
}

TEST(ServerEmbeddings, BatchEqualsSinglesAndBase64DecodesToTheSameFloats) {
  server_process server;
  auto c = server.client();
  const std::vector<std::string> texts = {"hello", "the quick brown fox", "hello"};
  const reply batch = embed(c, {{"input", texts}});
  ASSERT_EQ(batch.status, 200) << batch.raw;
  ASSERT_EQ(batch.body["data"].size(), 3u);
  int64_t total = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(batch.body["data"][i]["index"], i);
    const reply one = embed(c, {{"input", texts[i]}});
    EXPECT_EQ(floats_of(batch.body["data"][i]["embedding"]), floats_of(one.body["data"][0]["embedding"]));
    total += one.body["usage"]["prompt_tokens"].get<int64_t>();
  }
  EXPECT_EQ(batch.body["usage"]["prompt_tokens"], total);
  EXPECT_EQ(floats_of(batch.body["data"][0]["embedding"]), floats_of(batch.body["data"][2]["embedding"]));
  const reply b64 = embed(c, {{"input", texts}, {"encoding_format", "base64"}});
  ASSERT_EQ(b64.status, 200) << b64.raw;
  for (size_t i = 0; i < texts.size(); ++i)
    EXPECT_EQ(floats_of_base64(b64.body["data"][i]["embedding"]),
              floats_of(batch.body["data"][i]["embedding"]));
  const reply id_lists = embed(c, {{"input", {{1, 2, 3}, {4, 5}}}});
  ASSERT_EQ(id_lists.status, 200) << id_lists.raw;
  EXPECT_EQ(floats_of(id_lists.body["data"][1]["embedding"]),
            floats_of(embed(c, {{"input", {4, 5}}}).body["data"][0]["embedding"]));
}

TEST(ServerEmbeddings, BadInputIs400NamingIt) {
  server_process server;
  auto c = server.client();
  struct bad_case {
    json body;
    int status;
    std::string param, says;
  };
  const std::vector<bad_case> cases = {
      {json::object(), 400, "input", "input is required"},
      {{{"input", 5}}, 400, "input", "input must be a string"},
      {{{"input", json::array()}}, 400, "input", "input must be a string"},
      {{{"input", {json::array()}}}, 400, "input", "must be non-empty"},
      {{{"input", {-1}}}, 400, "input", "input must be in"},
      {{{"input", {999}}}, 400, "input", "outside the vocabulary of 263"},
      {{{"input", ""}}, 400, "input", "input[0] encodes to no tokens"},
      {{{"input", std::vector<int>(2049, 5)}}, 400, "input", "maximum context length is 2048"},
      {{{"input", "x"}, {"encoding_format", "hex"}}, 400, "encoding_format", "\"float\" or \"base64\""},
      {{{"input", "x"}, {"dimensions", 8}}, 400, "dimensions", "64 dimensions"},
      {{{"input", "x"}, {"model", "nope"}}, 404, "model", "does not exist"},
  };
  for (const bad_case& b : cases) {
    const reply r = embed(c, b.body);
    EXPECT_EQ(r.status, b.status) << b.body.dump() << " -> " << r.raw;
    ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.raw;
    EXPECT_EQ(r.body["error"]["param"], b.param) << r.raw;
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find(b.says), std::string::npos) << r.raw;
  }
  EXPECT_EQ(post(c, "/v1/embeddings", "{not json").status, 400);
  EXPECT_EQ(get(c, "/v1/embeddings").status, 405);
  EXPECT_EQ(embed(c, {{"input", "still serving"}}).status, 200);
}

}  // namespace
}  // namespace mlxd::serve::testing
