#include "setup.h"

namespace mlxd::trainer {

train::schedule make_schedule(const train_config& c) {
  const double peak = c.optim.lr;
  const int64_t warmup = c.schedule.warmup_steps, total = c.run.steps;
  if (warmup >= total) throw config_error("schedule.warmup_steps must be below run.steps");
  const std::string& kind = c.schedule.kind;
  if (kind == "warmup_cosine") return train::warmup_cosine(peak, warmup, total, c.schedule.min_lr);
  train::schedule after = kind == "constant" ? train::constant_schedule(peak)
                                             : train::linear_decay(peak, c.schedule.min_lr, total - warmup);
  if (warmup == 0) return after;
  return train::join_schedules({train::linear_warmup(peak, warmup), after}, {warmup});
}

std::unique_ptr<train::optimizer> make_optimizer(const train_config& c, const std::vector<std::string>& names,
                                                 const std::vector<array>& params) {
  std::vector<train::param_group> groups;
  for (const auto& glob : c.optim.no_decay) groups.push_back({glob, 1.0, 0.0});
  try {
    return train::make_optimizer(c.optim.name, names, params, c.optim.weight_decay, std::move(groups));
  } catch (const std::invalid_argument& e) {
    throw config_error(std::string("optim.name: ") + e.what());
  }
}

data::encoder_options encoder_settings(const train_config& c) {
  data::encoder_options o;
  const std::string& k = c.data.kind;
  o.kind = k == "text"         ? data::record_kind::text
           : k == "completion" ? data::record_kind::completion
           : k == "chat"       ? data::record_kind::chat
           : k == "preference" ? data::record_kind::preference
                               : data::record_kind::auto_detect;
  return o;
}

data::batch_options batch_settings(const train_config& c, const tokenizer& tok) {
  data::batch_options o;
  o.rows = c.data.batch_size;
  o.seq_len = c.data.seq_len;
  o.pack = c.data.pack;
  o.pad_id = tok.pad_id().value_or(tok.eos_id().value_or(0));
  return o;
}

data::source_options train_source(const train_config& c, int rank, int world) {
  data::source_options o;
  o.files = c.data.train;
  o.shuffle = c.data.shuffle;
  o.seed = c.data.seed;
  o.validation_fraction = c.data.validation.empty() ? c.data.validation_fraction : 0.0;
  o.which = data::split::train;
  o.rank = rank;
  o.world_size = world;
  o.max_epochs = 0;
  return o;
}

std::optional<data::source_options> validation_source(const train_config& c, int rank, int world) {
  data::source_options o;
  if (!c.data.validation.empty()) {
    o.files = c.data.validation;
    o.which = data::split::train;  // separate files: every line counts
  } else if (c.data.validation_fraction > 0) {
    o.files = c.data.train;
    o.validation_fraction = c.data.validation_fraction;
    o.which = data::split::validation;
  } else {
    return std::nullopt;
  }
  o.rank = rank;
  o.world_size = world;
  o.max_epochs = 1;
  return o;
}

}  // namespace mlxd::trainer
