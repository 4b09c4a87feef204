#include "mlxd/trainer/trainer.h"

#include <chrono>
#include <cmath>

#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/data/batch.h"
#include "mlxd/io/io_error.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_folder.h"
#include "mlxd/models/llama_train.h"
#include "mlxd/train/grad_accumulator.h"
#include "mlxd/train/grad_clip.h"
#include "setup.h"

namespace mlxd::trainer {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path checkpoints_dir(const train_config& c) {
  return c.run.out / "checkpoints";
}
fs::path metrics_path(const train_config& c) {
  return c.run.out / "metrics.jsonl";
}
fs::path model_dir(const train_config& c) {
  return c.run.out / "model";
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One micro-batch as the model's inputs and next-token labels.
struct model_batch {
  models::train_batch inputs;
  array labels;
};

model_batch to_model_batch(const data::batch& b) {
  const shape_t shape = {b.rows, b.seq_len};
  return {
      {array::from(b.inputs, shape), array::from(b.segment_ids, shape), array::from(b.position_ids, shape)},
      array::from(b.targets, shape)};
}

// A cursor as six integers, so ranks can gather theirs into one checkpoint.
array cursor_row(const data::cursor& c) {
  const std::vector<int64_t> v = {c.epoch,
                                  static_cast<int64_t>(c.position),
                                  static_cast<int64_t>(c.file),
                                  static_cast<int64_t>(c.offset),
                                  static_cast<int64_t>(c.line),
                                  static_cast<int64_t>(c.token_offset)};
  return array::from(v, {6});
}

data::cursor cursor_from_row(const int64_t* v) {
  return {v[0],
          static_cast<uint64_t>(v[1]),
          static_cast<uint64_t>(v[2]),
          static_cast<uint64_t>(v[3]),
          static_cast<uint64_t>(v[4]),
          static_cast<uint64_t>(v[5])};
}

// The model and its trainable weights, loaded to fine-tune or drawn to pre-train.
std::pair<models::llama_config, std::map<std::string, array>> initial_model(const train_config& c) {
  if (!c.model.from.empty())
    return {models::load_llama_config(c.model.from), load_model_weights(c.model.from).tensors};
  models::llama_config config;
  try {
    config = models::parse_llama_config(c.model.config.dump(), "model.config");
  } catch (const std::invalid_argument& e) {
    throw config_error(e.what());
  }
  return {config, models::init_llama_weights(config, c.model.seed)};
}

}  // namespace

struct trainer::impl {
  train_config cfg;
  trainer_options options;
  int rank = 0, world = 1;
  models::llama_config model;
  std::unique_ptr<data::sample_encoder> encoder;
  std::unique_ptr<data::batch_loader> loader;
  std::vector<std::string> names;
  std::vector<array> params;  // f32, in names' order
  std::unique_ptr<train::optimizer> optim;
  train::schedule lr;
  train::grad_accumulator accum;
  random::key rng;
  int64_t step = 0;
  std::optional<fs::path> resumed;

  impl(train_config c, trainer_options o) : cfg(std::move(c)), options(std::move(o)) {
    if (options.group) rank = options.group->rank(), world = options.group->size();
    tokenizer tok = tokenizer::load(cfg.tokenizer);
    auto [config, weights] = initial_model(cfg);
    model = config;
    if (tok.vocab_size() > model.vocab_size)
      throw config_error("the tokenizer in " + cfg.tokenizer.string() + " has " +
                         std::to_string(tok.vocab_size()) + " tokens but the model's vocab_size is " +
                         std::to_string(model.vocab_size));
    names = models::llama_param_names(model);
    for (const auto& n : names) {
      auto it = weights.find(n);
      if (it == weights.end()) throw io_error("the model has no weight " + n);
      params.push_back(it->second.type() == dtype::f32 ? it->second : astype(it->second, dtype::f32));
    }
    const data::batch_options batching = batch_settings(cfg, tok);
    encoder = std::make_unique<data::sample_encoder>(std::move(tok), encoder_settings(cfg));
    loader = std::make_unique<data::batch_loader>(data::record_source(train_source(cfg, rank, world)),
                                                  *encoder, batching);
    optim = make_optimizer(cfg, names, params);
    lr = make_schedule(cfg);
    rng = {cfg.model.seed, 0x7472616e};
    if (cfg.run.resume) resume();
  }

