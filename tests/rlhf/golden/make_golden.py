#!/usr/bin/python3
"""Golden values for mlxd's RLHF losses from an independent implementation (PyTorch, float64).

The formulas follow TRL's trainers (DPOTrainer.dpo_loss, RewardTrainer.compute_loss, PPO's compute_advantages
and loss, GRPOTrainer's advantages and k3 loss) written with torch ops; gradients come from torch.autograd.
Run with Debian's python3-torch: /usr/bin/python3 tests/rlhf/golden/make_golden.py
It writes rlhf_golden.json beside itself; tests/rlhf/golden_test.cpp replays every case.
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261128)
cases = []


def f32(*shape, scale=1.0):
    # Inputs are drawn in float32 so mlxd sees exactly the values torch used.
    return (torch.randn(*shape) * scale).float().double()


def enc(t):
    t = t.detach()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def add(name, kind, params, inputs, outputs, grads=None):
    cases.append({"name": name, "kind": kind, "params": params,
                  "inputs": {k: enc(v) for k, v in inputs.items()},
                  "outputs": {k: enc(v) for k, v in outputs.items()},
                  "grads": {k: enc(v) for k, v in (grads or {}).items()}})


def grads_of(loss, tensors):
    g = torch.autograd.grad(loss, [t for t in tensors.values()])
    return dict(zip(tensors.keys(), g))


# ---- sequence log-probs: log_softmax + gather, masked sum ----
B, T, V = 3, 5, 11
logits = f32(B, T, V, scale=3.0).requires_grad_()
labels = torch.randint(0, V, (B, T))
mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.float64)
w = f32(B)
tok = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1) * mask
sums = tok.sum(-1)
add("logprobs", "logprobs", {}, {"logits": logits, "labels": labels.double(), "mask": mask, "w": w},
    {"tokens": tok, "sums": sums}, grads_of((sums * w).sum(), {"logits": logits}))

# ---- Bradley-Terry reward loss ----
for coef in (0.0, 0.01):
    c, r = f32(6, scale=2.0).requires_grad_(), f32(6, scale=2.0).requires_grad_()
    m = (torch.rand(6).float().double()).requires_grad_()
    losses = -F.logsigmoid(c - r - m) + coef * (c + r) ** 2
    add(f"reward coef {coef}", "reward", {"center_coefficient": coef}, {"chosen": c, "rejected": r, "margin": m},
        {"losses": losses}, grads_of(losses.mean(), {"chosen": c, "rejected": r, "margin": m}))

# ---- DPO (TRL's dpo_loss on summed log-probs) ----
for loss_type, beta, eps in (("sigmoid", 0.1, 0.0), ("conservative", 0.5, 0.1), ("robust", 0.2, 0.15),
                             ("hinge", 0.3, 0.0), ("ipo", 0.4, 0.0)):
    pc, pr, rc, rr = (f32(8, scale=4.0).requires_grad_() for _ in range(4))
    h = (pc - pr) - (rc - rr)
    if loss_type in ("sigmoid", "conservative"):
        losses = -F.logsigmoid(beta * h) * (1 - eps) - F.logsigmoid(-beta * h) * eps
    elif loss_type == "robust":
        losses = (-F.logsigmoid(beta * h) * (1 - eps) + F.logsigmoid(-beta * h) * eps) / (1 - 2 * eps)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        losses = (h - 1 / (2 * beta)) ** 2
    ins = {"policy_chosen": pc, "policy_rejected": pr, "reference_chosen": rc, "reference_rejected": rr}
    add(f"dpo {loss_type}", "dpo", {"type": loss_type, "beta": beta, "label_smoothing": eps}, ins,
        {"losses": losses, "chosen_rewards": beta * (pc - rc), "rejected_rewards": beta * (pr - rr)},
        grads_of(losses.mean(), ins))

# ---- entropy of softmax(logits) ----
logits = f32(2, 3, 7, scale=2.0).requires_grad_()
w = f32(2, 3)
ent = torch.distributions.Categorical(logits=logits).entropy()
add("entropy", "entropy", {}, {"logits": logits, "w": w}, {"entropy": ent},
    grads_of((ent * w).sum(), {"logits": logits}))

# ---- k3 ----
lp, ref = f32(2, 6).requires_grad_(), f32(2, 6).requires_grad_()
w = f32(2, 6)
k3 = torch.exp(ref - lp) - (ref - lp) - 1
add("k3", "k3", {}, {"logp": lp, "ref_logp": ref, "w": w}, {"k3": k3},
    grads_of((k3 * w).sum(), {"logp": lp, "ref_logp": ref}))

# ---- GRPO / RLOO advantages ----
G = 4
rewards = f32(3 * G, scale=2.0)
grouped = rewards.view(-1, G)
mean, std = grouped.mean(1, keepdim=True), grouped.std(1, keepdim=True)
adv = ((grouped - mean) / (std + 1e-4)).view(-1)
rloo = (grouped - (grouped.sum(1, keepdim=True) - grouped) / (G - 1)).view(-1)
add("group advantages", "advantages", {"group_size": G}, {"rewards": rewards}, {"grpo": adv, "rloo": rloo})

# ---- GRPO loss over a global token count ----
lp, old, ref = f32(4, 6, scale=0.3), f32(4, 6, scale=0.3), f32(4, 6, scale=0.3)
lp = (old + lp).requires_grad_()
adv = f32(4)
mask = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]],
                    dtype=torch.float64)
clip_low, clip_high, beta, global_tokens = 0.2, 0.28, 0.04, 40.0
ratio = torch.exp(lp - old)
a = adv.unsqueeze(1)
per_tok = -torch.min(ratio * a, torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * a)
per_tok = per_tok + beta * (torch.exp(ref - lp) - (ref - lp) - 1)
loss = (per_tok * mask).sum() / global_tokens
add("grpo loss", "grpo_loss",
    {"clip_low": clip_low, "clip_high": clip_high, "beta": beta, "global_tokens": global_tokens},
    {"logp": lp, "old_logp": old, "ref_logp": ref, "advantages": adv, "mask": mask},
    {"loss": loss, "token_losses": per_tok * mask}, grads_of(loss, {"logp": lp}))

# ---- GAE (TRL's loop; padding carries zero rewards and values, so it matches skipping it) ----
mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]], dtype=torch.float64)
rewards, values = f32(2, 7) * mask, f32(2, 7) * mask
gamma, lam = 0.99, 0.95
last, rev = 0.0, []
for t in reversed(range(7)):
    nextv = values[:, t + 1] if t < 6 else 0.0
    delta = rewards[:, t] + gamma * nextv - values[:, t]
    last = delta + gamma * lam * last
    rev.append(last)
advantages = torch.stack(rev[::-1], 1)
add("gae", "gae", {"gamma": gamma, "lambda": lam}, {"rewards": rewards, "values": values, "mask": mask},
    {"advantages": advantages * mask, "returns": (advantages + values) * mask})

# ---- PPO policy and value losses, TRL's masked_whiten ----
lp, old, adv = f32(2, 5, scale=0.3), f32(2, 5, scale=0.3), f32(2, 5)
lp = (old + lp).requires_grad_()
ratio = torch.exp(lp - old)
pg = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 0.8, 1.2))
add("ppo policy", "ppo_policy", {"clip": 0.2}, {"logp": lp, "old_logp": old, "advantages": adv},
    {"losses": pg}, grads_of(pg.mean(), {"logp": lp}))
v, oldv, ret = f32(2, 5).requires_grad_(), f32(2, 5), f32(2, 5)
vclip = oldv + torch.clamp(v - oldv, -0.2, 0.2)
vl = 0.5 * torch.max((v - ret) ** 2, (vclip - ret) ** 2)
add("ppo value", "ppo_value", {"clip": 0.2}, {"values": v, "old_values": oldv, "returns": ret},
    {"losses": vl}, grads_of(vl.mean(), {"values": v}))
x = f32(3, 4)
mask = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float64)
mu = (x * mask).sum() / mask.sum()
var = ((x - mu) ** 2 * mask).sum() / mask.sum() * mask.sum() / (mask.sum() - 1)
add("whiten", "whiten", {}, {"x": x, "mask": mask}, {"whitened": (x - mu) * torch.rsqrt(var + 1e-8) * mask})

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rlhf_golden.json")
with open(out, "w") as f:
    json.dump({"generator": f"torch {torch.__version__} float64", "cases": cases}, f, indent=0)
print(f"wrote {len(cases)} cases to {out}")
