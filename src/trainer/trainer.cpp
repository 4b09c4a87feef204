#include "mlxd/trainer/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/io_error.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_folder.h"
#include "mlxd/models/llama_train.h"
#include "mlxd/models/lora.h"
#include "mlxd/train/grad_accumulator.h"
#include "mlxd/train/grad_allreduce.h"
#include "mlxd/train/grad_clip.h"
#include "objective.h"
#include "objectives.h"
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
fs::path adapters_dir(const train_config& c) {
  return c.run.out / "adapters";
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The model and its trainable weights, loaded to fine-tune or drawn to pre-train.
std::pair<models::llama_config, std::map<std::string, array>> initial_model(const train_config& c) {
  if (!c.model.from.empty()) {
    models::llama_config config = models::load_llama_config(c.model.from);
    std::map<std::string, array> weights = models::load_llama_folder_weights(c.model.from, config);
    return {std::move(config), std::move(weights)};
  }
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
  std::optional<train::grad_allreducer> reducer;  // data-parallel: sums over the ranks
  models::llama_config model;
  // With LoRA: the base weights, frozen (the trained arrays are the adapters).
  std::map<std::string, array> frozen;
  std::unique_ptr<data::sample_encoder> encoder;
  std::unique_ptr<objective> task;
  std::unique_ptr<objective> validation;  // made at the first evaluation
  std::vector<data::cursor> validation_start;
  std::vector<std::string> names;
  std::vector<array> params;  // the trained arrays, f32, in names' order
  std::unique_ptr<train::optimizer> optim;
  train::schedule lr;
  train::grad_accumulator accum;
  random::key rng;
  int64_t step = 0;
  std::optional<fs::path> resumed;

  impl(train_config c, trainer_options o) : cfg(std::move(c)), options(std::move(o)) {
    if (options.group) {
      rank = options.group->rank(), world = options.group->size();
      reducer.emplace(options.group, static_cast<size_t>(cfg.data_parallel.bucket_mb) << 20);
    }
    tokenizer tok = tokenizer::load(cfg.tokenizer);
    auto [config, weights] = initial_model(cfg);
    model = config;
    if (tok.vocab_size() > model.vocab_size)
      throw config_error("the tokenizer in " + cfg.tokenizer.string() + " has " +
                         std::to_string(tok.vocab_size()) + " tokens but the model's vocab_size is " +
                         std::to_string(model.vocab_size));
    if (cfg.lora) {
      // Only the adapters train; the base weights stay as loaded (f16/bf16 are fine as constants).
      for (const auto& n : models::llama_param_names(model)) {
        auto it = weights.find(n);
        if (it == weights.end()) throw io_error("the model has no weight " + n);
        frozen.emplace(n, it->second);
      }
      names = models::lora_param_names(model, *cfg.lora);
      const auto adapters = models::init_lora_params(model, *cfg.lora, cfg.model.seed);
      for (const auto& n : names) params.push_back(adapters.at(n));
    } else {
      names = models::llama_param_names(model);
      for (const auto& n : names) {
        auto it = weights.find(n);
        if (it == weights.end()) throw io_error("the model has no weight " + n);
        params.push_back(it->second.type() == dtype::f32 ? it->second : astype(it->second, dtype::f32));
      }
    }
    for (auto& [name, init] : task_params(cfg, model)) {
      // A reward model read back (to train on) brings its own head.
      auto it = weights.find(name);
      names.push_back(name);
      params.push_back(it == weights.end() ? init : astype(it->second, dtype::f32));
    }
    encoder = std::make_unique<data::sample_encoder>(std::move(tok), encoder_settings(cfg));
    task =
        make_objective(cfg, train_source(cfg, rank, world), *encoder, {cfg.lora ? &frozen : nullptr}, rank);
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
    const json manifest = json::parse(s.data_cursor);
    const json& ranks = manifest.at("ranks");
    if (static_cast<int>(ranks.size()) != world)
      throw config_error(dir->string() + " was written by " + std::to_string(ranks.size()) +
                         " ranks; resume it with as many");
    // A rank's entry is its cursor, or the list of its streams' cursors (data.row_streams).
    std::vector<data::cursor> cursors;
    if (ranks.at(rank).is_array()) {
      for (const json& c : ranks.at(rank)) cursors.push_back(data::cursor::from_json(c));
    } else {
      cursors.push_back(data::cursor::from_json(ranks.at(rank)));
    }
    task->restore_all(cursors);
    task->restore_state(manifest.value("task", json()));
    step = s.step;
    rng = s.rng;
    resumed = *dir;
  }

  // The logits (or final hidden states) of a batch for the trained arrays `p` (the frozen base weights
  // joined in with LoRA). `micro` numbers the step's micro-batches, so each gets its own dropout masks on
  // each rank.
  array forward(const std::vector<array>& p, const models::train_batch& batch, bool hidden, int64_t micro,
                bool training) const {
    const auto run = [&](const std::map<std::string, array>& w, const models::lora_forward* lora) {
      return hidden ? models::training_hidden(model, w, batch, lora)
                    : models::training_logits(model, w, batch, lora);
    };
    if (!cfg.lora) return run(models::bind_params(names, p), nullptr);
    std::map<std::string, array> all = frozen;
    for (size_t i = 0; i < names.size(); ++i) all.insert_or_assign(names[i], p[i]);
    const models::lora_forward fwd{*cfg.lora,
                                   random::split(random::split(rng, static_cast<uint64_t>(step)),
                                                 static_cast<uint64_t>(micro * world + rank)),
                                   training};
    return run(all, &fwd);
  }

  // Every weight of the model for the trained arrays p, to generate from.
  std::map<std::string, array> weights(const std::vector<array>& p) const {
    if (!cfg.lora) return models::bind_params(names, p);
    auto adapters = models::bind_params(names, p);
    for (const auto& [name, init] : task_params(cfg, model)) adapters.erase(name);
    return models::fuse_lora(model, frozen, {*cfg.lora, adapters, cfg.model.from.string()});
  }

  // The logits and the final hidden states of one forward; the logits are the hidden states times the LM
  // head.
  std::pair<array, array> forward_both(const std::vector<array>& p, const models::train_batch& batch,
                                       int64_t micro, bool training) const {
    const array h = forward(p, batch, true, micro, training);
    const std::string head = model.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    const auto it = std::find(names.begin(), names.end(), head);
    const array& w = it != names.end() ? p[static_cast<size_t>(it - names.begin())] : frozen.at(head);
    const int64_t rows = h.shape(0), seq = h.shape(1);
    return {reshape(matmul(reshape(h, {rows * seq, model.hidden_size}), transpose(w)),
                    {rows, seq, model.vocab_size}),
            h};
  }

  policy_view view(int64_t micro, bool training) {
    policy_view v;
    v.forward = [this, micro, training](const std::vector<array>& p, const models::train_batch& b,
                                        bool hidden) { return forward(p, b, hidden, micro, training); };
    v.forward_both = [this, micro](const std::vector<array>& p, const models::train_batch& b, bool dropout) {
      return forward_both(p, b, micro, dropout);
    };
    v.sum_over_ranks = [this](const std::vector<double>& values) { return sum_scalars(values); };
    v.training = training;
    v.weights = [this](const std::vector<array>& p) { return weights(p); };
    v.params = &params;
    v.step = step;
    v.micro = micro;
    v.param_names = names;
    v.model = model;
    return v;
  }

  // The step's statistics from their sums over micro-batches and ranks.
  std::vector<std::pair<std::string, double>> stat_means(const objective& o, const std::vector<double>& sums,
                                                         double units) const {
    std::vector<std::pair<std::string, double>> out;
    const auto specs = o.stats();
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].kind != stat_spec::reduce::sum) {
        if (std::isfinite(sums[i])) out.emplace_back(specs[i].name, sums[i]);
        continue;
      }
      const double per = specs[i].total      ? 1.0
                         : specs[i].per >= 0 ? sums[static_cast<size_t>(specs[i].per)]
                                             : units;
      out.emplace_back(specs[i].name, per > 0 ? sums[i] / per : 0.0);
    }
    return out;
  }

  // Sums a few per-rank values over the ranks (this rank's alone without any).
  std::vector<double> sum_scalars(const std::vector<double>& values) {
    return reducer ? reducer->sum_scalars(values) : values;
  }

  // Statistics at their starting values: 0 for sums, +inf for minima, -inf for maxima.
  static std::vector<double> initial_stats(const objective& o) {
    std::vector<double> out;
    for (const stat_spec& s : o.stats())
      out.push_back(s.kind == stat_spec::reduce::min   ? INFINITY
                    : s.kind == stat_spec::reduce::max ? -INFINITY
                                                       : 0.0);
    return out;
  }

  // The step's statistics over the ranks: sums summed, extremes gathered (the comm layer's all_gather of
  // f64) and reduced, so every rank reports the same.
  std::vector<double> reduce_stats(const objective& o, const std::vector<double>& local) {
    const auto specs = o.stats();
    std::vector<double> sums, extremes;
    std::vector<stat_spec::reduce> kinds;
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].kind == stat_spec::reduce::sum) {
        sums.push_back(local[i]);
      } else {
        extremes.push_back(local[i]);
        kinds.push_back(specs[i].kind);
      }
    }
    sums = sum_scalars(sums);
    if (options.group && !extremes.empty()) {
      const size_t n = extremes.size();
      const std::vector<double> all =
          options.group->all_gather(array::from(extremes, {static_cast<int64_t>(n)})).to_vector<double>();
      for (size_t at = n; at < all.size(); ++at) {
        const size_t i = at % n;
        extremes[i] = kinds[i] == stat_spec::reduce::min ? std::min(extremes[i], all[at])
                                                         : std::max(extremes[i], all[at]);
      }
    }
    std::vector<double> out;
    size_t a = 0, b = 0;
    for (const stat_spec& s : specs)
      out.push_back(s.kind == stat_spec::reduce::sum ? sums[a++] : extremes[b++]);
    return out;
  }

  std::vector<shape_t> param_shapes() const {
    std::vector<shape_t> shapes;
    for (const auto& p : params) shapes.push_back(p.shape());
    return shapes;
  }

  // Where the data of the next micro-batch starts, for messages about a bad batch.
  std::string batch_where() const {
    const data::cursor c = task->position();
    const auto& files = cfg.data.train;
    const std::string file = c.file < files.size() ? files[c.file].string() : "?";
    return "epoch " + std::to_string(c.epoch) + ", " + file + ":" + std::to_string(c.line);
  }

  // One optimizer update: optim.accumulation micro-batches (numbered from first_micro for their dropout
  // masks), the loss and gradients summed over them and the ranks and divided by the units of all.
  struct update_result {
    double loss_sum = 0, units = 0, grad_norm = 0;
    int64_t tokens = 0;
    std::vector<double> stats;  // over the ranks
    std::string skipped;
  };

  update_result run_update(int64_t first_micro, const std::string& step_start) {
    update_result u;
    std::vector<double> stats = initial_stats(*task);
    std::string first_bad;
    std::optional<train::overlapped_grad_sum> summing;  // data-parallel, on the last micro-batch
    for (int64_t m = 0; m < cfg.optim.accumulation; ++m) {
      const std::string where = batch_where();
      std::optional<micro_batch> b = task->next(view(first_micro + m, true));
      if (!b) throw data::data_error("the training data holds no sample for rank " + std::to_string(rank));
      if (reducer && cfg.data_parallel.overlap && m + 1 == cfg.optim.accumulation)
        summing.emplace(*reducer, param_shapes());
      const loss_fn f = [&](const std::vector<array>& p) { return b->loss_sum(p, stats); };
      array loss;
      if (summing) {
        // The last micro-batch: each gradient, once final, joins the earlier ones' sum and its bucket's
        // all-reduce starts while the backward pass goes on (the same bytes as summing afterwards).
        const std::vector<array> earlier = accum.micro_batches() > 0 ? accum.take(1.0) : std::vector<array>{};
        loss = value_and_grad(f, params, [&](size_t i, const array& g) {
                 summing->add(i, earlier.empty() ? g : add(earlier[i], g));
               }).first;
      } else {
        auto [value, grads] = value_and_grad(f, params);
        loss = value;
        accum.add(grads);
      }
      const double l = loss.item<float>();
      if (!std::isfinite(l) && first_bad.empty()) first_bad = where;
      u.loss_sum += l;
      u.units += b->units;
      u.tokens += b->tokens;
    }
    // The gradient buckets travel before the scalar sums, on every rank alike.
    std::vector<array> grads = summing ? summing->finish() : accum.take(1.0);
    if (reducer && !summing) grads = reducer->sum(grads);
    const std::vector<double> totals =
        sum_scalars({u.loss_sum, u.units, static_cast<double>(u.tokens), first_bad.empty() ? 0.0 : 1.0});
    u.stats = reduce_stats(*task, stats);
    u.loss_sum = totals[0];
    u.units = totals[1];
    u.tokens = static_cast<int64_t>(totals[2]);
    const bool bad_loss = totals[3] > 0;
    if (u.units > 0) {
      const array scale(static_cast<float>(1.0 / u.units));
      for (auto& g : grads) g = multiply(g, scale);
    }
    const train::clip_result clip = cfg.optim.grad_clip > 0
                                        ? train::clip_grad_norm(grads, cfg.optim.grad_clip)
                                        : train::clip_result{train::global_grad_norm(grads), true, false};
    u.grad_norm = clip.norm;
    const bool bad_grad = !std::isfinite(clip.norm);
    if (bad_loss || bad_grad) {
      // A non-finite loss names its micro-batch; a gradient only the step's data (this rank's part).
      u.skipped = bad_loss && !first_bad.empty() ? "non-finite loss in the batch at " + first_bad
                  : bad_loss ? "non-finite loss on another rank; this rank's data from " + step_start
                             : "non-finite gradient; the step's data from " + step_start;
    } else if (u.units == 0) {
      u.skipped = std::string("no ") + task->unit_name();
    } else {
      optim->step(params, grads, lr(step));
    }
    return u;
  }

  // A step makes the objective's updates_per_step updates (one, but for PPO's epochs of minibatches); its
  // loss and statistics cover all of them, its gradient norm is their mean.
  step_result train_step() {
    const auto t0 = std::chrono::steady_clock::now();
    const double comm_before = reducer ? reducer->comm_seconds() : 0.0;
    const std::string step_start = batch_where();
    const int64_t updates = task->updates_per_step();
    const auto specs = task->stats();
    step_result r;
    r.lr = lr(step);
    double loss_sum = 0, units = 0, norms = 0;
    std::vector<double> stats = initial_stats(*task);
    for (int64_t i = 0; i < updates; ++i) {
      update_result u = run_update(i * cfg.optim.accumulation, step_start);
      loss_sum += u.loss_sum;
      units += u.units;
      norms += u.grad_norm;
      r.tokens += u.tokens;
      for (size_t k = 0; k < specs.size(); ++k) {
        const double v = u.stats[k];
        stats[k] = specs[k].kind == stat_spec::reduce::min   ? std::min(stats[k], v)
                   : specs[k].kind == stat_spec::reduce::max ? std::max(stats[k], v)
                                                             : stats[k] + v;
      }
      if (!u.skipped.empty() && r.skipped.empty())
        r.skipped = updates == 1 ? u.skipped
                                 : "update " + std::to_string(i + 1) + " of " + std::to_string(updates) +
                                       ": " + u.skipped;
    }
    r.comm_seconds = reducer ? reducer->comm_seconds() - comm_before : 0.0;
    r.loss = units > 0 ? loss_sum / units : 0.0;
    r.grad_norm = norms / static_cast<double>(updates);
    r.stats = stat_means(*task, stats, units);
    ++step;
    r.step = step;
    r.seconds = seconds_since(t0);
    return r;
  }

  eval_result evaluate() {
    eval_result e;
    if (!validation) {
      const auto source = validation_source(cfg, rank, world);
      if (!source) return e;
      // Validation batches are not steps: with row streams, each holds one row of each of ranks x batch_size.
      train_config eval_cfg = cfg;
      eval_cfg.optim.accumulation = 1;
      validation = make_objective(eval_cfg, *source, *encoder, {cfg.lora ? &frozen : nullptr}, rank);
      validation_start = validation->cursors();
    }
    validation->restore_all(validation_start);
    autograd::no_grad no_tape;
    double loss_sum = 0, units = 0;
    std::vector<double> stats = initial_stats(*validation);
    for (int64_t i = 0; i < cfg.run.eval_batches; ++i) {
      std::optional<micro_batch> b = validation->next(view(i, false));
      if (!b) break;
      loss_sum += b->loss_sum(params, stats).item<float>();
      units += b->units;
    }
    const std::vector<double> totals = sum_scalars({loss_sum, units});
    stats = reduce_stats(*validation, stats);
    loss_sum = totals[0];
    units = totals[1];
    e.tokens = static_cast<int64_t>(units);
    if (e.tokens == 0) return e;
    e.loss = loss_sum / units;
    e.perplexity = cfg.task == "lm" ? std::exp(e.loss) : 0.0;
    e.stats = stat_means(*validation, stats, units);
    return e;
  }

  fs::path save() {
    // Every rank's data cursors go into rank 0's checkpoint; every rank has as many (the config says).
    const std::vector<data::cursor> mine = task->cursors();
    std::vector<int64_t> row;
    for (const data::cursor& c : mine) {
      const std::vector<int64_t> fields = c.to_row();
      row.insert(row.end(), fields.begin(), fields.end());
    }
    array rows = array::from(row, {static_cast<int64_t>(row.size())});
    if (options.group) rows = options.group->all_gather(rows);
    fs::path dir = checkpoints_dir(cfg) / train::checkpoint_dir_name(step);
    if (rank == 0) {
      json ranks = json::array();
      const int64_t* v = rows.data<int64_t>();
      for (int r = 0; r < world; ++r) {
        json streams = json::array();
        for (size_t i = 0; i < mine.size(); ++i, v += data::cursor::n_fields)
          streams.push_back(data::cursor::from_row(v).to_json());
        ranks.push_back(mine.size() == 1 ? streams[0] : streams);
      }
      train::checkpoint_state s;
      s.step = step;
      s.schedule_step = step;
      s.weights = models::bind_params(names, params);
      s.optimizer_state = optim->state();
      s.optimizer_name = std::string(optim->name());
      s.rng = rng;
      json manifest = {{"ranks", ranks}};
      if (json state = task->state(); !state.is_null()) manifest["task"] = std::move(state);
      s.data_cursor = manifest.dump();
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
  const impl& m = *impl_;
  const std::string& t = m.cfg.run.save_dtype;
  const dtype out = t == "f16" ? dtype::f16 : t == "bf16" ? dtype::bf16 : dtype::f32;
  std::map<std::string, array> weights;
  if (m.cfg.lora) {
    // The adapters in PEFT's layout beside the model, and the base with them fused in.
    auto adapters = models::bind_params(m.names, m.params);
    std::map<std::string, array> heads;
    for (const auto& [name, init] : task_params(m.cfg, m.model)) heads.insert(adapters.extract(name));
    save_lora_adapters(adapters_dir(m.cfg), *m.cfg.lora, adapters, m.cfg.model.from.string());
    weights = models::fuse_lora(m.model, m.frozen, {*m.cfg.lora, adapters, m.cfg.model.from.string()});
    weights.merge(heads);
  } else {
    weights = models::bind_params(m.names, m.params);
  }
  // A task's head that is not part of the model (PPO's value head) stays in the checkpoints only.
  for (const auto& [name, init] : task_params(m.cfg, m.model))
    if (!task_param_is_saved(name)) weights.erase(name);
  models::llama_config config = m.model;
  if (weights.contains(reward_head_name)) config.num_labels = 1;
  for (auto& [name, w] : weights) {
    // Norm weights stay f32, as Hugging Face's half-precision checkpoints of small models often keep them.
    if (w.ndim() > 1 && w.type() != out) w = astype(w, out);
  }
  models::save_llama_folder(dir, config, weights, m.cfg.tokenizer);
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
