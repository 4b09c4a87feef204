// A tiny pre-training setup shared by the trainer tests: a scratch folder with a small corpus, a byte-level
// BPE tokenizer learned from it, and a config for a two-layer Llama that trains in milliseconds a step.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "mlxd/tokenizer/bpe_trainer.h"
#include "mlxd/trainer/run.h"
#include "mlxd/trainer/train_config.h"
#include "support/temp_dir.h"

namespace mlxd::trainer::test {

inline std::string corpus_text() {
  const char* verses[] = {
      "In the beginning God created the heaven and the earth.",
      "And the earth was without form, and void; and darkness was upon the face of the deep.",
      "And the Spirit of God moved upon the face of the waters.",
      "And God said, Let there be light: and there was light.",
      "And God saw the light, that it was good: and God divided the light from the darkness.",
      "And God called the light Day, and the darkness he called Night.",
      "And the evening and the morning were the first day.",
      "And God said, Let there be a firmament in the midst of the waters.",
  };
  std::string text;
  for (int round = 0; round < 6; ++round)
    for (const char* v : verses) text += std::string(v) + (round % 2 ? " Amen." : "") + "\n";
  return text;
}

class trainer_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    corpus_ = dir_.write("corpus.txt", corpus_text());
    bpe_trainer_options o;
    o.vocab_size = 300;
    o.special_tokens = {"<s>", "</s>"};
    bpe_trainer t(o);
    t.add_text(corpus_text());
    save_tokenizer_files(t.train(), {}, dir_.path() / "tok");
  }

  // A config document (before validation) for a run in `out` under the scratch folder.
  nlohmann::json config_doc(const std::string& out, int64_t steps) const {
    return {{"model",
             {{"seed", 3},
              {"config",
               {{"architectures", {"LlamaForCausalLM"}},
                {"vocab_size", 300},
                {"hidden_size", 32},
                {"intermediate_size", 64},
                {"num_hidden_layers", 2},
                {"num_attention_heads", 4},
                {"num_key_value_heads", 2},
                {"max_position_embeddings", 64},
                {"rms_norm_eps", 1e-5},
                {"tie_word_embeddings", true}}}}},
            {"tokenizer", (dir_.path() / "tok").string()},
            {"data",
             {{"train", {corpus_.string()}},
              {"validation_fraction", 0.2},
              {"seq_len", 24},
              {"batch_size", 4},
              {"seed", 7}}},
            {"optim", {{"name", "adamw"}, {"lr", 3e-3}, {"weight_decay", 0.01}, {"grad_clip", 1.0}}},
            {"schedule", {{"kind", "warmup_cosine"}, {"warmup_steps", 2}, {"min_lr", 3e-4}}},
            {"run", {{"out", (dir_.path() / out).string()}, {"steps", steps}, {"eval_batches", 2}}},
            {"threads", 1}};
  }

  train_config config(const std::string& out, int64_t steps) const {
    return parse_train_config(config_doc(out, steps), dir_.path());
  }

  // The model folder of a three-step pre-training run in `out` (a base to fine-tune).
  std::filesystem::path pretrained(const std::string& out) const {
    const train_config c = config(out, 3);
    trainer t(c);
    run_training(t, nullptr);
    return model_dir(c);
  }

  // A JSONL file of one prompt/completion record, twelve times.
  std::filesystem::path repeated_pairs() const {
    std::string jsonl;
    for (int i = 0; i < 12; ++i)
      jsonl += R"({"prompt": "And God said, ", "completion": "Let there be light: and there was light."})"
               "\n";
    return dir_.write("pairs.jsonl", jsonl);
  }

  mlxd::test::temp_dir dir_;
  std::filesystem::path corpus_;
};

}  // namespace mlxd::trainer::test
