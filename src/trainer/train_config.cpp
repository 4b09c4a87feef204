#include <set>

#include "mlxd/io/file_text.h"
#include "mlxd/rlhf/rewards.h"
#include "mlxd/trainer/train_config.h"

namespace mlxd::trainer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Reads the keys of one section, remembering which it used so that any other key is reported.
class section {
 public:
  section(const json& doc, std::string name) : name_(std::move(name)) {
    if (doc.is_null()) return;
    if (!doc.is_object()) throw config_error(where("") + "must be a mapping");
    doc_ = &doc;
  }

  const json* find(const std::string& key) {
    seen_.insert(key);
    if (!doc_ || !doc_->contains(key) || doc_->at(key).is_null()) return nullptr;
    return &doc_->at(key);
  }

  template <typename T>
  void read(const std::string& key, T& value) {
    const json* j = find(key);
    if (!j) return;
    if constexpr (std::is_same_v<T, bool>) {
      if (!j->is_boolean()) throw config_error(where(key) + "must be true or false");
    } else if constexpr (std::is_integral_v<T>) {
      if (!j->is_number_integer()) throw config_error(where(key) + "must be an integer");
      if (std::is_unsigned_v<T> && j->get<int64_t>() < 0) throw config_error(where(key) + "must be >= 0");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!j->is_number()) throw config_error(where(key) + "must be a number");
    } else {
      if (!j->is_string()) throw config_error(where(key) + "must be a string");
    }
    value = j->get<T>();
  }

  void read_path(const std::string& key, fs::path& value, const fs::path& base) {
    std::string s;
    read(key, s);
    if (!s.empty()) value = base / s;
  }

  // A list of strings; a single string counts as a list of one.
  void read_list(const std::string& key, std::vector<std::string>& value) {
    const json* j = find(key);
    if (!j) return;
    const json list = j->is_string() ? json::array({*j}) : *j;
    if (!list.is_array()) throw config_error(where(key) + "must be a string or a list of strings");
    value.clear();
    for (const auto& item : list) {
      if (!item.is_string()) throw config_error(where(key) + "must hold strings");
      value.push_back(item.get<std::string>());
    }
  }

  void read_paths(const std::string& key, std::vector<fs::path>& value, const fs::path& base) {
    std::vector<std::string> names;
    read_list(key, names);
    if (names.empty()) return;
    value.clear();
    for (const auto& n : names) value.push_back(base / n);
  }

  // Throws for a key no read asked for.
  void finish() const {
    if (!doc_) return;
    for (const auto& [key, v] : doc_->items())
      if (!seen_.contains(key)) throw config_error(where(key) + "is not a setting");
  }

  std::string where(const std::string& key) const {
    return (name_.empty() ? key : key.empty() ? name_ : name_ + "." + key) + " ";
  }

 private:
  const json* doc_ = nullptr;
  std::string name_;
  std::set<std::string> seen_;
};

void require(bool ok, const std::string& message) {
  if (!ok) throw config_error(message);
}

std::string read_text(const fs::path& path) {
  auto text = io::read_file(path);
  if (!text) throw config_error("cannot read " + path.string());
  return std::move(*text);
}

void read_model(const json& doc, const fs::path& base, model_settings& m) {
  section s(doc, "model");
  s.read_path("from", m.from, base);
  s.read("seed", m.seed);
  if (const json* c = s.find("config")) {
    if (c->is_string()) {
      const fs::path file = base / c->get<std::string>();
      m.config = json::parse(read_text(file), nullptr, false);
      require(m.config.is_object(), "model.config: " + file.string() + " is not a JSON object");
    } else {
      require(c->is_object(), "model.config must be a file name or a mapping of config.json fields");
      m.config = *c;
    }
  }
  s.finish();
  require(m.from.empty() != m.config.is_null(),
          "model needs exactly one of `from` (a folder to fine-tune) and `config` (a model to pre-train)");
}

void read_data(const json& doc, const fs::path& base, data_settings& d) {
  section s(doc, "data");
  s.read_paths("train", d.train, base);
  s.read_paths("validation", d.validation, base);
  s.read("validation_fraction", d.validation_fraction);
  s.read("shuffle", d.shuffle);
  s.read("seed", d.seed);
  s.read("seq_len", d.seq_len);
  s.read("batch_size", d.batch_size);
  s.read("pack", d.pack);
  s.read("row_streams", d.row_streams);
  s.read("kind", d.kind);
  s.finish();
  require(!d.train.empty(), "data.train must name at least one file");
  require(d.validation_fraction >= 0 && d.validation_fraction < 1,
          "data.validation_fraction must be in [0, 1)");
  require(d.seq_len >= 2, "data.seq_len must be >= 2");
  require(d.batch_size >= 1, "data.batch_size must be >= 1");
  require(d.kind == "auto" || d.kind == "text" || d.kind == "completion" || d.kind == "chat" ||
              d.kind == "preference",
          "data.kind must be auto, text, completion, chat or preference");
}

