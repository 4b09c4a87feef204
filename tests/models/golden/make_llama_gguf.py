#!/usr/bin/python3
"""GGUF versions of two golden models, written the way llama.cpp's converter lays them out.

Run after make_llama_golden.py: /usr/bin/python3 tests/models/golden/make_llama_gguf.py
Reads <case>/model.safetensors with its own reader and writes <case>/model.gguf (v3, F32): llama.cpp tensor names,
dims in GGUF order (fastest first), and for the "llama" architecture the q/k rows permuted for interleaved RoPE as
llama.cpp's convert script does. The expected logits stay those of expected.json.
"""
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


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
    alignment = 32
    infos, blobs, offset = b"", [], 0
    for name, a in tensors:
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        dims = list(reversed(a.shape))
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
        infos += struct.pack("<IQ", 0, offset)  # type 0 = F32
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


convert("llama_gqa", "llama")
convert("qwen2_bias_tied", "qwen2")
