// sample_encoder: every record kind with its loss mask (chat: exactly the assistant tokens, with real chat
// templates), preference pairs, and errors that name file:line.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "data_test_util.h"
#include "mlxd/data/sample_encoder.h"

namespace mlxd::data {
namespace {

using ids = std::vector<token_id>;

ids cat(std::initializer_list<ids> parts) {
  ids out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

ids enc(const std::string& s) {
  return test::test_tokenizer().encode(s, false);
}

std::string read_template(const std::string& name) {
  std::ifstream in(std::string(MLXD_CHAT_TEMPLATES_DIR) + "/" + name);
  if (!in) throw std::runtime_error(name + " is missing");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

record jsonl(const std::string& text, const std::filesystem::path& path, uint64_t line = 1) {
  record r;
  r.text = text;
  r.line = line;
  r.path = &path;
  return r;
}

const std::filesystem::path jsonl_path = "data/train.jsonl", text_path = "data/corpus.txt";

TEST(SampleEncoder, PlainTextAndTextRecords) {
  const sample_encoder e(test::test_tokenizer(), {});
  for (const auto& r :
       {jsonl("In the beginning", text_path), jsonl(R"({"text": "In the beginning"})", jsonl_path)}) {
    const sample s = e.encode(r);
    EXPECT_EQ(s.ids, cat({{0}, enc("In the beginning"), {1}}));
    std::vector<uint8_t> loss(s.ids.size(), 1);
    loss[0] = 0;
    EXPECT_EQ(s.loss, loss);
  }
  encoder_options no_bos_eos;
  no_bos_eos.add_bos = no_bos_eos.add_eos = false;
  const sample_encoder bare(test::test_tokenizer(), no_bos_eos);
  EXPECT_EQ(bare.encode(jsonl("God", text_path)).ids, enc("God"));
}

TEST(SampleEncoder, CompletionLossOnlyOnTheCompletion) {
  const sample_encoder e(test::test_tokenizer(), {});
  const sample s =
      e.encode(jsonl(R"({"prompt": "What is the capital of France?", "completion": " Paris."})", jsonl_path));
  const ids prompt = enc("What is the capital of France?"), completion = enc(" Paris.");
  EXPECT_EQ(s.ids, cat({{0}, prompt, completion, {1}}));
  std::vector<uint8_t> loss(1 + prompt.size(), 0);
  loss.resize(s.ids.size(), 1);
  EXPECT_EQ(s.loss, loss);
  const auto labels = s.labels();
  EXPECT_EQ(labels.front(), ignore_label);
  EXPECT_EQ(labels.back(), 1);
}

// The loss covers exactly each assistant turn's content and the end-of-turn marker the template writes after
// it; system prompt, user turns and the assistant headers carry none.
TEST(SampleEncoder, ChatMarksExactlyTheAssistantTokens) {
  const std::string messages = R"({"messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "Hello, how are you today?"},
    {"role": "assistant", "content": "In the beginning God created the heaven and the earth."}]})";
  const std::string one_line = nlohmann::json::parse(messages).dump();
  for (const char* name : {"qwen2_5.jinja", "smollm2.jinja", ""}) {
    encoder_options o;
    if (*name) o.chat_template = read_template(name);
    const sample_encoder e(test::test_tokenizer(), o);
    const sample s = e.encode(jsonl(one_line, jsonl_path));
    ids marked;
    for (size_t i = 0; i < s.ids.size(); ++i) {
      if (s.loss[i]) marked.push_back(s.ids[i]);
    }
    EXPECT_EQ(marked, cat({enc("The capital of France is Paris.<|im_end|>\n"),
                           enc("In the beginning God created the heaven and the earth.<|im_end|>\n")}))
        << name;
    // Encoding span by span gives the tokens of the whole rendering here (borders at special tokens).
    chat_request request;
    request.messages = nlohmann::ordered_json::parse(messages)["messages"];
    const chat_template t(o.chat_template.empty() ? test::test_tokenizer().chat_template() : o.chat_template);
    EXPECT_EQ(s.ids, enc(apply_chat_template(test::test_tokenizer(), request, &t))) << name;
    EXPECT_EQ(s.loss.back(), 1);
  }
}