void read_optim(const json& doc, optim_settings& o) {
  section s(doc, "optim");
  s.read("name", o.name);
  s.read("lr", o.lr);
  s.read("weight_decay", o.weight_decay);
  s.read_list("no_decay", o.no_decay);
  s.read("grad_clip", o.grad_clip);
  s.read("accumulation", o.accumulation);
  s.finish();
  require(o.lr > 0, "optim.lr must be > 0");
  require(o.weight_decay >= 0, "optim.weight_decay must be >= 0");
  require(o.grad_clip >= 0, "optim.grad_clip must be >= 0 (0: no clipping)");
  require(o.accumulation >= 1, "optim.accumulation must be >= 1");
}

void read_schedule(const json& doc, schedule_settings& sc) {
  section s(doc, "schedule");
  s.read("kind", sc.kind);
  s.read("warmup_steps", sc.warmup_steps);
  s.read("min_lr", sc.min_lr);
  s.finish();
  require(sc.kind == "constant" || sc.kind == "warmup_cosine" || sc.kind == "linear",
          "schedule.kind must be constant, warmup_cosine or linear");
  require(sc.warmup_steps >= 0, "schedule.warmup_steps must be >= 0");
  require(sc.min_lr >= 0, "schedule.min_lr must be >= 0");
}

void read_run(const json& doc, const fs::path& base, run_settings& r) {
  section s(doc, "run");
  s.read_path("out", r.out, base);
  s.read("steps", r.steps);
  s.read("log_every", r.log_every);
  s.read("eval_every", r.eval_every);
  s.read("eval_batches", r.eval_batches);
  s.read("checkpoint_every", r.checkpoint_every);
  s.read("keep_last", r.keep_last);
  s.read("save_dtype", r.save_dtype);
  s.read("resume", r.resume);
  s.finish();
  require(!r.out.empty(), "run.out must name the run's folder");
  require(r.steps >= 1, "run.steps must be >= 1");
  require(r.log_every >= 1, "run.log_every must be >= 1");
  require(r.eval_every >= 0 && r.checkpoint_every >= 0,
          "run.eval_every and run.checkpoint_every must be >= 0");
  require(r.eval_batches >= 1, "run.eval_batches must be >= 1");
  require(r.keep_last >= 1, "run.keep_last must be >= 1");
  require(r.save_dtype == "f32" || r.save_dtype == "f16" || r.save_dtype == "bf16",
          "run.save_dtype must be f32, f16 or bf16");
}

void read_data_parallel(const json& doc, data_parallel_settings& d) {
  section s(doc, "data_parallel");
  s.read("bucket_mb", d.bucket_mb);
  s.read("overlap", d.overlap);
  s.finish();
  require(d.bucket_mb >= 1 && d.bucket_mb <= 1024, "data_parallel.bucket_mb must be in 1..1024");
}

