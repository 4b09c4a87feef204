// Chat fine-tuning through the trainer on the shipped default model (its tokenizer has a ChatML template):
// the step's target tokens are exactly the assistant turns' tokens, found here by searching the rendered
// conversation (not by the data module's prefix renderings); the loss falls; and a user turn's text never
// reaches the targets.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mlxd/data/batch.h"
#include "mlxd/data/record_source.h"
#include "mlxd/data/sample_encoder.h"
#include "mlxd/tokenizer/chat_template.h"
#include "mlxd/trainer/trainer.h"
#include "support/temp_dir.h"
#include "trainer/setup.h"

namespace mlxd::trainer {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

const fs::path chat_model_dir = MLXD_DEFAULT_MODEL_DIR;

ojson conversation(const std::string& question, const std::string& answer, bool follow_up) {
  ojson m = ojson::array();
  m.push_back({{"role", "system"}, {"content", "Answer in the words of the King James Bible."}});
  m.push_back({{"role", "user"}, {"content", question}});
  m.push_back({{"role", "assistant"}, {"content", answer}});
  if (follow_up) {
    m.push_back({{"role", "user"}, {"content", "And then?"}});
    m.push_back({{"role", "assistant"}, {"content", "And the evening and the morning were the first day."}});
  }
  return m;
}

std::vector<ojson> chat_records(const std::string& first_question) {
  return {conversation(first_question, "In the beginning God created the heaven and the earth.", true),
          conversation("Who divided the light?", "God divided the light from the darkness.", false),
          conversation("What did God say?", "Let there be light: and there was light.", true),
          conversation("What was upon the deep?", "Darkness was upon the face of the deep.", false)};
}

fs::path write_jsonl(const test::temp_dir& dir, const std::string& name, const std::vector<ojson>& records) {
  std::string text;
  for (const auto& m : records) text += ojson{{"messages", m}}.dump() + "\n";
  return dir.write(name, text);
}

// The assistant turns' tokens of one conversation, independently of the data module: render the whole
// conversation, then take each span from after "<|im_start|>assistant\n" to the end of its "<|im_end|>\n"
// (the template's end of turn, which the model must learn to emit).
std::vector<token_id> assistant_tokens(const tokenizer& tok, const ojson& messages) {
  chat_request request;
  request.messages = messages;
  const std::string text = apply_chat_template(tok, request);
  const std::string open = "<|im_start|>assistant\n", close = "<|im_end|>\n";
  std::vector<token_id> out;
  for (size_t at = text.find(open); at != std::string::npos; at = text.find(open, at)) {
    const size_t begin = at + open.size(), end = text.find(close, begin);
    EXPECT_NE(end, std::string::npos);
    const auto ids = tok.encode(std::string_view(text).substr(begin, end + close.size() - begin), false);
    out.insert(out.end(), ids.begin(), ids.end());
    at = end;
  }
  return out;
}

nlohmann::json chat_config(const fs::path& records, const fs::path& out) {
  return {{"model", {{"from", chat_model_dir.string()}}},
          {"data",
           {{"train", {records.string()}},
            {"seq_len", 128},
            {"batch_size", 4},
            {"pack", false},
            {"shuffle", false},
            {"validation_fraction", 0.0}}},
          {"optim", {{"name", "adam"}, {"lr", 3e-3}}},
          {"schedule", {{"kind", "constant"}}},
          {"run", {{"out", out.string()}, {"steps", 6}}},
          {"threads", 1}};
}

// The targets (in order, ignored positions left out) and the inputs of the first batch the trainer's data
// path makes of `records`.
std::pair<std::vector<int32_t>, std::vector<int32_t>> first_batch(const train_config& c) {
  const data::sample_encoder encoder(tokenizer::load(c.tokenizer), encoder_settings(c));
  data::batch_loader loader(data::record_source(train_source(c, 0, 1)), encoder,
                            batch_settings(c, encoder.tok()));
  const std::optional<data::batch> b = loader.next();
  EXPECT_TRUE(b.has_value());
  if (!b) return {};
  std::vector<int32_t> targets;
  for (int32_t t : b->targets)
    if (t != data::ignore_label) targets.push_back(t);
  return {targets, b->inputs};
}

TEST(chat_finetune, targets_are_the_assistant_turns_and_the_loss_falls) {
  ASSERT_TRUE(fs::exists(chat_model_dir / "tokenizer_config.json")) << chat_model_dir;
  const tokenizer tok = tokenizer::load(chat_model_dir);
  test::temp_dir dir("chat_finetune");
  const std::vector<ojson> records = chat_records("How did it begin?");
  const fs::path file = write_jsonl(dir, "chat.jsonl", records);

  std::vector<int32_t> expected;
  for (const auto& m : records) {
    const auto ids = assistant_tokens(tok, m);
    ASSERT_FALSE(ids.empty());
    expected.insert(expected.end(), ids.begin(), ids.end());
  }
  ASSERT_GT(expected.size(), 40u);

  trainer t(parse_train_config(chat_config(file, dir.path() / "run"), dir.path()));
  const step_result first = t.step();
  // The batch holds the four conversations (one a row), so the step counts their assistant tokens.
  EXPECT_EQ(first.tokens, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(first_batch(t.config()).first, expected);

  double last = first.loss;
  while (t.steps_done() < 6) last = t.step().loss;
  EXPECT_LT(last, 0.6 * first.loss) << "first " << first.loss;
}

TEST(chat_finetune, a_user_turn_never_reaches_the_targets) {
  test::temp_dir dir("chat_user_turn");
  const fs::path a = write_jsonl(dir, "a.jsonl", chat_records("How did it begin?"));
  const fs::path b = write_jsonl(dir, "b.jsonl", chat_records("Tell me, what was made first of all things?"));
  const train_config ca = parse_train_config(chat_config(a, dir.path() / "a"), dir.path());
  const train_config cb = parse_train_config(chat_config(b, dir.path() / "b"), dir.path());
  const auto [targets_a, inputs_a] = first_batch(ca);
  const auto [targets_b, inputs_b] = first_batch(cb);
  EXPECT_NE(inputs_a, inputs_b);  // the user's text did change what the model reads
  EXPECT_EQ(targets_a, targets_b);

  // Through the trainer: the same number of target tokens.
  trainer ta(ca), tb(cb);
  EXPECT_EQ(ta.step().tokens, tb.step().tokens);
}

}  // namespace
}  // namespace mlxd::trainer
