// Reverse-mode automatic differentiation over a tape that exists only while value_and_grad runs.
//
// Ops consult a thread-local tape: when none is active (inference) they record nothing and pay one branch.
// Inside value_and_grad, an op whose inputs depend on a differentiated argument attaches a node holding its
// inputs and its vjp; the backward pass walks those nodes in reverse topological order.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "mlxd/core/array.h"

namespace mlxd {
namespace autograd {

// Given the output cotangent, returns one cotangent per input (an empty array for inputs that get none).
using vjp_fn = std::function<std::vector<array>(const array& cotangent)>;

struct node {
  std::vector<array> inputs;
  vjp_fn vjp;
};

// True while a tape records on this thread.
bool is_recording();
// Called by ops: attaches a node to `out` when recording and any input is tracked.
void record(const array& out, std::vector<array> inputs, vjp_fn vjp);
// Disables recording on this thread for its lifetime (the backward pass uses it).
class no_grad {
 public:
  no_grad();
  ~no_grad();
  no_grad(const no_grad&) = delete;
  no_grad& operator=(const no_grad&) = delete;

 private:
  bool saved_;
};

// Enables recording on this thread for its lifetime (value_and_grad uses it). The scope is the tape: it keeps
// every array that received a node and clears those nodes when it ends, so no array that escapes the function
// carries tape state into later computations.
class recording_scope {
 public:
  recording_scope();
  ~recording_scope();
  recording_scope(const recording_scope&) = delete;
  recording_scope& operator=(const recording_scope&) = delete;

  // Registers an array whose node this tape must clear (record() calls it; leaves are added explicitly).
  void track(const array& a);

 private:
  bool saved_;
  recording_scope* saved_scope_;
  std::vector<array> tracked_;
};

}  // namespace autograd

using loss_fn = std::function<array(const std::vector<array>&)>;

// Evaluates f(args) (which must return a scalar or size-1 float array) and the gradient of its value with
// respect to every argument. Gradients have each argument's shape and dtype.
std::pair<array, std::vector<array>> value_and_grad(const loss_fn& f, const std::vector<array>& args);

// Called by value_and_grad as soon as argument `index`'s gradient is final (every op that read it has passed
// its cotangent back), with the very array value_and_grad returns for it; lets a caller start work on early
// gradients (a data-parallel all-reduce) while the backward pass goes on. Once per argument, on the calling
// thread, with recording off; arguments the value does not depend on get theirs (zeros) after the pass.
using grad_ready_fn = std::function<void(size_t index, const array& grad)>;
std::pair<array, std::vector<array>> value_and_grad(const loss_fn& f, const std::vector<array>& args,
                                                    const grad_ready_fn& on_ready);
std::vector<array> grad(const loss_fn& f, const std::vector<array>& args);

// Reverses broadcasting: sums `cotangent` down to `shape` (used by vjps of broadcasting ops).
array unbroadcast(const array& cotangent, const shape_t& shape);

}  // namespace mlxd
