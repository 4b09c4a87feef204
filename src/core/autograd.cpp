#include "mlxd/core/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "detail.h"
#include "mlxd/core/ops.h"

namespace mlxd {
namespace autograd {
namespace {
thread_local bool recording = false;
thread_local recording_scope* active_scope = nullptr;
}  // namespace

bool is_recording() {
  return recording && active_scope != nullptr;
}

void record(const array& out, std::vector<array> inputs, vjp_fn vjp) {
  if (!is_recording()) return;
  bool tracked = false;
  for (const array& in : inputs) tracked = tracked || in.grad_node() != nullptr;
  if (!tracked) return;
  auto n = std::make_shared<node>();
  n->inputs = std::move(inputs);
  n->vjp = std::move(vjp);
  out.set_grad_node(std::move(n));
  active_scope->track(out);
}

no_grad::no_grad() : saved_(recording) {
  recording = false;
}
no_grad::~no_grad() {
  recording = saved_;
}

recording_scope::recording_scope() : saved_(recording), saved_scope_(active_scope) {
  recording = true;
  active_scope = this;
}

recording_scope::~recording_scope() {
  // Newest first: each release then drops one level, never a recursive chain, and no node outlives the tape.
  for (auto it = tracked_.rbegin(); it != tracked_.rend(); ++it) it->set_grad_node(nullptr);
  recording = saved_;
  active_scope = saved_scope_;
}

void recording_scope::track(const array& a) {
  tracked_.push_back(a);
}

}  // namespace autograd

namespace {

// Arrays reachable from `root` through grad nodes, inputs before the arrays computed from them.
std::vector<array> topological_order(const array& root) {
  std::vector<array> order;
  std::unordered_set<const void*> visited;
  std::vector<std::pair<array, size_t>> stack{{root, 0}};
  visited.insert(root.id());
  while (!stack.empty()) {
    auto& [a, next] = stack.back();
    const auto& n = a.grad_node();
    if (n && next < n->inputs.size()) {
      const array child = n->inputs[next++];
      if (child.grad_node() && visited.insert(child.id()).second) stack.emplace_back(child, 0);
      continue;
    }
    order.push_back(a);
    stack.pop_back();
  }
  return order;
}

}  // namespace

std::pair<array, std::vector<array>> value_and_grad(const loss_fn& f, const std::vector<array>& args) {
  return value_and_grad(f, args, nullptr);
}

std::pair<array, std::vector<array>> value_and_grad(const loss_fn& f, const std::vector<array>& args,
                                                    const grad_ready_fn& on_ready) {
  // Fresh handles so the caller's arrays never carry tape state; leaves have a node without a vjp.
  autograd::recording_scope scope;
  std::vector<array> leaves;
  leaves.reserve(args.size());
  for (const array& a : args) {
    array leaf = array::view(a, a.shape(), a.strides(), a.offset());
    leaf.set_grad_node(std::make_shared<autograd::node>());
    scope.track(leaf);
    leaves.push_back(leaf);
  }
  array value = f(leaves);
  autograd::no_grad backward_guard;
  if (value.size() != 1 || !is_floating(value.type())) {
    detail::fail("value_and_grad", "the function must return one float value, got ", value.to_string());
  }
  std::unordered_map<const void*, array> cotangents;
  std::vector<array> grads(args.size());
  std::vector<bool> final_grad(args.size(), false);
  const auto finalise = [&](size_t i) {
    auto it = cotangents.find(leaves[i].id());
    grads[i] = it == cotangents.end()
                   ? zeros(args[i].shape(), args[i].type())
                   : astype(it->second, is_floating(args[i].type()) ? args[i].type() : dtype::f32);
    final_grad[i] = true;
    if (on_ready) on_ready(i, grads[i]);
  };
  if (value.grad_node()) {
    cotangents.emplace(value.id(), ones(value.shape(), dtype::f32));
    const std::vector<array> order = topological_order(value);
    // With a callback: how many node inputs still read each leaf; at zero its cotangent is complete.
    std::unordered_map<const void*, size_t> leaf_index;
    std::vector<size_t> readers(args.size(), 0);
    if (on_ready) {
      for (size_t i = 0; i < leaves.size(); ++i) leaf_index.emplace(leaves[i].id(), i);
      for (const array& a : order)
        for (const array& in : a.grad_node()->inputs)
          if (auto l = leaf_index.find(in.id()); l != leaf_index.end()) ++readers[l->second];
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const auto& n = it->grad_node();
      auto found = cotangents.find(it->id());
      if (n->vjp && found != cotangents.end()) {
        const std::vector<array> input_cts = n->vjp(found->second);
        for (size_t i = 0; i < n->inputs.size(); ++i) {
          const array& in = n->inputs[i];
          if (!in.grad_node() || i >= input_cts.size() || (input_cts[i].size() == 0 && in.size() != 0))
            continue;
          auto [slot, inserted] = cotangents.try_emplace(in.id(), input_cts[i]);
          if (!inserted) slot->second = add(slot->second, input_cts[i]);
        }
        cotangents.erase(found);  // frees intermediate cotangents as soon as they are used
      }
      if (!on_ready) continue;
      for (const array& in : n->inputs)
        if (auto l = leaf_index.find(in.id()); l != leaf_index.end() && --readers[l->second] == 0)
          finalise(l->second);
    }
  }
  for (size_t i = 0; i < args.size(); ++i)
    if (!final_grad[i]) finalise(i);
  return {value, grads};
}

std::vector<array> grad(const loss_fn& f, const std::vector<array>& args) {
  return value_and_grad(f, args).second;
}

array unbroadcast(const array& cotangent, const shape_t& shape) {
  if (cotangent.shape() == shape) return cotangent;
  const int extra = cotangent.ndim() - static_cast<int>(shape.size());
  axes_t axes;
  for (int i = 0; i < cotangent.ndim(); ++i) {
    if (i < extra || (shape[i - extra] == 1 && cotangent.shape(i) != 1)) axes.push_back(i);
  }
  array reduced = axes.empty() ? cotangent : sum(cotangent, axes, true);
  return reshape(reduced, shape);
}

}  // namespace mlxd