  void resume() {
    const auto dir = train::latest_complete_checkpoint(checkpoints_dir(cfg));
    if (!dir) return;
    train::checkpoint_state s = train::load_checkpoint(*dir);
    for (size_t i = 0; i < names.size(); ++i) {
      auto it = s.weights.find(names[i]);
      if (it == s.weights.end() || it->second.shape() != params[i].shape())
        throw io_error(dir->string() + ": weight " + names[i] + " is missing or has another shape");
      params[i] = it->second;
    }
    if (s.weights.size() != names.size())
      throw io_error(dir->string() + ": holds weights this model does not have");
    optim->load_state(s.optimizer_state);
    const json ranks = json::parse(s.data_cursor).at("ranks");
    if (static_cast<int>(ranks.size()) != world)
      throw config_error(dir->string() + " was written by " + std::to_string(ranks.size()) +
                         " ranks; resume it with as many");
    loader->restore(data::cursor::from_json(ranks.at(rank)));
    step = s.step;
    rng = s.rng;
    resumed = *dir;
  }

  // Sums per-rank values over the group (this rank's alone without one).
  std::vector<array> all_sum(std::vector<array> xs, double& comm_seconds) {
    if (!options.group) return xs;
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& x : xs) x = options.group->all_reduce(x, comm::reduce_op::sum);
    comm_seconds += seconds_since(t0);
    return xs;
  }

  // Where the data of the next micro-batch starts, for messages about a bad batch.
  std::string batch_where() const {
    const data::cursor c = loader->position();
    const auto& files = cfg.data.train;
    const std::string file = c.file < files.size() ? files[c.file].string() : "?";
    return "epoch " + std::to_string(c.epoch) + ", " + file + ":" + std::to_string(c.line);
  }

  step_result train_step() {
    const auto t0 = std::chrono::steady_clock::now();
    step_result r;
    double loss_sum = 0;
    int64_t tokens = 0;
    std::string first_bad;
    const std::string step_start = batch_where();
    for (int64_t m = 0; m < cfg.optim.accumulation; ++m) {
      const std::string where = m == 0 ? step_start : batch_where();
      std::optional<data::batch> b = loader->next();
      if (!b) throw data::data_error("the training data holds no sample for rank " + std::to_string(rank));
      const model_batch mb = to_model_batch(*b);
      auto [loss, grads] = value_and_grad(
          [&](const std::vector<array>& p) {
            return models::masked_cross_entropy(
                       models::training_logits(model, models::bind_params(names, p), mb.inputs), mb.labels)
                .sum;
          },
          params);
      const double l = loss.item<float>();
      if (!std::isfinite(l) && first_bad.empty()) first_bad = where;
      loss_sum += l;
      tokens += b->n_targets;
      accum.add(grads);
    }
    std::vector<array> grads = accum.take(1.0);
    const std::vector<double> local = {loss_sum, static_cast<double>(tokens), first_bad.empty() ? 0.0 : 1.0};
    std::vector<array> totals = all_sum(
        {array::from(std::vector<float>{static_cast<float>(local[0]), static_cast<float>(local[2])}, {2}),
         array::from(std::vector<int64_t>{tokens}, {1})},
        r.comm_seconds);
    grads = all_sum(std::move(grads), r.comm_seconds);
    if (options.group) {
      loss_sum = totals[0].data<float>()[0];
      tokens = totals[1].data<int64_t>()[0];
    }
    const bool bad_loss = options.group ? totals[0].data<float>()[1] > 0 : !first_bad.empty();
    r.tokens = tokens;
    r.loss = tokens > 0 ? loss_sum / static_cast<double>(tokens) : 0.0;
    r.lr = lr(step);
    if (tokens > 0) {
      const array scale(static_cast<float>(1.0 / static_cast<double>(tokens)));
      for (auto& g : grads) g = multiply(g, scale);
    }
    const train::clip_result clip = cfg.optim.grad_clip > 0
                                        ? train::clip_grad_norm(grads, cfg.optim.grad_clip)
                                        : train::clip_result{train::global_grad_norm(grads), true, false};
    r.grad_norm = clip.norm;
    const bool bad_grad = !std::isfinite(clip.norm);
    if (bad_loss || bad_grad) {
      // A non-finite loss names its micro-batch; a gradient only the step's data (this rank's part).
      r.skipped = bad_loss && !first_bad.empty() ? "non-finite loss in the batch at " + first_bad
                  : bad_loss ? "non-finite loss on another rank; this rank's data from " + step_start
                             : "non-finite gradient; the step's data from " + step_start;
    } else if (tokens == 0) {
      r.skipped = "no target tokens";
    } else {
      optim->step(params, grads, r.lr);
    }
    ++step;
    r.step = step;
    r.seconds = seconds_since(t0);
    return r;
  }

