// The trainer end to end on a tiny model: it learns, resumes bit-exactly, is invariant to how a step's rows
// are split into micro-batches, skips non-finite steps, and writes a model that the inference path loads.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_train.h"
#include "mlxd/models/lora.h"
#include "mlxd/trainer/run.h"
#include "mlxd/trainer/trainer.h"
#include "trainer_fixture.h"

namespace mlxd::trainer {
namespace {

namespace fs = std::filesystem;

void expect_bit_equal(const std::vector<array>& a, const std::vector<array>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].shape(), b[i].shape());
    const array x = contiguous(a[i]), y = contiguous(b[i]);
    ASSERT_EQ(0, std::memcmp(x.data<float>(), y.data<float>(), x.nbytes())) << "parameter " << i;
  }
}

double max_abs_diff(const array& a, const array& b) {
  const array x = contiguous(a), y = contiguous(b);
  double m = 0;
  for (int64_t i = 0; i < x.size(); ++i)
    m = std::max(m, static_cast<double>(std::abs(x.data<float>()[i] - y.data<float>()[i])));
  return m;
}

using trainer_test = test::trainer_fixture;

TEST_F(trainer_test, learns_the_corpus) {
  nlohmann::json doc = config_doc("learn", 60);
  doc["optim"]["lr"] = 1e-2;
  trainer t(parse_train_config(doc, dir_.path()));
  const double first = t.step().loss;
  double last = first;
  while (t.steps_done() < 60) last = t.step().loss;
  EXPECT_GT(first, 5.0);  // about log(300) at random init
  EXPECT_LT(last, first - 2.0);
  const eval_result e = t.evaluate();
  EXPECT_GT(e.tokens, 0);
  EXPECT_NEAR(e.perplexity, std::exp(e.loss), 1e-9 * e.perplexity);
  EXPECT_LT(e.loss, first - 1.0);
}

TEST_F(trainer_test, resumes_exactly_from_a_checkpoint) {
  std::vector<double> straight;
  std::vector<array> straight_params;
  {
    trainer t(config("straight", 6));
    while (t.steps_done() < 6) straight.push_back(t.step().loss);
    straight_params = t.params();
  }
  {
    trainer first(config("resumed", 6));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(first.step().loss, straight[i]);
    first.save_checkpoint();
  }
  trainer second(config("resumed", 6));
  ASSERT_TRUE(second.resumed_from().has_value());
  EXPECT_EQ(second.steps_done(), 3);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(second.step().loss, straight[i]) << "step " << i + 1;
  expect_bit_equal(second.params(), straight_params);
}

TEST_F(trainer_test, accumulation_splits_give_the_same_update) {
  // SGD, so the update is lr * gradient and the comparison sees the gradient itself.
  auto sgd = [&](const std::string& out, int64_t rows, int64_t accumulation) {
    nlohmann::json doc = config_doc(out, 2);
    doc["optim"] = {{"name", "sgd"}, {"lr", 0.5}, {"grad_clip", 0.0}, {"accumulation", accumulation}};
    doc["schedule"] = {{"kind", "constant"}};
    doc["data"]["batch_size"] = rows;
    return parse_train_config(doc, dir_.path());
  };
  trainer whole(sgd("whole", 4, 1)), split(sgd("split", 1, 4)), halves(sgd("halves", 2, 2));
  const std::vector<array> start = whole.params();
  for (int s = 0; s < 2; ++s) {
    const step_result a = whole.step(), b = split.step(), c = halves.step();
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.tokens, c.tokens);
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * a.loss);
    EXPECT_NEAR(a.loss, c.loss, 1e-5 * a.loss);
  }
  for (size_t i = 0; i < start.size(); ++i) {
    // Relative to the size of the update, so the check cannot pass by the update being tiny.
    const double moved = max_abs_diff(whole.params()[i], start[i]);
    ASSERT_GT(moved, 1e-6) << whole.param_names()[i];
    EXPECT_LT(max_abs_diff(whole.params()[i], split.params()[i]), 1e-4 * moved) << whole.param_names()[i];
    EXPECT_LT(max_abs_diff(whole.params()[i], halves.params()[i]), 1e-4 * moved) << whole.param_names()[i];
  }
}

