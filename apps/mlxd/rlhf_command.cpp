#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "mlxd/data/record_source.h"
#include "mlxd/data/sample_encoder.h"
#include "mlxd/trainer/reward_model.h"

namespace mlxd::app {
namespace {

struct score_flags {
  std::string model, data, out;
  int batch_size = 8;
};

// A record's sequences to score: both sides of a preference pair, else the one sample.
struct pending {
  nlohmann::ordered_json record;
  std::vector<std::vector<int32_t>> sequences;
};

std::vector<int32_t> checked(std::vector<int32_t> ids, const data::record& r, int64_t limit) {
  if (ids.empty()) throw data::data_error(r.where() + ": encodes to no tokens");
  if (static_cast<int64_t>(ids.size()) > limit)
    throw data::data_error(r.where() + ": " + std::to_string(ids.size()) +
                           " tokens exceed the model's max_position_embeddings of " + std::to_string(limit));
  return ids;
}

void run_score(const score_flags& f) {
  const trainer::reward_model model(f.model);
  const data::sample_encoder encoder(tokenizer::load(f.model), {});
  data::source_options o;
  o.files = {f.data};
  data::record_source source(o);
  std::ofstream file;
  if (!f.out.empty()) {
    file.open(f.out);
    if (!file) throw std::runtime_error("cannot write " + f.out);
  }
  const int64_t limit = model.config().max_position_embeddings;
  std::vector<pending> batch;
  auto flush = [&] {
    std::vector<std::vector<int32_t>> all;
    for (const auto& p : batch) all.insert(all.end(), p.sequences.begin(), p.sequences.end());
    const std::vector<float> scores = model.score(all);
    size_t at = 0;
    for (auto& p : batch) {
      if (p.sequences.size() == 2) {
        p.record["chosen_score"] = scores[at], p.record["rejected_score"] = scores[at + 1];
      } else {
        p.record["score"] = scores[at];
      }
      at += p.sequences.size();
      const std::string line = p.record.dump() + "\n";
      if (file.is_open())
        file << line;
      else
        std::fputs(line.c_str(), stdout);
    }
    batch.clear();
  };
  while (const auto r = source.next()) {
    pending p;
    p.record = nlohmann::ordered_json::parse(r->text, nullptr, false);
    if (!p.record.is_object()) throw data::data_error(r->where() + ": not a JSON object");
    if (p.record.contains("chosen") && p.record.contains("rejected")) {
      const data::preference_sample s = encoder.encode_preference(*r);
      p.sequences = {checked(s.chosen.ids, *r, limit), checked(s.rejected.ids, *r, limit)};
    } else {
      p.sequences = {checked(encoder.encode(*r).ids, *r, limit)};
    }
    batch.push_back(std::move(p));
    if (static_cast<int>(batch.size()) >= f.batch_size) flush();
  }
  if (!batch.empty()) flush();
  if (file.is_open() && !file.flush()) throw std::runtime_error("cannot write " + f.out);
}

}  // namespace

void add_rlhf_command(CLI::App& app) {
  auto* rlhf = app.add_subcommand("rlhf", "reward models and preference optimisation");
  rlhf->require_subcommand(1);
  add_run_command(*rlhf, "reward",
                  "train a reward model (scalar head, Bradley-Terry loss) on preference pairs", "reward");
  add_run_command(*rlhf, "dpo", "Direct Preference Optimisation against a frozen reference model", "dpo");
  add_run_command(*rlhf, "grpo",
                  "GRPO: completions sampled from the policy, scored by a reward, group-relative", "grpo");
  add_run_command(*rlhf, "ppo",
                  "PPO: a completion per prompt, KL-penalised rewards, a value head and GAE, several epochs "
                  "of minibatches per rollout batch",
                  "ppo");
  auto* cmd = rlhf->add_subcommand("score", "score JSONL records with a reward model");
  auto f = std::make_shared<score_flags>();
  cmd->add_option("--model", f->model, "reward model folder (from `mlxd rlhf reward`)")->required();
  cmd->add_option("--data", f->data,
                  "JSONL: {\"prompt\",\"chosen\",\"rejected\"} pairs get chosen_score and rejected_score; "
                  "text, completion and chat records get score")
      ->required();
  cmd->add_option("--out", f->out, "output JSONL (default: standard output)");
  cmd->add_option("--batch-size", f->batch_size, "records scored per forward")->check(CLI::Range(1, 4096));
  cmd->callback([f] { run_score(*f); });
}

}  // namespace mlxd::app
