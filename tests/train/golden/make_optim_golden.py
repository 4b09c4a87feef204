#!/usr/bin/python3
"""Writes optim_golden.json: parameters after each step of torch.optim's Adam, AdamW and SGD (and of Lion,
written out below from its paper since torch has none), for tests/train/optimizer_golden_test.cpp.

Run with Debian's PyTorch (apt-get install python3-torch): /usr/bin/python3 make_optim_golden.py
Every number is float32; JSON floats hold them exactly (a float32 is a double)."""

import json
import os

import torch

STEPS = 6
SHAPES = {"layers.0.weight": [3, 4], "layers.0.bias": [5], "norm.weight": [2, 3]}


def f32_list(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def make_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    params = {n: torch.randn(s, generator=g, dtype=torch.float32) for n, s in SHAPES.items()}
    grads = []
    for step in range(STEPS):
        gs = {}
        for n, s in SHAPES.items():
            x = torch.randn(s, generator=g, dtype=torch.float32) * (10.0 ** (step % 3 - 1))
            x.view(-1)[0] = 0.0  # a zero gradient exercises sign(0) and untouched moments
            gs[n] = x
        grads.append(gs)
    return params, grads


def lion_step(params, grads, state, lr, beta1, beta2, wd):
    # Chen et al. 2023, Algorithm 2, in the order of the authors' reference implementation.
    for n, p in params.items():
        g = grads[n]
        m = state.setdefault(n, torch.zeros_like(p))
        p.mul_(1 - lr * wd)
        update = (m * beta1).add(g, alpha=1 - beta1).sign_()
        p.add_(update, alpha=-lr)
        m.mul_(beta2).add_(g, alpha=1 - beta2)


def run_case(case, seed):
    params, grads = make_inputs(seed)
    init = {n: f32_list(p) for n, p in params.items()}
    tensors = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    groups_spec = case.get("groups", [])
    # Parameter groups: a name matching a group's pattern (exact names here) takes its lr scale and decay.
    default_names = [n for n in SHAPES if not any(n == gs["pattern"] for gs in groups_spec)]
    kind, opts = case["optimizer"], case["options"]
    base_lr = case["lrs"][0]
    torch_groups = [{"params": [tensors[n] for n in default_names], "names": default_names, "scale": 1.0}]
    for gs in groups_spec:
        pg = {"params": [tensors[gs["pattern"]]], "names": [gs["pattern"]], "scale": gs["lr_scale"]}
        if "weight_decay" in gs:
            pg["weight_decay"] = gs["weight_decay"]
        torch_groups.append(pg)
    clean = [{k: v for k, v in pg.items() if k not in ("names", "scale")} for pg in torch_groups]
    if kind == "adam":
        opt = torch.optim.Adam(clean, lr=base_lr, betas=(opts["beta1"], opts["beta2"]), eps=opts["eps"],
                               weight_decay=opts["weight_decay"], foreach=False)
    elif kind == "adamw":
        opt = torch.optim.AdamW(clean, lr=base_lr, betas=(opts["beta1"], opts["beta2"]), eps=opts["eps"],
                                weight_decay=opts["weight_decay"], foreach=False)
    elif kind == "sgd":
        opt = torch.optim.SGD(clean, lr=base_lr, momentum=opts["momentum"], dampening=opts["dampening"],
                              nesterov=opts["nesterov"], weight_decay=opts["weight_decay"], foreach=False)
    else:
        opt = None
    lion_state = {}
    expected = []
    for step in range(STEPS):
        lr = case["lrs"][step]
        if opt is not None:
            for pg, spec in zip(opt.param_groups, torch_groups):
                pg["lr"] = lr * spec["scale"]
                for n, t in zip(spec["names"], pg["params"]):
                    t.grad = grads[step][n].clone()
            opt.step()
        else:
            with torch.no_grad():
                for spec in torch_groups:
                    wd = spec.get("weight_decay", opts["weight_decay"])
                    lion_step({n: tensors[n] for n in spec["names"]}, grads[step], lion_state,
                              lr * spec["scale"], opts["beta1"], opts["beta2"], wd)
        expected.append({n: f32_list(t) for n, t in tensors.items()})
    state = {}
    if opt is not None:
        for n, t in tensors.items():
            for slot, value in opt.state[t].items():
                if slot != "step" and value is not None:
                    state[slot + "/" + n] = f32_list(value)
    else:
        for n, m in lion_state.items():
            state["exp_avg/" + n] = f32_list(m)
    return {
        **case,
        "shapes": SHAPES,
        "init": init,
        "grads": [{n: f32_list(x) for n, x in g.items()} for g in grads],
        "expected": expected,
        "final_state": state,
    }


CASES = [
    {"name": "adam_l2", "optimizer": "adam",
     "options": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1}},
    {"name": "adam_low_beta1", "optimizer": "adam",
     "options": {"beta1": 0.3, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.0}},
    {"name": "adamw_groups", "optimizer": "adamw",
     "options": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1},
     "groups": [{"pattern": "layers.0.bias", "lr_scale": 0.5, "weight_decay": 0.0},
                {"pattern": "norm.weight", "lr_scale": 2.0}]},
    {"name": "sgd_nesterov", "optimizer": "sgd",
     "options": {"momentum": 0.9, "dampening": 0.0, "nesterov": True, "weight_decay": 0.01}},
    {"name": "sgd_dampening", "optimizer": "sgd",
     "options": {"momentum": 0.8, "dampening": 0.25, "nesterov": False, "weight_decay": 0.0}},
    {"name": "lion", "optimizer": "lion",
     "options": {"beta1": 0.9, "beta2": 0.99, "weight_decay": 0.5},
     "groups": [{"pattern": "norm.weight", "lr_scale": 0.5, "weight_decay": 0.0}]},
]
LRS = [1e-2, 3e-2, 2e-2, 1e-2, 5e-3, 1e-3]


def main():
    out = {"torch_version": torch.__version__, "cases": []}
    for i, case in enumerate(CASES):
        lrs = LRS if case["optimizer"] != "sgd" else [x * 10 for x in LRS]
        out["cases"].append(run_case({**case, "lrs": lrs}, seed=1000 + i))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
