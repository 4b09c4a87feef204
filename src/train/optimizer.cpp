#include "mlxd/train/optimizer.h"

#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::train {

namespace {

// Large enough that a chunk streams well past the per-task overhead; fixed so results never depend on
// threads.
constexpr int64_t kGrain = int64_t{1} << 16;

std::string where(std::string_view fn) {
  return "[optimizer::" + std::string(fn) + "] ";
}

array fresh_copy(const array& a) {
  array c = array::empty(a.shape(), a.type());
  const array src = contiguous(a);
  std::memcpy(c.mutable_data<char>(), src.raw_data(), src.nbytes());
  return c;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view name) {
  // Iterative matcher with one backtrack point: linear in practice, no recursion on hostile patterns.
  size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

optimizer::optimizer(std::vector<std::string> names, const std::vector<array>& params,
                     std::vector<param_group> groups, double default_weight_decay,
                     std::vector<std::string> slots)
    : names_(std::move(names)), slot_names_(std::move(slots)) {
  if (names_.size() != params.size()) {
    throw std::invalid_argument(where("optimizer") + std::to_string(names_.size()) + " names for " +
                                std::to_string(params.size()) + " parameters");
  }
  if (slot_names_.size() > 2) throw std::logic_error(where("optimizer") + "at most two state slots");
  for (const param_group& g : groups) {
    if (!(g.lr_scale >= 0.0))
      throw std::invalid_argument(where("optimizer") + "group '" + g.pattern + "': lr_scale < 0");
    if (g.weight_decay && !(*g.weight_decay >= 0.0)) {
      throw std::invalid_argument(where("optimizer") + "group '" + g.pattern + "': weight_decay < 0");
    }
  }
  std::map<std::string_view, size_t> seen;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!seen.emplace(names_[i], i).second) {
      throw std::invalid_argument(where("optimizer") + "duplicate parameter name '" + names_[i] + "'");
    }
    if (params[i].type() != dtype::f32) {
      throw std::invalid_argument(where("optimizer") + "parameter '" + names_[i] + "' is " +
                                  params[i].to_string() + "; optimizers update f32 parameters");
    }
    shapes_.push_back(params[i].shape());
    double scale = 1.0, wd = default_weight_decay;
    for (const param_group& g : groups) {
      if (!glob_match(g.pattern, names_[i])) continue;
      scale = g.lr_scale;
      if (g.weight_decay) wd = *g.weight_decay;
      break;
    }
    lr_scale_.push_back(scale);
    weight_decay_.push_back(wd);
    std::vector<array> buffers;
    for (size_t s = 0; s < slot_names_.size(); ++s) buffers.push_back(zeros(params[i].shape()));
    slots_.push_back(std::move(buffers));
  }
}

void optimizer::step(std::vector<array>& params, const std::vector<array>& grads, double lr) {
  autograd::no_grad no_tape;
  if (params.size() != names_.size() || grads.size() != names_.size()) {
    throw std::invalid_argument(where("step") + "expected " + std::to_string(names_.size()) +
                                " parameters and gradients, got " + std::to_string(params.size()) + " and " +
                                std::to_string(grads.size()));
  }
  if (!std::isfinite(lr) || lr < 0.0)
    throw std::invalid_argument(where("step") + "lr must be finite and >= 0");
  for (size_t i = 0; i < names_.size(); ++i) {
    for (const array* a : std::initializer_list<const array*>{&params[i], &grads[i]}) {
      if (a->type() != dtype::f32 || a->shape() != shapes_[i]) {
        throw std::invalid_argument(where("step") + "'" + names_[i] + "': expected f32" +
                                    shape_to_string(shapes_[i]) + ", got " + a->to_string());
      }
    }
  }
  const int64_t t = step_ + 1;
  for (size_t i = 0; i < names_.size(); ++i) {
    const array p = contiguous(params[i]);
    const array g = contiguous(grads[i]);
    array out = array::empty(shapes_[i], dtype::f32);
    const double group_lr = lr * lr_scale_[i], wd = weight_decay_[i];
    parallel_for(p.size(), kGrain, [&](int64_t begin, int64_t end) {
      chunk c{p.data<float>() + begin,
              g.data<float>() + begin,
              out.mutable_data<float>() + begin,
              {},
              end - begin};
      for (size_t s = 0; s < slots_[i].size(); ++s) c.slots[s] = slots_[i][s].mutable_data<float>() + begin;
      update(c, group_lr, wd, t);
    });
    params[i] = std::move(out);
  }
  step_ = t;
}

std::map<std::string, array> optimizer::state() const {
  std::map<std::string, array> out;
  out.emplace("step", array::from(std::vector<int64_t>{step_}, {}));
  for (size_t i = 0; i < names_.size(); ++i) {
    for (size_t s = 0; s < slot_names_.size(); ++s) {
      out.emplace(slot_names_[s] + "/" + names_[i], fresh_copy(slots_[i][s]));
    }
  }
  return out;
}

void optimizer::load_state(const std::map<std::string, array>& state) {
  auto step_it = state.find("step");
  if (step_it == state.end()) throw std::invalid_argument(where("load_state") + "no 'step' entry");
  const array& step = step_it->second;
  if (step.type() != dtype::i64 || step.size() != 1 || step.item<int64_t>() < 0) {
    throw std::invalid_argument(where("load_state") + "'step' must be one non-negative i64, got " +
                                step.to_string());
  }
  std::vector<std::vector<array>> slots(names_.size());
  std::set<std::string> expected{"step"};
  for (size_t i = 0; i < names_.size(); ++i) {
    for (size_t s = 0; s < slot_names_.size(); ++s) {
      const std::string key = slot_names_[s] + "/" + names_[i];
      expected.insert(key);
      auto it = state.find(key);
      if (it == state.end()) throw std::invalid_argument(where("load_state") + "missing '" + key + "'");
      if (it->second.type() != dtype::f32 || it->second.shape() != shapes_[i]) {
        throw std::invalid_argument(where("load_state") + "'" + key + "': expected f32" +
                                    shape_to_string(shapes_[i]) + ", got " + it->second.to_string());
      }
      slots[i].push_back(fresh_copy(it->second));
    }
  }
  for (const auto& entry : state) {
    if (!expected.contains(entry.first)) {
      throw std::invalid_argument(where("load_state") + "unexpected entry '" + entry.first + "'");
    }
  }
  slots_ = std::move(slots);
  step_ = step.item<int64_t>();
}

}  // namespace mlxd::train
