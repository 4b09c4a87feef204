#!/usr/bin/python3
"""An MLX-community style folder (MLX's affine-quantized weights) and its logits from the NumPy reference.

Run once with Debian's python3-numpy: /usr/bin/python3 tests/models/golden/make_mlx_golden.py
Writes mlx_qwen2_mixed/: config.json with MLX's "quantization" (4 bits in groups of 32, and per-module
overrides: 2, 3, 5, 6 and 8 bits, groups of 64 and 128, one module left unquantized), model.safetensors (packed U32
weights, BF16 scales, biases and plain tensors), dequantized.safetensors (every weight as the BF16 values
the quantized ones stand for) and expected.json (the float64 logits of make_llama_golden.forward on those).
The packing follows MLX: each row's values form a little-endian bit stream, value j at bits j*b .. j*b+b-1,
stored as 32-bit words; a weight is scale * q + bias of its group, rounded once to BF16.
tests/models/llama_mlx_test.cpp loads the folder with mlxd and compares.
"""
import json
import os

import numpy as np

from make_llama_golden import HERE, TOKENS, forward, make_weights, write_safetensors

CFG = {"architectures": ["Qwen2ForCausalLM"], "vocab_size": 40, "hidden_size": 64, "intermediate_size": 128,
       "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
       "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 64, "tie_word_embeddings": True,
       "attention_bias": True, "torch_dtype": "bfloat16"}
DEFAULT = {"group_size": 32, "bits": 4}
OVERRIDES = {
    "model.layers.0.mlp.down_proj": {"group_size": 128, "bits": 3},
    "model.layers.0.self_attn.o_proj": {"group_size": 32, "bits": 2},
    "model.layers.1.self_attn.v_proj": {"group_size": 32, "bits": 6},
    "model.layers.1.mlp.gate_proj": {"group_size": 64, "bits": 8},
    "model.layers.1.mlp.up_proj": {"group_size": 64, "bits": 5},
    "model.layers.0.self_attn.k_proj": False,
}


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even (no NaNs here)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_values(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def quantize(w, bits, group):
    """MLX-style affine quantization: per group, q = round((w - min) / scale) with scale = (max - min) / levels."""
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    lo, hi = g.min(-1), g.max(-1)
    scales = bf16_values(bf16_bits((hi - lo) / ((1 << bits) - 1)))
    biases = bf16_values(bf16_bits(lo))
    q = np.clip(np.rint((g - biases[..., None]) / scales[..., None]), 0, (1 << bits) - 1).astype(np.uint64)
    q = q.reshape(rows, cols)
    # Each row as a little-endian bit stream, then as 32-bit words.
    stream = np.zeros((rows, cols * bits // 8), dtype=np.uint8)
    for j in range(cols):
        for b in range(bits):
            bit = j * bits + b
            stream[:, bit // 8] |= (((q[:, j] >> b) & 1) << (bit % 8)).astype(np.uint8)
    packed = stream.view("<u4")
    deq = (np.repeat(scales, group, axis=1) * q.astype(np.float32) + np.repeat(biases, group, axis=1))
    return packed, bf16_bits(scales), bf16_bits(biases), bf16_bits(deq.astype(np.float32))


def main():
    folder = os.path.join(HERE, "mlx_qwen2_mixed")
    os.makedirs(folder, exist_ok=True)
    weights = make_weights(CFG, np.random.default_rng(2026))
    files, plain = {}, {}
    for name, w in sorted(weights.items()):
        module = name[: -len(".weight")] if name.endswith(".weight") else None
        params = OVERRIDES.get(module, DEFAULT) if module and w.ndim == 2 else False
        if not params:
            files[name] = ("BF16", bf16_bits(w))
            plain[name] = files[name]
            continue
        packed, scales, biases, deq = quantize(w, params["bits"], params["group_size"])
        files[name] = ("U32", packed)
        files[module + ".scales"] = ("BF16", scales)
        files[module + ".biases"] = ("BF16", biases)
        plain[name] = ("BF16", deq)
    config = dict(CFG, quantization=dict(DEFAULT, **OVERRIDES), quantization_config=dict(DEFAULT, **OVERRIDES))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for name, tensors in (("model", files), ("dequantized", plain)):
        write_safetensors(os.path.join(folder, name + ".safetensors"), {n: a for n, (_, a) in tensors.items()},
                          {n: kind for n, (kind, _) in tensors.items()})
    logits = forward(CFG, {n: bf16_values(a) for n, (_, a) in plain.items()}, TOKENS)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"tokens": TOKENS, "shape": list(logits.shape), "logits": [float(v) for v in logits.ravel()]}, f)


if __name__ == "__main__":
    main()
