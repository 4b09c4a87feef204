#!/usr/bin/python3
"""LoRA golden data for tests/models/lora_golden_test.cpp from an independent PyTorch (float64) reference.

Run once with Debian's python3-torch: /usr/bin/python3 tests/models/golden/make_lora_golden.py
It rebuilds the "llama" and "qwen3_bias_tied" cases of make_llama_train_golden.py (same seeds: the committed
llama_train/<case>/model.safetensors and batches), draws adapters for every linear module, and writes
lora/<case>/ as PEFT does (adapter_config.json, adapter_model.safetensors with "base_model.model." keys) plus
expected.safetensors: the logits of batch 0 with the adapters and the gradient "grad.<name>" of its mean loss
with respect to every lora_A and lora_B. The reference applies LoRA by its definition, W' = W + (alpha/r) B A,
so it shares no code path with mlxd's separate branch x A^T B^T.
"""
import json
import os

import numpy as np
import torch

from make_llama_golden import write_safetensors
import make_llama_train_golden as base

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lora")
RANK, ALPHA = 4, 6.0
MODULES = [("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"), ("self_attn", "o_proj"),
           ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj")]


def make_case(name, extra, seed):
    cfg = base.config(extra)
    rng = np.random.default_rng(seed)  # the draws of make_llama_train_golden.make_case, in its order
    weights = base.make_weights(cfg, rng)
    batch = [base.make_batch(rng, cfg["vocab_size"]) for _ in range(base.N_BATCHES)][0]
    lora_rng = np.random.default_rng(seed + 500)
    adapters = {}
    for l in range(cfg["num_hidden_layers"]):
        for group, module in MODULES:
            out_dim, in_dim = weights["model.layers.%d.%s.%s.weight" % (l, group, module)].shape
            p = "model.layers.%d.%s.%s." % (l, group, module)
            adapters[p + "lora_A.weight"] = (lora_rng.standard_normal((RANK, in_dim)) * 0.2).astype(np.float32)
            adapters[p + "lora_B.weight"] = (lora_rng.standard_normal((out_dim, RANK)) * 0.2).astype(np.float32)
    w = {k: torch.tensor(v, dtype=torch.float64) for k, v in weights.items()}
    ad = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in adapters.items()}
    for k in list(w):
        if k.endswith("_proj.weight") and k[:-len("weight")] + "lora_A.weight" in ad:
            p = k[:-len("weight")]
            w[k] = w[k] + (ALPHA / RANK) * (ad[p + "lora_B.weight"] @ ad[p + "lora_A.weight"])
    logits, total, count = base.mean_loss(cfg, w, batch)
    (total / count).backward()
    expected = {"logits": logits.detach().numpy().astype(np.float32)}
    for k, v in ad.items():
        expected["grad." + k] = v.grad.numpy().astype(np.float32)
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": ALPHA,
                   "lora_dropout": 0.0, "target_modules": [m for _, m in MODULES], "bias": "none",
                   "fan_in_fan_out": False, "inference_mode": True, "modules_to_save": None,
                   "base_model_name_or_path": "llama_train/" + name, "use_rslora": False, "use_dora": False,
                   "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {}}, f, indent=1)
    write_safetensors(os.path.join(folder, "adapter_model.safetensors"),
                      {"base_model.model." + k: v for k, v in adapters.items()})
    write_safetensors(os.path.join(folder, "expected.safetensors"), expected)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"loss_sum": float(total), "n_tokens": count}, f, indent=1)


def main():
    torch.set_default_dtype(torch.float64)
    for seed, (name, extra) in enumerate(base.CASES.items()):
        make_case(name, extra, 1000 + seed)


if __name__ == "__main__":
    main()
