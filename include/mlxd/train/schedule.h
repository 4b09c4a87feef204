// Learning-rate schedules: pure functions from the number of optimizer steps already taken (0 for the first
// update) to a learning rate. A schedule holds no state, so resuming a run needs only the step. Every factory
// validates its arguments and throws std::invalid_argument with a "[function]" prefix; calling a schedule
// with a negative step throws too.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace mlxd::train {

using schedule = std::function<double(int64_t step)>;

// lr at every step.
schedule constant_schedule(double lr);
// start + (peak - start) * step / warmup_steps until warmup_steps, then peak.
schedule linear_warmup(double peak, int64_t warmup_steps, double start = 0.0);
// min_lr + (peak - min_lr) * (1 + cos(pi * step / decay_steps)) / 2 until decay_steps, then min_lr.
schedule cosine_decay(double peak, int64_t decay_steps, double min_lr = 0.0);
// from + (to - from) * step / steps until steps, then to.
schedule linear_decay(double from, double to, int64_t steps);
// lr * gamma^floor(step / step_size).
schedule step_decay(double lr, int64_t step_size, double gamma);
// schedules[k] runs from boundaries[k-1] (0 for k = 0) with its own step counted from there, like optax's
// join_schedules. boundaries are strictly increasing and one fewer than the schedules.
schedule join_schedules(std::vector<schedule> schedules, std::vector<int64_t> boundaries);
// The usual pre-training shape: linear warmup from 0 to peak over warmup_steps, then cosine to min_lr at
// total_steps (warmup_steps < total_steps).
schedule warmup_cosine(double peak, int64_t warmup_steps, int64_t total_steps, double min_lr = 0.0);

}  // namespace mlxd::train
