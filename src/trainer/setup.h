// The pieces a trainer builds from its config: the learning-rate schedule, the optimizer, and the
// data-stream settings. Internal to the trainer module.
#pragma once

#include <memory>

#include "mlxd/data/batch.h"
#include "mlxd/data/record_source.h"
#include "mlxd/data/sample_encoder.h"
#include "mlxd/train/optimizer.h"
#include "mlxd/train/schedule.h"
#include "mlxd/trainer/train_config.h"

namespace mlxd::trainer {

train::schedule make_schedule(const train_config& c);
std::unique_ptr<train::optimizer> make_optimizer(const train_config& c, const std::vector<std::string>& names,
                                                 const std::vector<array>& params);
data::encoder_options encoder_settings(const train_config& c);
data::batch_options batch_settings(const train_config& c, const tokenizer& tok);
// The training stream of `rank`: shuffled per epoch, endless.
data::source_options train_source(const train_config& c, int rank, int world);
// The validation stream of `rank`, one pass; nullopt when the config has no validation data.
std::optional<data::source_options> validation_source(const train_config& c, int rank, int world);

}  // namespace mlxd::trainer
