#include "mlxd/trainer/run.h"

#include <chrono>
#include <optional>

#include "metrics_log.h"
#include "progress.h"

namespace mlxd::trainer {
namespace {

double tokens_per_second(const step_result& r) {
  return r.seconds > 0 ? static_cast<double>(r.tokens) / r.seconds : 0.0;
}

nlohmann::json step_line(const step_result& r, double elapsed) {
  nlohmann::json j = {
      {"step", r.step},           {"loss", r.loss},      {"lr", r.lr},
      {"grad_norm", r.grad_norm}, {"tokens", r.tokens},  {"tokens_per_s", tokens_per_second(r)},
      {"comm_s", r.comm_seconds}, {"elapsed_s", elapsed}};
  for (const auto& [name, value] : r.stats) j[name] = value;
  if (!r.skipped.empty()) j["skipped"] = r.skipped;
  // JSON has no NaN or infinity: a non-finite loss or norm is written as null.
  for (const char* key : {"loss", "grad_norm"})
    if (!std::isfinite(j[key].get<double>())) j[key] = nullptr;
  return j;
}

}  // namespace

run_summary run_training(trainer& t, std::FILE* progress_out) {
  const train_config& c = t.config();
  const bool lead = t.rank() == 0;
  std::optional<metrics_log> log;
  if (lead) log.emplace(metrics_path(c), t.steps_done());
  progress bar(lead ? progress_out : nullptr, t.steps_done(), c.run.steps, c.run.log_every);
  if (t.resumed_from()) bar.note("resumed from " + t.resumed_from()->string());
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  run_summary summary;
  int64_t evaluated_at = -1, saved_at = t.resumed_from() ? t.steps_done() : -1;
  auto evaluate = [&] {
    summary.final_eval = t.evaluate();
    evaluated_at = t.steps_done();
    if (summary.final_eval.tokens == 0) return;
    const eval_result& e = summary.final_eval;
    const bool lm = c.task == "lm";
    nlohmann::json j = {
        {"step", t.steps_done()}, {"val_loss", e.loss}, {lm ? "val_tokens" : "val_pairs", e.tokens}};
    if (lm) j["val_ppl"] = e.perplexity;
    char line[160];
    int n = std::snprintf(line, sizeof line, "step %lld: validation loss %.4f",
                          static_cast<long long>(t.steps_done()), e.loss);
    if (lm)
      n += std::snprintf(line + n, sizeof line - static_cast<size_t>(n), ", perplexity %.2f", e.perplexity);
    for (const auto& [name, value] : e.stats) {
      j["val_" + name] = value;
      if (n < static_cast<int>(sizeof line))
        n += std::snprintf(line + n, sizeof line - static_cast<size_t>(n), ", %s %.4g", name.c_str(), value);
    }
    if (log) log->write(j);
    bar.note(line);
  };

  while (t.steps_done() < c.run.steps) {
    const step_result r = t.step();
    summary.last = r;
    if (log && (r.step % c.run.log_every == 0 || !r.skipped.empty() || r.step == c.run.steps))
      log->write(step_line(r, elapsed()));
    if (!r.skipped.empty()) bar.note("step " + std::to_string(r.step) + " skipped: " + r.skipped);
    bar.report(r.step, r.loss, r.lr, tokens_per_second(r));
    if (c.run.eval_every > 0 && r.step % c.run.eval_every == 0) evaluate();
    if (c.run.checkpoint_every > 0 && r.step % c.run.checkpoint_every == 0) {
      t.save_checkpoint();
      saved_at = r.step;
    }
  }
  bar.finish();
  if (evaluated_at != t.steps_done()) evaluate();
  if (saved_at != t.steps_done()) t.save_checkpoint();
  if (lead) {
    t.save_model(model_dir(c));
    bar.note("model written to " + model_dir(c).string());
  }
  summary.steps = t.steps_done();
  return summary;
}

}  // namespace mlxd::trainer