// With data.row_streams each of a step's rows packs from its own stream, so the splits agree here too, and a
// resumed run restores every stream's cursor (4 a rank here) exactly.
TEST_F(trainer_test, row_streams_give_the_same_update_for_every_split_and_resume_exactly) {
  auto streams = [&](const std::string& out, int64_t rows, int64_t accumulation, int64_t steps) {
    nlohmann::json doc = config_doc(out, steps);
    doc["optim"] = {{"name", "sgd"}, {"lr", 0.5}, {"grad_clip", 0.0}, {"accumulation", accumulation}};
    doc["schedule"] = {{"kind", "constant"}};
    doc["data"]["batch_size"] = rows;
    doc["data"]["row_streams"] = true;
    return parse_train_config(doc, dir_.path());
  };
  trainer whole(streams("whole", 4, 1, 4)), split(streams("split", 1, 4, 4)),
      halves(streams("halves", 2, 2, 4));
  const std::vector<array> start = whole.params();
  std::vector<double> losses;
  for (int s = 0; s < 4; ++s) {
    const step_result a = whole.step(), b = split.step(), c = halves.step();
    losses.push_back(c.loss);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.tokens, c.tokens);
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * a.loss);
    EXPECT_NEAR(a.loss, c.loss, 1e-5 * a.loss);
  }
  for (size_t i = 0; i < start.size(); ++i) {
    // Relative to the update, plus two f32 ulps of the norms' weights near 1, which moved least.
    const double moved = max_abs_diff(whole.params()[i], start[i]), tolerance = 1e-4 * moved + 2.4e-7;
    ASSERT_GT(moved, 1e-5) << whole.param_names()[i];
    EXPECT_LT(max_abs_diff(whole.params()[i], split.params()[i]), tolerance) << whole.param_names()[i];
    EXPECT_LT(max_abs_diff(whole.params()[i], halves.params()[i]), tolerance) << whole.param_names()[i];
  }
  {
    trainer first(streams("resumed", 2, 2, 4));
    for (int s = 0; s < 2; ++s) EXPECT_EQ(first.step().loss, losses[static_cast<size_t>(s)]);
    first.save_checkpoint();
  }
  trainer second(streams("resumed", 2, 2, 4));
  ASSERT_TRUE(second.resumed_from().has_value());
  for (int s = 2; s < 4; ++s)
    EXPECT_EQ(second.step().loss, losses[static_cast<size_t>(s)]) << "step " << s + 1;
  expect_bit_equal(second.params(), halves.params());
  // The checkpoint's streams do not fit a run that reads another number of them.
  EXPECT_THROW(trainer(streams("resumed", 4, 2, 6)), config_error);
  // Rows packed from the streams are not the rows of one sequential stream: the option changes the data.
  nlohmann::json plain = config_doc("plain", 1);
  plain["optim"] = {{"name", "sgd"}, {"lr", 0.5}, {"grad_clip", 0.0}};
  plain["schedule"] = {{"kind", "constant"}};
  trainer sequential(parse_train_config(plain, dir_.path()));
  EXPECT_NE(sequential.step().loss, losses[0]);
}

TEST_F(trainer_test, skips_a_step_whose_loss_is_not_finite) {
  nlohmann::json doc = config_doc("explode", 4);
  doc["optim"] = {{"name", "sgd"}, {"lr", 1e30}, {"grad_clip", 0.0}};
  doc["schedule"] = {{"kind", "constant"}};
  trainer t(parse_train_config(doc, dir_.path()));
  EXPECT_TRUE(t.step().skipped.empty());  // the first step is finite and throws the weights far away
  const std::vector<array> before = t.params();
  const step_result r = t.step();
  EXPECT_NE(r.skipped.find("non-finite"), std::string::npos) << r.skipped;
  EXPECT_NE(r.skipped.find("corpus.txt:"), std::string::npos) << r.skipped;
  expect_bit_equal(t.params(), before);
  EXPECT_EQ(t.steps_done(), 2);
}

