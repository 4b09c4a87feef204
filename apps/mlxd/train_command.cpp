#include <unistd.h>

#include <cstdio>

#include "comm_flags.h"
#include "commands.h"
#include "mlxd/comm/registry.h"
#include "mlxd/comm/rendezvous.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/trainer/run.h"

namespace mlxd::app {

namespace {

void print_stats(const std::vector<std::pair<std::string, double>>& stats) {
  for (const auto& [name, value] : stats) std::printf(", %s %.4f", name.c_str(), value);
}

}  // namespace

// A run of `task` from a YAML config: `mlxd train` (task lm, or whatever the config's task says) and
// `mlxd rlhf dpo|reward` (which insist on theirs).
void add_run_command(CLI::App& parent, const std::string& name, const std::string& description,
                     const std::string& task) {
  auto* cmd = parent.add_subcommand(name, description);
  auto config = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto steps = std::make_shared<int64_t>(0);
  auto fresh = std::make_shared<bool>(false);
  auto security = std::make_shared<comm_security_flags>();
  cmd->add_option("--config", *config, "the run's YAML (or JSON) settings")->required();
  cmd->add_option("--set", *overrides, "override a setting: KEY=VALUE, e.g. optim.lr=3e-4 (repeatable)");
  cmd->add_option("--out", *out, "the run's folder (overrides run.out)");
  cmd->add_option("--steps", *steps, "optimizer steps (overrides run.steps)")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-resume", *fresh, "start over even when the run's folder holds a checkpoint");
  add_comm_security_flags(cmd, *security);
  cmd->callback([=] {
    std::vector<std::string> sets = *overrides;
    if (!out->empty()) sets.push_back("run.out=" + *out);
    if (*steps > 0) sets.push_back("run.steps=" + std::to_string(*steps));
    if (*fresh) sets.push_back("run.resume=false");
    if (!task.empty()) {
      const std::string given = trainer::load_train_config(*config, sets).task;
      if (given != "lm" && given != task)
        throw trainer::config_error(*config + " sets task: " + given + "; run `mlxd rlhf " + given +
                                    "` for it");
      sets.push_back("task=" + task);
    }
    const trainer::train_config c = trainer::load_train_config(*config, sets);
    if (c.threads > 0) set_num_threads(c.threads);
    // Under `mlxd launch` (or Slurm) the ranks train data-parallel; alone, this process is the run.
    trainer::trainer_options options;
    if (auto env = comm::options_from_env(); env && env->world_size > 1) {
      check_comm_security_flags(*security);
      apply_comm_security_flags(*security, *env);
      options.group = comm::make_group("grpc", *env);
    }
    trainer::trainer t(c, options);
    const trainer::run_summary s = trainer::run_training(t, stderr);
    if (t.rank() != 0) return;
    std::printf("trained %lld steps: loss %.4f", static_cast<long long>(s.steps), s.last.loss);
    print_stats(s.last.stats);
    if (s.final_eval.tokens > 0) {
      std::printf("; validation loss %.4f", s.final_eval.loss);
      if (c.task == "lm") std::printf(" (perplexity %.2f)", s.final_eval.perplexity);
      print_stats(s.final_eval.stats);
    }
    std::printf("; model in %s\n", trainer::model_dir(c).c_str());
  });
}

void add_train_command(CLI::App& app) {
  add_run_command(app, "train", "train or fine-tune a Llama-family model from a YAML config", "");
}

}  // namespace mlxd::app
