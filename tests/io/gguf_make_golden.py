#!/usr/bin/python3
"""Writes data/gguf_golden_v3.gguf, data/gguf_golden_v2.gguf and data/gguf_golden_expected.json for
gguf_golden_test.cpp.

An independent GGUF writer built from the spec (ggml docs/gguf.md) with struct, json and numpy only (no mlxd code
and no gguf package). The v3 file has a metadata value of every type (nested arrays and a tokenizer-like string
array included), general.alignment 64, and F32, F16, BF16, Q8_0 and Q4_0 tensors, quantized here per ggml's block
layouts, with the data laid out in the reverse of the tensor-info order and a hole between two tensors. The v2
file uses the default alignment of 32. The expected file lists, per tensor, the row-major shape and the exact bit
patterns of the loaded values: u16 for F16/BF16, f32 for F32 and for dequantized Q8_0/Q4_0 (d * q in float32).
Run it from anywhere: /usr/bin/python3 tests/io/gguf_make_golden.py
"""
import json
import os
import struct

import numpy as np

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMATS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
                  U64: "<Q", I64: "<q", F64: "<d"}
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_BF16 = 0, 1, 2, 8, 30


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def value_bytes(vtype, v):
    """v is a scalar, a str, or for ARRAY a pair (element type, list of values)."""
    if vtype == STRING:
        return gguf_string(v)
    if vtype == ARRAY:
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(value_bytes(etype, x) for x in items)
    return struct.pack(SCALAR_FORMATS[vtype], v)


def bf16_bits(x):
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def quantize_q8_0(x):
    """Returns (bytes, dequantized float32) of a float32 vector whose length is a multiple of 32."""
    out, deq = b"", []
    for block in x.reshape(-1, 32):
        amax = float(np.max(np.abs(block)))
        d = np.float16(amax / 127.0)
        inv = 1.0 / float(d) if float(d) != 0.0 else 0.0
        q = np.clip(np.round(block.astype(np.float64) * inv), -127, 127).astype(np.int8)
        out += d.tobytes() + q.tobytes()
        deq.append(np.float32(d) * q.astype(np.float32))
    return out, np.concatenate(deq)


def quantize_q4_0(x):
    out, deq = b"", []
    for block in x.reshape(-1, 32):
        m = float(block[np.argmax(np.abs(block))])
        d = np.float16(m / -8.0)
        inv = 1.0 / float(d) if float(d) != 0.0 else 0.0
        q = np.minimum(15, np.trunc(block.astype(np.float64) * inv + 8.5)).astype(np.uint8)
        packed = (q[:16] | (q[16:] << 4)).astype(np.uint8)
        out += d.tobytes() + packed.tobytes()
        deq.append(np.float32(d) * (q.astype(np.float32) - np.float32(8)))
    return out, np.concatenate(deq)


def write_gguf(path, version, metadata, tensors, alignment, data_order, hole):
    """tensors: list of (name, row-major shape, ggml type, raw bytes), in tensor-info order. Data goes in
    data_order (names), each aligned, with `hole` extra aligned blocks after the first one."""
    offsets, data = {}, b""
    for i, name in enumerate(data_order):
        raw = next(t[3] for t in tensors if t[0] == name)
        offsets[name] = len(data)
        data += raw + b"\0" * ((-len(raw)) % alignment)
        if i == 0:
            data += b"\xa5" * (hole * alignment)
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, vtype, v in metadata:
        head += gguf_string(key) + struct.pack("<I", vtype) + value_bytes(vtype, v)
    for name, shape, gtype, _ in tensors:
        dims = list(reversed(shape))
        head += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
        head += struct.pack("<IQ", gtype, offsets[name])
    head += b"\0" * ((-len(head)) % alignment)
    with open(path, "wb") as f:
        f.write(head + data)