TEST_F(trainer_test, run_writes_metrics_checkpoints_and_a_loadable_model) {
  nlohmann::json doc = config_doc("run", 5);
  doc["run"]["eval_every"] = 2;
  doc["run"]["checkpoint_every"] = 2;
  doc["run"]["keep_last"] = 2;
  const train_config c = parse_train_config(doc, dir_.path());
  run_summary s;
  std::vector<array> params;
  {
    trainer t(c);
    s = run_training(t, nullptr);
    params = t.params();
  }
  EXPECT_EQ(s.steps, 5);
  int steps = 0, evals = 0;
  std::ifstream in(metrics_path(c));
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    steps += j.contains("loss");
    evals += j.contains("val_loss");
    if (j.contains("loss")) {
      EXPECT_EQ(j.at("step"), steps);
    }
  }
  EXPECT_EQ(steps, 5);
  EXPECT_EQ(evals, 3);  // steps 2, 4 and the end
  // keep_last 2: steps 4 and 5 remain.
  EXPECT_FALSE(fs::exists(checkpoints_dir(c) / train::checkpoint_dir_name(2)));
  EXPECT_TRUE(train::is_complete_checkpoint(checkpoints_dir(c) / train::checkpoint_dir_name(4)));
  EXPECT_TRUE(train::is_complete_checkpoint(checkpoints_dir(c) / train::checkpoint_dir_name(5)));

  // The saved model computes what the trained weights compute.
  const models::llama_model m = models::load_llama(model_dir(c));
  const std::vector<int32_t> ids = {1, 40, 41, 42, 7};
  models::kv_cache cache = m.make_cache(16);
  const array logits = m.forward(ids, cache);
  trainer again(c);  // resumes at step 5: the same weights
  const array expected =
      squeeze(models::training_logits(again.model_config(), models::bind_params(again.param_names(), params),
                                      models::make_train_batch(array::from(ids, {1, 5}))));
  EXPECT_LT(max_abs_diff(logits, expected), 1e-4);
  EXPECT_TRUE(fs::exists(model_dir(c) / "tokenizer.json"));

  // Running the finished config again resumes at the end and does no step.
  const run_summary again_summary = run_training(again, nullptr);
  EXPECT_EQ(again_summary.last.step, 0);
}

TEST_F(trainer_test, metrics_of_a_resumed_run_have_no_repeated_steps) {
  nlohmann::json doc = config_doc("metrics", 4);
  doc["run"]["checkpoint_every"] = 2;
  {
    // A run of three steps: metrics of steps 1-3, checkpoints at 2 and (the end) 3.
    doc["run"]["steps"] = 3;
    trainer partial(parse_train_config(doc, dir_.path()));
    run_training(partial, nullptr);
  }
  doc["run"]["steps"] = 4;
  const train_config c = parse_train_config(doc, dir_.path());
  // The run above finished at 3 with a final checkpoint; drop it so the resume starts from step 2.
  fs::remove_all(checkpoints_dir(c) / train::checkpoint_dir_name(3));
  trainer t(c);
  EXPECT_EQ(t.steps_done(), 2);
  run_training(t, nullptr);
  std::vector<int64_t> steps;
  std::ifstream in(metrics_path(c));
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) steps.push_back(j.at("step"));
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST_F(trainer_test, fine_tunes_a_saved_model_on_prompt_completion_records) {
  const fs::path base = pretrained("base");
  const fs::path records = repeated_pairs();
  const nlohmann::json doc = {{"model", {{"from", base.string()}}},
                              {"data",
                               {{"train", {records.string()}},
                                {"seq_len", 64},
                                {"batch_size", 4},
                                {"pack", false},
                                {"shuffle", false}}},
                              {"optim", {{"name", "adam"}, {"lr", 1e-2}}},
                              {"schedule", {{"kind", "constant"}}},
                              {"run", {{"out", (dir_.path() / "tuned").string()}, {"steps", 25}}}};
  trainer t(parse_train_config(doc, dir_.path()));
  EXPECT_EQ(t.config().tokenizer, base);  // the model's own tokenizer by default
  const step_result first = t.step();
  // Only the completion's tokens and the EOS are targets, never the prompt's.
  const tokenizer tok = tokenizer::load(base);
  const auto completion = tok.encode("Let there be light: and there was light.", false);
  EXPECT_EQ(first.tokens, 4 * static_cast<int64_t>(completion.size() + 1));
  double last = first.loss;
  while (t.steps_done() < 25) last = t.step().loss;
  EXPECT_LT(last, 0.5 * first.loss);
}

