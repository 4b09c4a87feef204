#!/usr/bin/python3
"""GGUF versions of two golden models, written the way llama.cpp's converter lays them out, and a block-quantized
golden model.

Run after make_llama_golden.py: /usr/bin/python3 tests/models/golden/make_llama_gguf.py
Reads <case>/model.safetensors with its own reader and writes <case>/model.gguf (v3, F32): llama.cpp tensor names,
dims in GGUF order (fastest first), and for the "llama" architecture the q/k rows permuted for interleaved RoPE as
llama.cpp's convert script does. The expected logits stay those of expected.json.

llama_quant/model.gguf: a 2-layer "llama" model (hidden 256) whose matrices are Q8_0, Q4_0, Q4_K and Q6_K, each
type in several roles, quantized by tests/io/ggml_quants.py (ggml's reference quantizers in NumPy). Its
expected.json holds the float64 logits of make_llama_golden.forward on the dequantized weights ("logits": the
exact product of the stored weights) and those of the same forward with every matrix product's input rounded to
8 bits per block as ggml's (and mlxd's fast) quantized kernels do ("logits_q8": d = amax / 127 per 32 values for
Q8_0/Q4_0 weights, per 256 for Q4_K/Q6_K, x -> d * round-half-even(x / d)).
"""
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "io"))
from ggml_quants import QUANTIZERS  # noqa: E402
from make_llama_golden import TOKENS, forward  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + e], dtype="<f4").reshape(info["shape"])
    return out


def permute(w, n_head):  # llama.cpp: rows of each head regrouped from half-split to interleaved pairs
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    fmt = {4: "<I", 6: "<f", 7: "<?"}
    body = gguf_string(value) if vtype == 8 else struct.pack(fmt[vtype], value)
    return gguf_string(key) + struct.pack("<I", vtype) + body


def write_gguf(path, metadata, tensors):
    """tensors: (name, float32 array) written as F32, or (name, shape, ggml type id, raw bytes)."""
    alignment = 32
    infos, blobs, offset = b"", [], 0
    for t in tensors:
        if len(t) == 2:
            name, a = t
            shape, type_id, raw = a.shape, 0, np.ascontiguousarray(a, dtype="<f4").tobytes()
        else:
            name, shape, type_id, raw = t
        dims = list(reversed(shape))
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
        infos += struct.pack("<IQ", type_id, offset)
        pad = (alignment - len(raw) % alignment) % alignment
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)) + b"".join(metadata) + infos
    head += b"\0" * ((alignment - len(head) % alignment) % alignment)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))


def convert(case, arch):
    folder = os.path.join(HERE, case)
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = read_safetensors(os.path.join(folder, "model.safetensors"))
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    meta = [kv("general.architecture", 8, arch),
            kv(arch + ".block_count", 4, cfg["num_hidden_layers"]),
            kv(arch + ".context_length", 4, cfg["max_position_embeddings"]),
            kv(arch + ".embedding_length", 4, cfg["hidden_size"]),
            kv(arch + ".feed_forward_length", 4, cfg["intermediate_size"]),
            kv(arch + ".attention.head_count", 4, nh),
            kv(arch + ".attention.head_count_kv", 4, nkv),
            kv(arch + ".attention.key_length", 4, cfg["head_dim"]),
            kv(arch + ".attention.layer_norm_rms_epsilon", 6, cfg["rms_norm_eps"]),
            kv(arch + ".rope.freq_base", 6, cfg["rope_theta"])]
    t = [("token_embd.weight", w["model.embed_tokens.weight"]), ("output_norm.weight", w["model.norm.weight"])]
    if "lm_head.weight" in w:
        t.append(("output.weight", w["lm_head.weight"]))
    for l in range(cfg["num_hidden_layers"]):
        p, g = "model.layers.%d." % l, "blk.%d." % l
        q, k = w[p + "self_attn.q_proj.weight"], w[p + "self_attn.k_proj.weight"]
        if arch == "llama":
            q, k = permute(q, nh), permute(k, nkv)
        t += [(g + "attn_norm.weight", w[p + "input_layernorm.weight"]), (g + "attn_q.weight", q),
              (g + "attn_k.weight", k), (g + "attn_v.weight", w[p + "self_attn.v_proj.weight"]),
              (g + "attn_output.weight", w[p + "self_attn.o_proj.weight"]),
              (g + "ffn_norm.weight", w[p + "post_attention_layernorm.weight"]),
              (g + "ffn_gate.weight", w[p + "mlp.gate_proj.weight"]), (g + "ffn_up.weight", w[p + "mlp.up_proj.weight"]),
              (g + "ffn_down.weight", w[p + "mlp.down_proj.weight"])]
        for hf, gg in (("q_proj.bias", "attn_q.bias"), ("k_proj.bias", "attn_k.bias"), ("v_proj.bias", "attn_v.bias")):
            if p + "self_attn." + hf in w:
                t.append((g + gg, w[p + "self_attn." + hf]))
    write_gguf(os.path.join(folder, "model.gguf"), meta, t)


QUANT_CFG = {"vocab_size": 48, "hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "rms_norm_eps": 1e-5,
             "rope_theta": 10000.0, "max_position_embeddings": 64, "tie_word_embeddings": False,
             "architectures": ["LlamaForCausalLM"]}
