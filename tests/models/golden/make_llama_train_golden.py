#!/usr/bin/python3
"""Training golden data for tests/models/llama_train_golden_test.cpp from an independent PyTorch (float64) Llama.

Run once with Debian's python3-torch: /usr/bin/python3 tests/models/golden/make_llama_train_golden.py
For each case it writes llama_train/<case>/config.json, model.safetensors (NumPy-seeded weights), and
expected.safetensors (logits "logits" and every gradient "grad.<name>" of the mean loss of batch 0) and
expected.json (the batches, the loss, its token count, and the losses of SGD_STEPS plain SGD steps with
learning rate LR; step i trains on batch i % N_BATCHES, so the losses fall as the model memorises them). Batches pack several samples per row: attention stays inside a
sample and RoPE positions restart at 0 for each.
"""
import json
import os

import numpy as np
import torch

from make_llama_golden import write_safetensors

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_train")
ROWS, SEQ, SGD_STEPS, N_BATCHES, LR = 2, 16, 10, 2, 0.5
IGNORE = -100
CASES = {
    "llama": {"architectures": ["LlamaForCausalLM"], "tie_word_embeddings": False, "attention_bias": False,
              "rope_theta": 10000.0},
    "qwen3_bias_tied": {"architectures": ["Qwen3ForCausalLM"], "tie_word_embeddings": True,
                        "attention_bias": True, "rope_theta": 1000000.0},
}


def config(extra):
    cfg = {"vocab_size": 97, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-5,
           "max_position_embeddings": 64}
    cfg.update(extra)
    return cfg


def make_weights(cfg, rng):
    h, hd, nh, nkv, ffn, vocab = (cfg["hidden_size"], cfg["head_dim"], cfg["num_attention_heads"],
                                  cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"])
    def n(*shape, scale=0.1):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    def norm(size):
        return (1.0 + 0.1 * rng.standard_normal(size)).astype(np.float32)
    w = {"model.embed_tokens.weight": n(vocab, h, scale=0.5), "model.norm.weight": norm(h)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = n(vocab, h)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = norm(h)
        w[p + "post_attention_layernorm.weight"] = norm(h)
        for name, rows in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
            w[p + "self_attn.%s_proj.weight" % name] = n(rows, h)
            if cfg["attention_bias"]:
                w[p + "self_attn.%s_proj.bias" % name] = n(rows)
        w[p + "self_attn.o_proj.weight"] = n(h, nh * hd)
        if cfg["architectures"][0] == "Qwen3ForCausalLM":
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "mlp.gate_proj.weight"] = n(ffn, h)
        w[p + "mlp.up_proj.weight"] = n(ffn, h)
        w[p + "mlp.down_proj.weight"] = n(h, ffn)
    return w


def make_batch(rng, vocab):
    """Row 0 packs samples of 7 and 9 tokens; row 1 one of 12 and 4 padding tokens (their own segment)."""
    segments = np.array([[0] * 7 + [1] * 9, [0] * 12 + [1] * 4], dtype=np.int64)
    tokens = rng.integers(0, vocab, size=(ROWS, SEQ))
    tokens[1, 12:] = 0
    labels = np.full((ROWS, SEQ), IGNORE, dtype=np.int64)
    for b in range(ROWS):
        for t in range(SEQ - 1):
            if segments[b, t] == segments[b, t + 1] and not (b == 1 and t >= 12):
                labels[b, t] = tokens[b, t + 1]
    return tokens, segments, labels


def positions_of(segments):
    pos = np.zeros_like(segments)
    for b in range(segments.shape[0]):
        for t in range(1, segments.shape[1]):
            pos[b, t] = pos[b, t - 1] + 1 if segments[b, t] == segments[b, t - 1] else 0
    return pos


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def forward(cfg, w, tokens, segments):
    """Logits [rows, seq, vocab] of the packed batch, written the way Hugging Face's modeling_llama is."""
    h, hd, nh, nkv = cfg["hidden_size"], cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    eps, rows, seq = cfg["rms_norm_eps"], tokens.shape[0], tokens.shape[1]
    tok = torch.tensor(tokens)
    seg = torch.tensor(segments)
    pos = torch.tensor(positions_of(segments), dtype=torch.float64)
    inv_freq = cfg["rope_theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    angles = pos[..., None] * inv_freq  # [rows, seq, hd/2]
    emb = torch.cat([angles, angles], dim=-1)[:, None]  # [rows, 1, seq, hd]
    cos, sin = emb.cos(), emb.sin()
    causal = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
    allowed = causal[None] & (seg[:, :, None] == seg[:, None, :])  # [rows, seq(q), seq(k)]
    x = w["model.embed_tokens.weight"][tok]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        a = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        def proj(name, heads):
            y = a @ w[p + "self_attn.%s_proj.weight" % name].T
            if cfg["attention_bias"]:
                y = y + w[p + "self_attn.%s_proj.bias" % name]
            return y.view(rows, seq, heads, hd).transpose(1, 2)  # [rows, heads, seq, hd]
        q, k, v = proj("q", nh), proj("k", nkv), proj("v", nkv)
        if cfg["architectures"][0] == "Qwen3ForCausalLM":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / hd ** 0.5
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v  # [rows, nh, seq, hd]
        x = x + out.transpose(1, 2).reshape(rows, seq, nh * hd) @ w[p + "self_attn.o_proj.weight"].T
        m = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(m @ w[p + "mlp.gate_proj.weight"].T)
        x = x + (gate * (m @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    head = w["model.embed_tokens.weight" if cfg["tie_word_embeddings"] else "lm_head.weight"]
    return rms_norm(x, w["model.norm.weight"], eps) @ head.T


def mean_loss(cfg, w, batch):
    tokens, segments, labels = batch
    logits = forward(cfg, w, tokens, segments)
    total = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), torch.tensor(labels).reshape(-1),
                                              ignore_index=IGNORE, reduction="sum")
    count = int((labels != IGNORE).sum())
    return logits, total, count


def make_case(name, extra, seed):
    cfg = config(extra)
    rng = np.random.default_rng(seed)
    weights = make_weights(cfg, rng)
    batches = [make_batch(rng, cfg["vocab_size"]) for _ in range(N_BATCHES)]
    w = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    logits, total0, count0 = mean_loss(cfg, w, batches[0])
    (total0 / count0).backward()
    expected = {"logits": logits.detach().numpy().astype(np.float32)}
    for k, v in w.items():
        expected["grad." + k] = v.grad.numpy().astype(np.float32)
    sgd_losses = []
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    for step in range(SGD_STEPS):
        _, total, count = mean_loss(cfg, params, batches[step % N_BATCHES])
        loss = total / count
        grads = torch.autograd.grad(loss, list(params.values()))
        sgd_losses.append(float(loss))
        with torch.no_grad():
            params = {k: (v - LR * g).requires_grad_(True) for (k, v), g in zip(params.items(), grads)}
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    write_safetensors(os.path.join(folder, "model.safetensors"), weights)
    write_safetensors(os.path.join(folder, "expected.safetensors"), expected)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"rows": ROWS, "seq": SEQ, "lr": LR,
                   "batches": [{"tokens": t.ravel().tolist(), "segments": s.ravel().tolist(),
                                "labels": l.ravel().tolist()} for t, s, l in batches],
                   "loss_sum": float(total0), "n_tokens": count0,
                   "sgd_losses": sgd_losses}, f, indent=1)


def main():
    torch.set_default_dtype(torch.float64)
    for seed, (name, extra) in enumerate(CASES.items()):
        make_case(name, extra, 1000 + seed)


if __name__ == "__main__":
    main()
