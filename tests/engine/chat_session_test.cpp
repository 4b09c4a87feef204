#include "mlxd/engine/chat_session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "mlxd/core/ops.h"

namespace mlxd::engine {
namespace {

const std::string chat_model_dir = MLXD_DEFAULT_MODEL_DIR;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

chat_options sampled(uint64_t seed) {
  chat_options o;
  o.max_tokens = 12;
  o.sampling.temperature = 0.9f;
  o.sampling.top_p = 0.95f;
  o.sampling.seed = seed;
  return o;
}

// What `mlxd generate --tokens prompt` does: a fresh cache and sampler, one prefill, then token by token.
std::vector<int32_t> generate_alone(const models::llama_model& m, const tokenizer& tok,
                                    const std::vector<int32_t>& prompt, const chat_options& o) {
  models::kv_cache cache = m.make_cache(static_cast<int>(prompt.size()) + o.max_tokens);
  sampler draw(o.sampling, m.config().vocab_size);
  std::vector<int32_t> out;
  array logits = m.forward(prompt, cache);
  for (int i = 0; i < o.max_tokens; ++i) {
    const int64_t n = logits.shape(0);
    const array last = contiguous(slice_axis(logits, 0, n - 1, n));
    out.push_back(draw.sample({last.data<float>(), static_cast<size_t>(last.size())}, out).id);
    const auto& eos = tok.eos_ids();
    if (std::find(eos.begin(), eos.end(), out.back()) != eos.end() || i + 1 == o.max_tokens) break;
    logits = m.forward({out.back()}, cache);
  }
  return out;
}

std::vector<int32_t> rendered(const tokenizer& tok, const nlohmann::ordered_json& messages) {
  chat_request r;
  r.messages = messages;
  r.add_generation_prompt = true;
  return tok.encode(apply_chat_template(tok, r), false);
}

class ChatSession : public ::testing::Test {
 protected:
  models::llama_model model = models::load_llama(chat_model_dir);
  tokenizer tok = tokenizer::load(chat_model_dir);
};

// The second turn reuses the cached first turn, and its reply is what a fresh generation over the whole
// rendered conversation gives.
TEST_F(ChatSession, LaterTurnsReuseTheCacheAndEqualAFreshGeneration) {
  const chat_options o = sampled(7);
  chat_session s(model, tok, o);
  std::string streamed;
  const chat_turn first = s.reply("In the beginning", [&](std::string_view p) { streamed += p; });
  EXPECT_EQ(streamed, first.text);
  EXPECT_EQ(first.reused_tokens, 0);
  EXPECT_EQ(
      first.tokens,
      generate_alone(model, tok, rendered(tok, {{{"role", "user"}, {"content", "In the beginning"}}}), o));
  EXPECT_EQ(first.text, tok.decode(first.tokens, true));

  const std::vector<int32_t> cached = s.cached_tokens();
  const chat_turn second = s.reply("And God said");
  const nlohmann::ordered_json history = {{{"role", "user"}, {"content", "In the beginning"}},
                                          {{"role", "assistant"}, {"content", first.text}},
                                          {{"role", "user"}, {"content", "And God said"}}};
  EXPECT_EQ(s.messages().size(), 4u);
  const std::vector<int32_t> prompt = rendered(tok, history);
  EXPECT_EQ(second.prompt_tokens, static_cast<int>(prompt.size()));
  size_t common = 0;
  while (common < cached.size() && cached[common] == prompt[common]) ++common;
  EXPECT_GT(common, 10u);  // at least the first user turn
  EXPECT_EQ(second.reused_tokens, static_cast<int>(common));
  EXPECT_EQ(second.tokens, generate_alone(model, tok, prompt, o));
}

// reset() forgets the conversation: the next reply is that of a new session, not the one with history.
TEST_F(ChatSession, ResetForgetsTheConversation) {
  const chat_options o = sampled(3);
  chat_session s(model, tok, o);
  s.reply("In the beginning");
  const chat_turn with_history = s.reply("And God said");
  s.reset();
  EXPECT_TRUE(s.cached_tokens().empty());
  EXPECT_EQ(s.messages().size(), 0u);
  const chat_turn after_reset = s.reply("And God said");
  chat_session fresh(model, tok, o);
  const chat_turn alone = fresh.reply("And God said");
  EXPECT_EQ(after_reset.tokens, alone.tokens);
  EXPECT_EQ(after_reset.reused_tokens, 0);
  EXPECT_NE(with_history.tokens, alone.tokens);
}

TEST_F(ChatSession, SystemMessageComesFirstAndSurvivesReset) {
  chat_options o = sampled(1);
  o.system = "You are terse.";
  chat_session s(model, tok, o);
  const chat_turn t = s.reply("Hello");
  EXPECT_EQ(t.tokens, generate_alone(model, tok,
                                     rendered(tok, {{{"role", "system"}, {"content", "You are terse."}},
                                                    {{"role", "user"}, {"content", "Hello"}}}),
                                     o));
  s.reset();
  ASSERT_EQ(s.messages().size(), 1u);
  EXPECT_EQ(s.messages()[0]["role"], "system");
}

TEST_F(ChatSession, AModelWithoutAChatTemplateIsRefused) {
  std::string config = read_text(chat_model_dir + "/tokenizer_config.json");
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(config);
  j.erase("chat_template");
  const tokenizer plain = tokenizer::from_json(read_text(chat_model_dir + "/tokenizer.json"), j.dump());
  try {
    chat_session s(model, plain, sampled(1));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template"), std::string::npos) << e.what();
  }
}

// A conversation longer than the context is refused and left as it was; a reply that fills the context ends
// there and says so.
TEST_F(ChatSession, TheContextBoundsTheConversation) {
  const int prompt = static_cast<int>(rendered(tok, {{{"role", "user"}, {"content", "Hello"}}}).size());
  chat_options o = sampled(5);
  o.ignore_eos = true;
  o.context = prompt + 3;
  chat_session s(model, tok, o);
  const chat_turn t = s.reply("Hello");
  EXPECT_TRUE(t.context_full);
  EXPECT_EQ(t.tokens.size(), 4u);  // 3 more positions hold 3 decoded tokens; the 4th is sampled, not cached
  EXPECT_THROW(s.reply("And then a much longer message that cannot fit"), std::invalid_argument);
  EXPECT_EQ(s.messages().size(), 2u);
  o.context = 1;
  EXPECT_THROW(chat_session(model, tok, o), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::engine