  eval_result evaluate() {
    eval_result e;
    const auto source = validation_source(cfg, rank, world);
    if (!source) return e;
    autograd::no_grad no_tape;
    data::batch_loader val(data::record_source(*source), *encoder, batch_settings(cfg, encoder->tok()));
    double loss_sum = 0;
    int64_t tokens = 0;
    for (int64_t i = 0; i < cfg.run.eval_batches; ++i) {
      std::optional<data::batch> b = val.next();
      if (!b) break;
      const model_batch mb = to_model_batch(*b);
      const std::map<std::string, array> bound = models::bind_params(names, params);
      loss_sum += models::masked_cross_entropy(models::training_logits(model, bound, mb.inputs), mb.labels)
                      .sum.item<float>();
      tokens += b->n_targets;
    }
    double comm = 0;
    std::vector<array> totals = all_sum({array::from(std::vector<float>{static_cast<float>(loss_sum)}, {1}),
                                         array::from(std::vector<int64_t>{tokens}, {1})},
                                        comm);
    loss_sum = totals[0].data<float>()[0];
    e.tokens = totals[1].data<int64_t>()[0];
    if (e.tokens == 0) return e;
    e.loss = loss_sum / static_cast<double>(e.tokens);
    e.perplexity = std::exp(e.loss);
    return e;
  }

  fs::path save() {
    // Every rank's data cursor goes into rank 0's checkpoint.
    array rows = cursor_row(loader->position());
    if (options.group) rows = options.group->all_gather(rows);
    fs::path dir = checkpoints_dir(cfg) / train::checkpoint_dir_name(step);
    if (rank == 0) {
      json ranks = json::array();
      const int64_t* v = rows.data<int64_t>();
      for (int r = 0; r < world; ++r) ranks.push_back(cursor_from_row(v + 6 * r).to_json());
      train::checkpoint_state s;
      s.step = step;
      s.schedule_step = step;
      s.weights = models::bind_params(names, params);
      s.optimizer_state = optim->state();
      s.optimizer_name = std::string(optim->name());
      s.rng = rng;
      s.data_cursor = json{{"ranks", ranks}}.dump();
      train::checkpoint_options o = options.checkpoint;
      o.keep_last = cfg.run.keep_last;
      dir = train::save_checkpoint(checkpoints_dir(cfg), s, o);
    }
    if (options.group) options.group->barrier();
    return dir;
  }
};

trainer::trainer(train_config config, trainer_options options)
    : impl_(std::make_unique<impl>(std::move(config), std::move(options))) {}
trainer::~trainer() = default;

step_result trainer::step() {
  return impl_->train_step();
}
eval_result trainer::evaluate() {
  return impl_->evaluate();
}
fs::path trainer::save_checkpoint() {
  return impl_->save();
}

void trainer::save_model(const fs::path& dir) const {
  const std::string& t = impl_->cfg.run.save_dtype;
  const dtype out = t == "f16" ? dtype::f16 : t == "bf16" ? dtype::bf16 : dtype::f32;
  std::map<std::string, array> weights;
  for (size_t i = 0; i < impl_->names.size(); ++i) {
    const array& p = impl_->params[i];
    // Norm weights stay f32, as Hugging Face's half-precision checkpoints of small models often keep them.
    weights[impl_->names[i]] = p.ndim() == 1 || out == dtype::f32 ? p : astype(p, out);
  }
  models::save_llama_folder(dir, impl_->model, weights, impl_->cfg.tokenizer);
}

int64_t trainer::steps_done() const {
  return impl_->step;
}
int trainer::rank() const {
  return impl_->rank;
}
int trainer::world_size() const {
  return impl_->world;
}
const train_config& trainer::config() const {
  return impl_->cfg;
}
const models::llama_config& trainer::model_config() const {
  return impl_->model;
}
const std::vector<std::string>& trainer::param_names() const {
  return impl_->names;
}
const std::vector<array>& trainer::params() const {
  return impl_->params;
}
const std::optional<fs::path>& trainer::resumed_from() const {
  return impl_->resumed;
}

}  // namespace mlxd::trainer