// Sets doc[a][b]... = value for a dotted key.
void set_dotted(json& doc, const std::string& key, json value) {
  json* node = &doc;
  size_t start = 0;
  for (;;) {
    const size_t dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    require(!part.empty(), "override `" + key + "`: empty name");
    if (!node->is_object()) *node = json::object();
    node = &(*node)[part];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  *node = std::move(value);
}

// Override values that name files are made absolute here, so that they stay relative to the working
// directory rather than to the config file.
json absolute_paths(const std::string& key, json value) {
  static const std::set<std::string> path_keys = {
      "model.from", "model.config", "tokenizer", "data.train", "data.validation", "run.out", "dpo.reference"};
  if (!path_keys.contains(key)) return value;
  auto make_absolute = [](json& v) {
    if (v.is_string()) v = fs::absolute(v.get<std::string>()).string();
  };
  if (value.is_array())
    for (auto& v : value) make_absolute(v);
  else
    make_absolute(value);
  return value;
}

models::lora_config read_lora(const json& doc) {
  section s(doc, "lora");
  models::lora_config l;
  s.read("rank", l.rank);
  s.read("alpha", l.alpha);
  s.read("dropout", l.dropout);
  s.read_list("targets", l.targets);
  s.finish();
  try {
    models::check_lora_config(l);
  } catch (const std::invalid_argument& e) {
    throw config_error(std::string("lora: ") + e.what());
  }
  return l;
}

void read_dpo(const json& doc, const fs::path& base, dpo_settings& d) {
  section s(doc, "dpo");
  s.read("beta", d.beta);
  s.read("loss", d.loss);
  s.read("label_smoothing", d.label_smoothing);
  s.read_path("reference", d.reference, base);
  s.read("cache_reference", d.cache_reference);
  s.finish();
  require(d.beta > 0, "dpo.beta must be > 0");
  require(d.loss == "sigmoid" || d.loss == "conservative" || d.loss == "robust" || d.loss == "hinge" ||
              d.loss == "ipo",
          "dpo.loss must be sigmoid, conservative, robust, hinge or ipo");
  require(d.label_smoothing >= 0 && d.label_smoothing < 0.5, "dpo.label_smoothing must be in [0, 0.5)");
  require(d.label_smoothing == 0 || d.loss == "conservative" || d.loss == "robust",
          "dpo.label_smoothing applies only to the conservative and robust losses");
}

void read_reward(const json& doc, reward_settings& r) {
  section s(doc, "reward");
  s.read("center_coefficient", r.center_coefficient);
  s.finish();
  require(r.center_coefficient >= 0, "reward.center_coefficient must be >= 0");
}

// The rollout keys GRPO and PPO share (see train_config.h); the reward spec is checked by check_rollout.
void read_rollout(section& s, const fs::path& base, rollout_settings& r) {
  s.read("max_new_tokens", r.max_new_tokens);
  s.read("temperature", r.temperature);
  s.read("top_p", r.top_p);
  s.read("top_k", r.top_k);
  s.read_path("reference", r.reference, base);
  if (const json* j = s.find("reward")) r.reward = *j;
}

void check_rollout(const std::string& name, const fs::path& base, const fs::path& model_from,
                   rollout_settings& r) {
  require(r.max_new_tokens >= 1, name + ".max_new_tokens must be >= 1");
  require(r.temperature > 0, name + ".temperature must be > 0 (rollouts sample)");
  require(r.top_p > 0 && r.top_p <= 1, name + ".top_p must be in (0, 1]");
  require(r.top_k >= 0, name + ".top_k must be >= 0");
  if (r.reference.empty()) r.reference = model_from;
  require(!r.reward.is_null(),
          name + ".reward must say how completions are scored, e.g. {kind: contains, word: light}");
  if (r.reward.is_object() && r.reward.value("kind", "") == "model") {
    // A reward model folder (from `mlxd rlhf reward`) scores prompt + completion.
    section s(r.reward, name + ".reward");
    std::string kind;
    s.read("kind", kind);
    fs::path path;
    s.read_path("path", path, base);
    s.finish();
    require(!path.empty(), name + ".reward.path must name a reward model folder");
    r.reward["path"] = path.string();
    return;
  }
  try {
    rlhf::parse_reward_spec(r.reward);
  } catch (const std::invalid_argument& e) {
    throw config_error(name + "." + e.what());
  }
}

void read_grpo(const json& doc, const fs::path& base, grpo_settings& g) {
  section s(doc, "grpo");
  read_rollout(s, base, g.rollout);
  s.read("group_size", g.group_size);
  s.read("clip_low", g.clip_low);
  s.read("clip_high", g.clip_high);
  s.read("kl_beta", g.kl_beta);
  s.read("advantage", g.advantage);
  s.finish();
  require(g.group_size >= 1, "grpo.group_size must be >= 1");
  require(g.clip_low >= 0 && g.clip_low < 1 && g.clip_high >= 0,
          "grpo.clip_low must be in [0, 1), clip_high >= 0");
  require(g.kl_beta >= 0, "grpo.kl_beta must be >= 0");
  require(g.advantage == "grpo" || g.advantage == "rloo" || g.advantage == "dr_grpo",
          "grpo.advantage must be grpo, rloo or dr_grpo");
}

void read_ppo(const json& doc, const fs::path& base, ppo_settings& p) {
  section s(doc, "ppo");
  read_rollout(s, base, p.rollout);
  s.read("epochs", p.epochs);
  s.read("minibatches", p.minibatches);
  s.read("clip", p.clip);
  s.read("value_clip", p.value_clip);
  s.read("value_coef", p.value_coef);
  s.read("entropy_coef", p.entropy_coef);
  s.read("gamma", p.gamma);
  s.read("lambda", p.lambda);
  s.read("kl_beta", p.kl_beta);
  s.read("kl_target", p.kl_target);
  s.read("kl_horizon", p.kl_horizon);
  s.read("whiten_advantages", p.whiten_advantages);
  s.finish();
  require(p.epochs >= 1, "ppo.epochs must be >= 1");
  require(p.minibatches >= 1, "ppo.minibatches must be >= 1");
  require(p.clip > 0 && p.clip < 1, "ppo.clip must be in (0, 1)");
  require(p.value_clip >= 0, "ppo.value_clip must be >= 0");
  require(p.value_coef >= 0 && p.entropy_coef >= 0, "ppo.value_coef and ppo.entropy_coef must be >= 0");
  require(p.gamma >= 0 && p.gamma <= 1 && p.lambda >= 0 && p.lambda <= 1,
          "ppo.gamma and ppo.lambda must be in [0, 1]");
  require(p.kl_beta >= 0, "ppo.kl_beta must be >= 0");
  require(p.kl_target >= 0, "ppo.kl_target must be >= 0 (0: a fixed kl_beta)");
  require(p.kl_target == 0 || p.kl_beta > 0, "ppo.kl_target adapts kl_beta, which must then start > 0");
  require(p.kl_horizon > 0, "ppo.kl_horizon must be > 0");
}

}  // namespace