// GRPO and PPO prompts: a line or {"prompt"} as [BOS] text; a conversation as the template's rendering with
// the generation prompt, so the completion sampled after it is the assistant's turn.
TEST(SampleEncoder, PromptsForSampling) {
  const sample_encoder e(test::test_tokenizer(), {});
  const std::string text = "And God said,";
  for (const auto& r :
       {jsonl(text, text_path), jsonl(R"({"prompt": "And God said,", "id": 3})", jsonl_path)}) {
    const prompt_sample p = e.encode_prompt(r);
    EXPECT_EQ(p.text, text);
    EXPECT_EQ(p.ids, cat({{0}, enc(text)}));
  }
  const std::string chat = R"({"messages": [{"role": "user", "content": "Who made the light?"}]})";
  const prompt_sample p = e.encode_prompt(jsonl(chat, jsonl_path));
  chat_request request;
  request.messages = nlohmann::ordered_json::parse(chat)["messages"];
  request.add_generation_prompt = true;
  const std::string rendered = apply_chat_template(test::test_tokenizer(), request);
  EXPECT_EQ(p.text, rendered);
  EXPECT_EQ(p.ids, enc(rendered));
  EXPECT_TRUE(rendered.ends_with("<|im_start|>assistant\n")) << rendered;

  const auto error_of = [&](const std::string& line) {
    try {
      e.encode_prompt(jsonl(line, jsonl_path, 4));
    } catch (const data_error& x) {
      return std::string(x.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of(R"({"completion": "x"})").find("train.jsonl:4: a prompt record needs a field"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"messages": []})").find("must be a non-empty array"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt": 7})").find("field \"prompt\" must be a string"), std::string::npos);
}

TEST(SampleEncoder, PreferencePairs) {
  const sample_encoder e(test::test_tokenizer(), {});
  const auto p = e.encode_preference(
      jsonl(R"({"prompt": "What is the capital of France?", "chosen": " Paris.", "rejected": " Rome."})",
            jsonl_path));
  const ids prompt = cat({{0}, enc("What is the capital of France?")});
  EXPECT_EQ(p.prompt_length, prompt.size());
  EXPECT_EQ(p.chosen.ids, cat({prompt, enc(" Paris."), {1}}));
  EXPECT_EQ(p.rejected.ids, cat({prompt, enc(" Rome."), {1}}));
  for (const auto* s : {&p.chosen, &p.rejected}) {
    for (size_t i = 0; i < s->ids.size(); ++i) EXPECT_EQ(s->loss[i], i >= prompt.size() ? 1 : 0);
  }
  EXPECT_THROW(e.encode(jsonl(R"({"prompt": "a", "chosen": "b", "rejected": "c"})", jsonl_path)), data_error);
}

void expect_error(const sample_encoder& e, const std::string& line, const std::string& message,
                  bool preference = false) {
  try {
    const record r = jsonl(line, jsonl_path, 17);
    if (preference) {
      e.encode_preference(r);
    } else {
      e.encode(r);
    }
    ADD_FAILURE() << "no error for " << line;
  } catch (const data_error& err) {
    EXPECT_NE(std::string(err.what()).find("data/train.jsonl:17: " + message), std::string::npos)
        << err.what();
  }
}

TEST(SampleEncoder, ErrorsNameFileAndLine) {
  const sample_encoder e(test::test_tokenizer(), {});
  expect_error(e, R"({"text": "unterminated)", "invalid JSON");
  expect_error(e, R"([1, 2])", "a record must be a JSON object, got array");
  expect_error(e, R"({"txt": "x"})", "the record has none of the fields");
  expect_error(e, R"({"text": 5})", "field \"text\" must be a string, got number");
  expect_error(e, R"({"prompt": "x", "completion": null})",
               "field \"completion\" must be a string, got null");
  expect_error(e, R"({"messages": "hi"})", "field \"messages\" must be a non-empty array");
  expect_error(e, R"({"messages": [{"role": "user"}]})", "messages[0]: missing field \"content\"");
  expect_error(e, R"({"messages": [{"role": "user", "content": 3}]})",
               "messages[0]: field \"content\" must be a string, got number");
  expect_error(e, R"({"prompt": "x", "chosen": "y"})", "missing field \"rejected\"", true);
  encoder_options completion_only;
  completion_only.kind = record_kind::completion;
  const sample_encoder completions(test::test_tokenizer(), completion_only);
  expect_error(completions, R"({"text": "x"})", "missing field \"prompt\"");
  // A template whose rendering of a prefix is not a prefix of the whole cannot mark assistant turns.
  const sample_encoder odd(test::test_tokenizer(),
                           {.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
                                             "{% if add_generation_prompt %}>>{% endif %}"});
  expect_error(odd,
               R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})",
               "the chat template does not render messages[1]");
}

}  // namespace
}  // namespace mlxd::data
