#!/usr/bin/python3
"""Tiny Llama-family models and their logits from an independent float64 NumPy implementation.

Run once with Debian's python3-numpy: /usr/bin/python3 tests/models/golden/make_llama_golden.py
For each case it writes <case>/config.json, <case>/model.safetensors (its own writer, from the format spec) and
<case>/expected.json (token ids and the logits of every position). tests/models/llama_golden_test.cpp loads the
folders with mlxd and compares. Each case exercises one architecture feature.
"""
import json
import math
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENS = [3, 17, 5, 29, 0, 11, 38]


def write_safetensors(path, tensors, kinds=None):
    """tensors: name -> array, written as F32; with kinds (name -> safetensors dtype), each array's own bytes."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype=None if kinds else "<f4").tobytes()
        kind = kinds[name] if kinds else "F32"
        header[name] = {"dtype": kind, "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_weights(cfg, rng):
    h, hd, nh, nkv, ffn, vocab = (cfg["hidden_size"], cfg["head_dim"], cfg["num_attention_heads"],
                                  cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"])
    qwen3 = cfg["architectures"][0] == "Qwen3ForCausalLM"
    def n(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    def norm(size):
        return (1.0 + 0.1 * rng.standard_normal(size)).astype(np.float32)
    w = {"model.embed_tokens.weight": n(vocab, h, scale=1.0), "model.norm.weight": norm(h)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = n(vocab, h)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = norm(h)
        w[p + "post_attention_layernorm.weight"] = norm(h)
        w[p + "self_attn.q_proj.weight"] = n(nh * hd, h)
        w[p + "self_attn.k_proj.weight"] = n(nkv * hd, h)
        w[p + "self_attn.v_proj.weight"] = n(nkv * hd, h)
        w[p + "self_attn.o_proj.weight"] = n(h, nh * hd)
        if cfg.get("attention_bias"):
            w[p + "self_attn.q_proj.bias"] = n(nh * hd)
            w[p + "self_attn.k_proj.bias"] = n(nkv * hd)
            w[p + "self_attn.v_proj.bias"] = n(nkv * hd)
        if qwen3:
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "mlp.gate_proj.weight"] = n(ffn, h)
        w[p + "mlp.up_proj.weight"] = n(ffn, h)
        w[p + "mlp.down_proj.weight"] = n(h, ffn)
    return w


def inv_freqs(cfg):
    hd, theta = cfg["head_dim"], cfg["rope_theta"]
    freqs = theta ** (-np.arange(0, hd // 2, dtype=np.float64) * 2.0 / hd)
    scaling = cfg.get("rope_scaling")
    if scaling and scaling["rope_type"] == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        out = []
        for f in freqs:
            wavelen = 2 * math.pi / f
            if wavelen < old / high:
                out.append(f)
            elif wavelen > old / low:
                out.append(f / factor)
            else:
                s = (old / wavelen - low) / (high - low)
                out.append((1 - s) * f / factor + s * f)
        freqs = np.array(out)
    if scaling and scaling["rope_type"] == "linear":
        freqs = freqs / scaling["factor"]
    return freqs


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, freqs):  # x [heads, T, hd], half-split layout as in Hugging Face's rotate_half
    t = np.arange(x.shape[1], dtype=np.float64)
    ang = t[:, None] * freqs[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def forward(cfg, w, tokens, linear_input=None):
    """Logits [T, vocab]. linear_input(x, weight_name), when given, replaces the input of each weight matrix
    product (make_llama_gguf.py uses it to round activations as quantized kernels do)."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    def mm(x, name):
        return (linear_input(x, name) if linear_input else x) @ w[name].T
    h, hd, nh, nkv, eps = (cfg["hidden_size"], cfg["head_dim"], cfg["num_attention_heads"],
                           cfg["num_key_value_heads"], cfg["rms_norm_eps"])
    T = len(tokens)
    freqs = inv_freqs(cfg)
    x = w["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        a = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        def proj(name, heads):
            y = mm(a, p + "self_attn.%s_proj.weight" % name)
            if cfg.get("attention_bias"):
                y = y + w[p + "self_attn.%s_proj.bias" % name]
            return y.reshape(T, heads, hd).transpose(1, 0, 2)
        q, k, v = proj("q", nh), proj("k", nkv), proj("v", nkv)
        if p + "self_attn.q_norm.weight" in w:
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, freqs), rope(k, freqs)
        k, v = np.repeat(k, nh // nkv, axis=0), np.repeat(v, nh // nkv, axis=0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(T, nh * hd)
        x = x + mm(o, p + "self_attn.o_proj.weight")
        m = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = mm(m, p + "mlp.gate_proj.weight")
        u = mm(m, p + "mlp.up_proj.weight")
        x = x + mm(g / (1 + np.exp(-g)) * u, p + "mlp.down_proj.weight")
    x = rms_norm(x, w["model.norm.weight"], eps)
    return mm(x, "model.embed_tokens.weight" if cfg["tie_word_embeddings"] else "lm_head.weight")


BASE = {"vocab_size": 40, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 64, "tie_word_embeddings": False}
CASES = {
    "llama_gqa": {"architectures": ["LlamaForCausalLM"]},
    "qwen2_bias_tied": {"architectures": ["Qwen2ForCausalLM"], "attention_bias": True, "tie_word_embeddings": True,
                        "num_key_value_heads": 1},
    "qwen3_qk_norm": {"architectures": ["Qwen3ForCausalLM"], "hidden_size": 24, "head_dim": 8,
                      "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 1000000.0},
    "llama3_rope_scaling": {"architectures": ["LlamaForCausalLM"], "head_dim": 8, "num_attention_heads": 2,
                            "num_key_value_heads": 2, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}},
    "mistral_linear_rope": {"architectures": ["MistralForCausalLM"], "num_key_value_heads": 4,
                            "rope_scaling": {"rope_type": "linear", "factor": 2.0}},
}

def main():
    for i, (case, overrides) in enumerate(sorted(CASES.items())):
        cfg = dict(BASE, **overrides)
        rng = np.random.default_rng(1000 + i)
        folder = os.path.join(HERE, case)
        os.makedirs(folder, exist_ok=True)
        weights = make_weights(cfg, rng)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        write_safetensors(os.path.join(folder, "model.safetensors"), weights)
        logits = forward(cfg, weights, TOKENS)
        with open(os.path.join(folder, "expected.json"), "w") as f:
            json.dump({"tokens": TOKENS, "shape": list(logits.shape), "logits": [float(v) for v in logits.ravel()]},
                      f)


if __name__ == "__main__":  # make_llama_gguf.py imports forward() from here
    main()
