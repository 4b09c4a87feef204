#include "mlxd/train/schedule.h"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace mlxd::train {

namespace {

void require(bool ok, const char* fn, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("[") + fn + "] " + what);
}

void check_step(int64_t step) {
  if (step < 0) throw std::invalid_argument("[schedule] step must be >= 0, got " + std::to_string(step));
}

bool finite_nonneg(double x) {
  return std::isfinite(x) && x >= 0.0;
}

}  // namespace

schedule constant_schedule(double lr) {
  require(finite_nonneg(lr), "constant_schedule", "lr must be finite and >= 0");
  return [lr](int64_t step) {
    check_step(step);
    return lr;
  };
}

schedule linear_warmup(double peak, int64_t warmup_steps, double start) {
  require(finite_nonneg(peak) && finite_nonneg(start), "linear_warmup", "lrs must be finite and >= 0");
  require(warmup_steps >= 1, "linear_warmup", "warmup_steps must be >= 1");
  return [=](int64_t step) {
    check_step(step);
    if (step >= warmup_steps) return peak;
    return start + (peak - start) * static_cast<double>(step) / static_cast<double>(warmup_steps);
  };
}

schedule cosine_decay(double peak, int64_t decay_steps, double min_lr) {
  require(finite_nonneg(peak) && finite_nonneg(min_lr), "cosine_decay", "lrs must be finite and >= 0");
  require(decay_steps >= 1, "cosine_decay", "decay_steps must be >= 1");
  return [=](int64_t step) {
    check_step(step);
    if (step >= decay_steps) return min_lr;
    const double progress = static_cast<double>(step) / static_cast<double>(decay_steps);
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  };
}

schedule linear_decay(double from, double to, int64_t steps) {
  require(finite_nonneg(from) && finite_nonneg(to), "linear_decay", "lrs must be finite and >= 0");
  require(steps >= 1, "linear_decay", "steps must be >= 1");
  return [=](int64_t step) {
    check_step(step);
    if (step >= steps) return to;
    return from + (to - from) * static_cast<double>(step) / static_cast<double>(steps);
  };
}

schedule step_decay(double lr, int64_t step_size, double gamma) {
  require(finite_nonneg(lr), "step_decay", "lr must be finite and >= 0");
  require(step_size >= 1, "step_decay", "step_size must be >= 1");
  require(finite_nonneg(gamma), "step_decay", "gamma must be finite and >= 0");
  return [=](int64_t step) {
    check_step(step);
    return lr * std::pow(gamma, static_cast<double>(step / step_size));
  };
}

schedule join_schedules(std::vector<schedule> schedules, std::vector<int64_t> boundaries) {
  require(!schedules.empty(), "join_schedules", "no schedules");
  require(boundaries.size() + 1 == schedules.size(), "join_schedules",
          "needs exactly one boundary fewer than schedules");
  for (size_t i = 0; i < boundaries.size(); ++i) {
    require(boundaries[i] > (i == 0 ? 0 : boundaries[i - 1]), "join_schedules",
            "boundaries must be positive and strictly increasing");
  }
  for (const schedule& s : schedules) require(static_cast<bool>(s), "join_schedules", "empty schedule");
  return [schedules = std::move(schedules), boundaries = std::move(boundaries)](int64_t step) {
    check_step(step);
    size_t k = 0;
    while (k < boundaries.size() && step >= boundaries[k]) ++k;
    return schedules[k](k == 0 ? step : step - boundaries[k - 1]);
  };
}

schedule warmup_cosine(double peak, int64_t warmup_steps, int64_t total_steps, double min_lr) {
  require(warmup_steps >= 1 && warmup_steps < total_steps, "warmup_cosine",
          "needs 1 <= warmup_steps < total_steps");
  return join_schedules(
      {linear_warmup(peak, warmup_steps), cosine_decay(peak, total_steps - warmup_steps, min_lr)},
      {warmup_steps});
}

}  // namespace mlxd::train
