// A whole training run as `mlxd train` drives it: steps until run.steps, a metrics line per logged step
// in <out>/metrics.jsonl, a progress line, validation every run.eval_every steps and at the end,
// checkpoints every run.checkpoint_every steps and at the end, and the final model in <out>/model.
#pragma once

#include <cstdio>

#include "mlxd/trainer/trainer.h"

namespace mlxd::trainer {

struct run_summary {
  int64_t steps = 0;
  step_result last;  // the last step this process ran (step 0 when it ran none)
  eval_result final_eval;
};

// Runs `t` to its configured step count. Only rank 0 writes metrics, progress and the model. `progress`
// receives a bar redrawn in place when it is a terminal, plain lines otherwise (null: none).
run_summary run_training(trainer& t, std::FILE* progress);

}  // namespace mlxd::trainer