# (GGUF name, HF name, type per layer); every type serves several roles.
QUANT_ROLES = [("attn_q.weight", "self_attn.q_proj.weight", ["Q4_K", "Q8_0"]),
               ("attn_k.weight", "self_attn.k_proj.weight", ["Q6_K", "Q4_0"]),
               ("attn_v.weight", "self_attn.v_proj.weight", ["Q8_0", "Q4_K"]),
               ("attn_output.weight", "self_attn.o_proj.weight", ["Q4_0", "Q6_K"]),
               ("ffn_gate.weight", "mlp.gate_proj.weight", ["Q6_K", "Q4_0"]),
               ("ffn_up.weight", "mlp.up_proj.weight", ["Q4_K", "Q8_0"]),
               ("ffn_down.weight", "mlp.down_proj.weight", ["Q8_0", "Q4_K"])]


def quantized(name, w, type_name):
    """The GGUF tensor of w quantized to type_name, and w as dequantized."""
    type_id, _, quantize = QUANTIZERS[type_name]
    raw, deq = quantize(np.ascontiguousarray(w, dtype=np.float32))
    return (name, list(w.shape), type_id, raw), deq.reshape(w.shape)


def quantized_case():
    cfg = QUANT_CFG
    rng = np.random.default_rng(4242)
    h, nh, nkv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    shapes = {"self_attn.q_proj.weight": (nh * hd, h), "self_attn.k_proj.weight": (nkv * hd, h),
              "self_attn.v_proj.weight": (nkv * hd, h), "self_attn.o_proj.weight": (h, nh * hd),
              "mlp.gate_proj.weight": (cfg["intermediate_size"], h), "mlp.up_proj.weight": (cfg["intermediate_size"], h),
              "mlp.down_proj.weight": (h, cfg["intermediate_size"])}
    def normal(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    def norm():
        return (1.0 + 0.1 * rng.standard_normal(h)).astype(np.float32)
    deq = {}
    tensors = []
    t, deq["model.embed_tokens.weight"] = quantized("token_embd.weight", rng.standard_normal((cfg["vocab_size"], h))
                                                     .astype(np.float32), "Q4_K")
    tensors.append(t)
    t, deq["lm_head.weight"] = quantized("output.weight", normal(cfg["vocab_size"], h), "Q6_K")
    tensors.append(t)
    deq["model.norm.weight"] = norm()
    tensors.append(("output_norm.weight", deq["model.norm.weight"]))
    for l in range(cfg["num_hidden_layers"]):
        p, g = "model.layers.%d." % l, "blk.%d." % l
        for gguf_name, hf_name, kinds in QUANT_ROLES:
            w = normal(*shapes[hf_name])
            t, deq[p + hf_name] = quantized(g + gguf_name, w, kinds[l])
            if hf_name in ("self_attn.q_proj.weight", "self_attn.k_proj.weight"):  # rows regrouped as llama.cpp does
                heads = nh if hf_name.startswith("self_attn.q") else nkv
                t, _ = quantized(g + gguf_name, permute(w, heads), kinds[l])
            tensors.append(t)
        for hf_name, gguf_name in (("input_layernorm.weight", "attn_norm.weight"),
                                   ("post_attention_layernorm.weight", "ffn_norm.weight")):
            deq[p + hf_name] = norm()
            tensors.append((g + gguf_name, deq[p + hf_name]))
    meta = [kv("general.architecture", 8, "llama"),
            kv("llama.block_count", 4, cfg["num_hidden_layers"]),
            kv("llama.context_length", 4, cfg["max_position_embeddings"]),
            kv("llama.embedding_length", 4, h),
            kv("llama.feed_forward_length", 4, cfg["intermediate_size"]),
            kv("llama.attention.head_count", 4, nh),
            kv("llama.attention.head_count_kv", 4, nkv),
            kv("llama.attention.key_length", 4, hd),
            kv("llama.attention.layer_norm_rms_epsilon", 6, cfg["rms_norm_eps"]),
            kv("llama.rope.freq_base", 6, cfg["rope_theta"])]
    folder = os.path.join(HERE, "llama_quant")
    os.makedirs(folder, exist_ok=True)
    write_gguf(os.path.join(folder, "model.gguf"), meta, tensors)
    block_of = {"model.embed_tokens.weight": 256, "lm_head.weight": 256}
    for l in range(cfg["num_hidden_layers"]):
        for _, hf_name, kinds in QUANT_ROLES:
            block_of["model.layers.%d.%s" % (l, hf_name)] = 256 if kinds[l].endswith("_K") else 32

    def round_to_8_bits(x, name):
        blocks = x.reshape(x.shape[0], -1, block_of[name])
        d = np.abs(blocks).max(axis=-1, keepdims=True) / 127
        return (np.round(blocks / np.where(d > 0, d, 1)) * d).reshape(x.shape)

    logits = forward(cfg, deq, TOKENS)
    logits_q8 = forward(cfg, deq, TOKENS, round_to_8_bits)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"tokens": TOKENS, "shape": list(logits.shape), "logits": [float(v) for v in logits.ravel()],
                   "logits_q8": [float(v) for v in logits_q8.ravel()]}, f)


convert("llama_gqa", "llama")
convert("qwen2_bias_tied", "qwen2")
quantized_case()