train_config parse_train_config(const json& doc, const fs::path& base) {
  require(doc.is_object(), "a training config must be a mapping of sections");
  section top(doc, "");
  train_config c;
  auto sub = [&top](const std::string& key) {
    const json* j = top.find(key);
    return j ? *j : json();
  };
  read_model(sub("model"), base, c.model);
  top.read_path("tokenizer", c.tokenizer, base);
  if (c.tokenizer.empty()) c.tokenizer = c.model.from;
  require(!c.tokenizer.empty(), "tokenizer must name a tokenizer folder when pre-training");
  read_data(sub("data"), base, c.data);
  read_optim(sub("optim"), c.optim);
  read_schedule(sub("schedule"), c.schedule);
  read_run(sub("run"), base, c.run);
  if (const json* l = top.find("lora")) c.lora = read_lora(*l);
  read_data_parallel(sub("data_parallel"), c.data_parallel);
  top.read("threads", c.threads);
  top.read("task", c.task);
  read_dpo(sub("dpo"), base, c.dpo);
  read_reward(sub("reward"), c.reward);
  read_grpo(sub("grpo"), base, c.grpo);
  read_ppo(sub("ppo"), base, c.ppo);
  top.finish();
  require(c.threads >= 0, "threads must be >= 0");
  require(c.task == "lm" || c.task == "dpo" || c.task == "reward" || c.task == "grpo" || c.task == "ppo",
          "task must be lm, dpo, reward, grpo or ppo");
  if (c.dpo.reference.empty()) c.dpo.reference = c.model.from;
  if (c.task == "grpo") {
    check_rollout("grpo", base, c.model.from, c.grpo.rollout);
    require(c.grpo.kl_beta == 0 || !c.grpo.rollout.reference.empty(),
            "grpo.kl_beta needs grpo.reference or model.from");
  }
  if (c.task == "ppo") {
    check_rollout("ppo", base, c.model.from, c.ppo.rollout);
    require(c.ppo.kl_beta == 0 || !c.ppo.rollout.reference.empty(),
            "ppo.kl_beta needs ppo.reference or model.from");
    require(c.data.batch_size % (c.ppo.minibatches * c.optim.accumulation) == 0,
            "data.batch_size (" + std::to_string(c.data.batch_size) +
                " prompts a step) must divide into ppo.minibatches x optim.accumulation micro-batches");
  }
  require(c.task != "dpo" || !c.dpo.reference.empty(),
          "dpo needs a reference model: set dpo.reference or fine-tune from model.from");
  require(!c.data.row_streams || c.task == "lm", "data.row_streams is for the lm task");
  return c;
}

train_config load_train_config(const fs::path& file, const std::vector<std::string>& overrides) {
  json doc = yaml_to_json(read_text(file), file.string());
  if (doc.is_null()) doc = json::object();
  for (const auto& o : overrides) {
    const size_t eq = o.find('=');
    require(eq != std::string::npos && eq > 0, "override `" + o + "` must read KEY=VALUE");
    const std::string key = o.substr(0, eq);
    set_dotted(doc, key, absolute_paths(key, yaml_to_json(o.substr(eq + 1), "override " + key)));
  }
  return parse_train_config(doc, fs::absolute(file).parent_path());
}

}  // namespace mlxd::trainer