def main():
    rng = np.random.default_rng(20250301)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    tokens = ["<unk>", "<s>", "</s>", "\u2581the", "\u2581hello", "\u00e9t\u00e9", "<0x0A>", ""]
    metadata = [
        ("general.architecture", STRING, "llama"),
        ("general.alignment", U32, 64),
        ("test.u8", U8, 200), ("test.i8", I8, -100), ("test.u16", U16, 60000), ("test.i16", I16, -30000),
        ("test.u32", U32, 4000000000), ("test.i32", I32, -2000000000), ("test.f32", F32, 3.25),
        ("test.bool", BOOL, 1), ("test.string", STRING, "h\u00e9llo w\u00f6rld"),
        ("test.u64", U64, 2**63 + 5), ("test.i64", I64, -(2**62) - 3), ("test.f64", F64, 2.718281828459045),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.scores", ARRAY, (F32, [0.0, -1.5, -2.5, -3.0, -4.0, -5.0, -6.0, -7.0])),
        ("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3, 1, 1, 1, 6, 1])),
        ("test.nested", ARRAY, (ARRAY, [(U16, [1, 2]), (U16, [3]), (U16, [])])),
        ("test.bools", ARRAY, (BOOL, [1, 0, 1])),
        ("test.empty", ARRAY, (F64, [])),
    ]
    emb = rng.normal(0.0, 1.0, size=(3, 4)).astype(np.float32)
    norm = rng.normal(0.0, 20.0, size=(8,)).astype(np.float16)
    norm[:2] = [np.float16(-0.0), np.float16(65504.0)]
    bf = bf16_bits(rng.normal(0.0, 5.0, size=(2, 2)))
    q8_bytes, q8_deq = quantize_q8_0(rng.normal(0.0, 2.0, size=(2 * 64,)).astype(np.float32))
    q4_bytes, q4_deq = quantize_q4_0(rng.normal(0.0, 2.0, size=(3 * 32,)).astype(np.float32))
    tensors = [
        ("token_embd.weight", [3, 4], GGML_F32, emb.tobytes()),
        ("output_norm.weight", [8], GGML_F16, norm.tobytes()),
        ("blk.0.attn_k.weight", [2, 2], GGML_BF16, bf.tobytes()),
        ("blk.0.attn_q.weight", [2, 64], GGML_Q8_0, q8_bytes),
        ("blk.0.ffn_up.weight", [3, 32], GGML_Q4_0, q4_bytes),
    ]
    names = [t[0] for t in tensors]
    write_gguf(os.path.join(here, "gguf_golden_v3.gguf"), 3, metadata, tensors, 64, list(reversed(names)), 1)

    v2_emb = rng.normal(0.0, 1.0, size=(2, 3)).astype(np.float32)
    v2_metadata = [("general.architecture", STRING, "llama"), ("llama.block_count", U32, 1)]
    v2_tensors = [("token_embd.weight", [2, 3], GGML_F32, v2_emb.tobytes())]
    write_gguf(os.path.join(here, "gguf_golden_v2.gguf"), 2, v2_metadata, v2_tensors, 32, ["token_embd.weight"], 0)

    def f32_bits(a):
        return [int(v) for v in np.asarray(a, dtype=np.float32).view(np.uint32)]

    expected = {
        "v3": {
            "token_embd.weight": {"shape": [3, 4], "f32_bits": f32_bits(emb.ravel())},
            "output_norm.weight": {"shape": [8], "u16_bits": [int(v) for v in norm.view(np.uint16)]},
            "blk.0.attn_k.weight": {"shape": [2, 2], "u16_bits": [int(v) for v in bf.ravel()]},
            "blk.0.attn_q.weight": {"shape": [2, 64], "f32_bits": f32_bits(q8_deq)},
            "blk.0.ffn_up.weight": {"shape": [3, 32], "f32_bits": f32_bits(q4_deq)},
        },
        "v2": {"token_embd.weight": {"shape": [2, 3], "f32_bits": f32_bits(v2_emb.ravel())}},
    }
    with open(os.path.join(here, "gguf_golden_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