// LoRA fine-tuning: only the adapters train (the base is unchanged), the run writes PEFT adapters and the
// fused model, and the fused model computes what the adapted forward computes.
TEST_F(trainer_test, lora_trains_adapters_only_and_writes_them_with_the_fused_model) {
  const fs::path base = pretrained("lora_base");
  // One record repeated: the adapters alone can fit it (slowly, as the base's small embeddings bound the
  // logits).
  const nlohmann::json doc = {
      {"model", {{"from", base.string()}, {"seed", 4}}},
      {"data", {{"train", {repeated_pairs().string()}}, {"seq_len", 64}, {"batch_size", 4}, {"pack", false}}},
      {"optim", {{"name", "adamw"}, {"lr", 2e-2}}},
      {"schedule", {{"kind", "constant"}}},
      {"run", {{"out", (dir_.path() / "lora").string()}, {"steps", 20}}},
      {"lora", {{"rank", 4}, {"alpha", 8}, {"targets", {"q_proj", "v_proj", "down_proj"}}}}};
  const train_config c = parse_train_config(doc, dir_.path());
  trainer t(c);
  for (const auto& n : t.param_names()) EXPECT_NE(n.find(".lora_"), std::string::npos) << n;
  EXPECT_EQ(t.param_names().size(), 2u * 3u * 2u);  // A and B, 3 modules, 2 layers
  const double first = t.step().loss;
  const run_summary s = run_training(t, nullptr);
  EXPECT_LT(s.last.loss, first - 0.3);

  const models::lora_adapters saved = models::load_lora_adapters(adapters_dir(c), &t.model_config());
  EXPECT_EQ(saved.config.rank, 4);
  const std::map<std::string, array> base_weights = load_model_weights(base).tensors;
  const std::map<std::string, array> fused = load_model_weights(model_dir(c)).tensors;
  // Untargeted weights are the base's; targeted ones moved.
  EXPECT_EQ(max_abs_diff(fused.at("model.layers.0.mlp.up_proj.weight"),
                         base_weights.at("model.layers.0.mlp.up_proj.weight")),
            0.0);
  EXPECT_GT(max_abs_diff(fused.at("model.layers.0.self_attn.q_proj.weight"),
                         base_weights.at("model.layers.0.self_attn.q_proj.weight")),
            1e-4);
  const models::train_batch batch =
      models::make_train_batch(array::from(std::vector<int32_t>{1, 40, 41}, {1, 3}));
  std::map<std::string, array> adapted = base_weights;
  for (const auto& [n, a] : saved.params) adapted.insert_or_assign(n, a);
  const models::lora_forward no_dropout{saved.config, {}, false};
  EXPECT_LT(max_abs_diff(models::training_logits(t.model_config(), fused, batch),
                         models::training_logits(t.model_config(), adapted, batch, &no_dropout)),
            1e-4);
}

TEST_F(trainer_test, lora_with_dropout_resumes_exactly) {
  const fs::path base = pretrained("lora_resume_base");
  auto lora = [&](const std::string& out) {
    nlohmann::json doc = config_doc(out, 6);
    doc["model"] = {{"from", base.string()}};
    doc.erase("tokenizer");
    doc["lora"] = {{"rank", 2}, {"dropout", 0.2}};
    return parse_train_config(doc, dir_.path());
  };
  std::vector<double> straight;
  std::vector<array> straight_params;
  {
    trainer t(lora("lora_straight"));
    while (t.steps_done() < 6) straight.push_back(t.step().loss);
    straight_params = t.params();
  }
  {
    trainer first(lora("lora_resumed"));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(first.step().loss, straight[i]);
    first.save_checkpoint();
  }
  trainer second(lora("lora_resumed"));
  ASSERT_TRUE(second.resumed_from().has_value());
  for (int i = 3; i < 6; ++i) EXPECT_EQ(second.step().loss, straight[i]) << "step " << i + 1;
  expect_bit_equal(second.params(), straight_params);
}

TEST_F(trainer_test, refuses_a_tokenizer_larger_than_the_vocabulary) {
  nlohmann::json doc = config_doc("small_vocab", 2);
  doc["model"]["config"]["vocab_size"] = 100;
  EXPECT_THROW(
      {
        try {
          trainer t(parse_train_config(doc, dir_.path()));
        } catch (const config_error& e) {
          EXPECT_NE(std::string(e.what()).find("vocab_size is 100"), std::string::npos) << e.what();
          throw;
        }
      },
      config_error);
}

}  // namespace
}  // namespace mlxd::trainer
