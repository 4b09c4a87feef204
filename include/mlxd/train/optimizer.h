// Optimizers over a fixed, ordered list of named f32 parameters.
//
// A trainer builds one optimizer from its parameters' names and current values, then after each backward pass
// calls step(params, grads, lr) with the gradients value_and_grad returned (same order, same shapes). step()
// replaces each params[i] with a new array holding the updated values (arrays are immutable, so a handle the
// caller kept elsewhere still shows the old values) and updates the optimizer's own state in place. The
// update of one parameter is a single fused loop over contiguous f32 buffers, split over the kernel pool.
//
// Parameter groups pick per-parameter settings by name: the first group whose glob pattern matches a name
// applies ('*' matches any run of characters, '?' one character); a name no group matches uses the
// optimizer's own weight decay and an lr scale of 1. Typical use: {"*norm*", 1.0, 0.0}, {"*.bias", 1.0, 0.0}.
//
// State (moments and the step count) is exposed as named arrays for checkpoints: "step" (i64 scalar, the
// number of steps taken) and "<slot>/<parameter name>" (f32, the parameter's shape), e.g.
// "exp_avg/model.norm.weight". load_state() accepts exactly what state() returns for the same parameters.
// Not thread-safe: one trainer thread drives an optimizer.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mlxd/core/array.h"

namespace mlxd::train {

struct param_group {
  std::string pattern;                 // glob over parameter names
  double lr_scale = 1.0;               // multiplies the lr passed to step()
  std::optional<double> weight_decay;  // replaces the optimizer's weight decay when set
};

// True when `name` matches the glob `pattern` ('*' any run, '?' one character, everything else literal).
bool glob_match(std::string_view pattern, std::string_view name);

class optimizer {
 public:
  virtual ~optimizer() = default;
  optimizer(const optimizer&) = delete;
  optimizer& operator=(const optimizer&) = delete;

  // One update with learning rate `lr` (before group scaling). params and grads must have one entry per
  // name, in construction order, f32 with the shapes given at construction; grads may be non-contiguous.
  // Runs under autograd::no_grad. Throws std::invalid_argument (nothing is modified) on a mismatch.
  void step(std::vector<array>& params, const std::vector<array>& grads, double lr);

  // Copies of the state; see the file comment for the names.
  std::map<std::string, array> state() const;
  // Replaces the state with `state` (copied). Throws std::invalid_argument naming the first missing, extra,
  // or mis-shaped entry; the optimizer is unchanged then.
  void load_state(const std::map<std::string, array>& state);

  virtual std::string_view name() const = 0;  // "sgd", "adam", "adamw", "lion"
  int64_t steps_taken() const { return step_; }
  const std::vector<std::string>& param_names() const { return names_; }
  // The settings resolved for parameter i from the groups.
  double lr_scale(size_t i) const { return lr_scale_[i]; }
  double weight_decay(size_t i) const { return weight_decay_[i]; }

 protected:
  // `slots` (at most two) names the per-parameter state buffers (zero-initialised, the parameter's shape).
  optimizer(std::vector<std::string> names, const std::vector<array>& params, std::vector<param_group> groups,
            double default_weight_decay, std::vector<std::string> slots);

  // Updates n elements: reads p and g, writes out (the new parameter values) and the slot buffers in place.
  // `step` counts from 1 for the first update. Called on disjoint chunks, possibly concurrently.
  struct chunk {
    const float* p;
    const float* g;
    float* out;
    std::array<float*, 2> slots;  // the first slot_names().size() are set
    int64_t n;
  };
  virtual void update(const chunk& c, double lr, double weight_decay, int64_t step) const = 0;

 private:
  std::vector<std::string> names_;
  std::vector<shape_t> shapes_;
  std::vector<double> lr_scale_;
  std::vector<double> weight_decay_;
  std::vector<std::string> slot_names_;
  std::vector<std::vector<array>> slots_;  // [param][slot], owned and updated in place
  int64_t step_ = 0;
};

// Builds an optimizer by name ("sgd", "adam", "adamw", "lion") with that optimizer's default hyperparameters
// and the given weight decay. Throws std::invalid_argument for an unknown name.
std::unique_ptr<optimizer> make_optimizer(std::string_view name, std::vector<std::string> names,
                                          const std::vector<array>& params, double weight_decay = 0.0,
                                          std::vector<param_group> groups = {});

}  // namespace mlxd::train
