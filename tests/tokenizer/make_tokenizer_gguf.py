#!/usr/bin/python3
"""Writes the tokenizer of a model as GGUF metadata, the way llama.cpp's converter does (no tensors).

Usage: make_tokenizer_gguf.py hf FOLDER OUT.gguf       (tokenizer.json + tokenizer_config.json)
       make_tokenizer_gguf.py spm TOKENIZER.model OUT.gguf

hf, byte-level BPE (Llama-3, Qwen3): tokenizer.ggml.model "gpt2", the tokens by id ("[PAD<id>]" for unused ids),
token types (special added tokens CONTROL, other added tokens USER_DEFINED), merges as "a b", and
tokenizer.ggml.pre chosen from the split regex ("llama-bpe" or "qwen2").
hf, SentencePiece-style BPE with byte fallback (Mistral): tokenizer.ggml.model "llama" with scores; tokenizer.json
holds no scores, so each piece scores minus the rank of the first merge that makes it, which orders the
merges as the file does.
spm: tokenizer.ggml.model "llama" with the pieces, scores and types of the SentencePiece ModelProto.
BOS/EOS/PAD/UNK ids come from tokenizer_config.json (or the model), add_bos_token / add_eos_token from the
post-processor's template (as gguf-py's SpecialVocab reads them).
"""
import json
import os
import struct
import sys

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
LLAMA3_REGEX = "\\p{N}{1,3}"


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def value(vtype, v):
    if vtype == 8:
        return gguf_string(v)
    if vtype == 9:
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(value(etype, x) for x in items)
    return struct.pack({4: "<I", 5: "<i", 6: "<f", 7: "<?"}[vtype], v)


def kv(key, vtype, v):
    return gguf_string(key) + struct.pack("<I", vtype) + value(vtype, v)


def write_gguf(path, meta):
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta)) + b"".join(meta)
    head += b"\0" * ((32 - len(head) % 32) % 32)
    with open(path + ".tmp", "wb") as f:
        f.write(head)
    os.replace(path + ".tmp", path)


def template_flags(post):
    """add_bos / add_eos from a TemplateProcessing single template (False when there is none)."""
    single = post.get("single", []) if post and post.get("type") == "TemplateProcessing" else []
    return (bool(single) and "SpecialToken" in single[0], bool(single) and "SpecialToken" in single[-1])


def config_id(config, key, ids):
    t = config.get(key)
    if isinstance(t, dict):
        t = t.get("content")
    return ids.get(t) if isinstance(t, str) else None


def from_hf(folder):
    tok = json.load(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8"))
    config = json.load(open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8"))
    model = tok["model"]
    ids = dict(model["vocab"])
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    for a in added.values():
        ids[a["content"]] = a["id"]
    n = max(ids.values()) + 1
    tokens = ["[PAD%d]" % i for i in range(n)]
    types = [UNUSED] * n
    for t, i in model["vocab"].items():
        tokens[i], types[i] = t, NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    byte_fallback = model.get("byte_fallback", False)
    meta = []
    if byte_fallback:
        first = {}
        for rank, m in enumerate(merges):
            a, b = m.split(" ", 1)
            first.setdefault(a + b, rank)
        scores = [-float(first.get(t, 0)) for t in tokens]
        for i, t in enumerate(tokens):
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                types[i] = BYTE
        if model.get("unk_token") in ids:
            types[ids[model["unk_token"]]] = UNKNOWN
        meta += [kv("tokenizer.ggml.model", 8, "llama"), kv("tokenizer.ggml.scores", 9, (6, scores))]
    else:
        regex = json.dumps(tok["pre_tokenizer"])
        pre = "llama-bpe" if LLAMA3_REGEX in regex.replace("\\\\", "\\") else "qwen2"
        meta += [kv("tokenizer.ggml.model", 8, "gpt2"), kv("tokenizer.ggml.pre", 8, pre),
                 kv("tokenizer.ggml.merges", 9, (8, merges))]
    for i, a in added.items():
        tokens[i] = a["content"]
        if types[i] != UNKNOWN:
            types[i] = CONTROL if a.get("special") else USER_DEFINED
    meta += [kv("tokenizer.ggml.tokens", 9, (8, tokens)), kv("tokenizer.ggml.token_type", 9, (5, types))]
    for key, name in (("bos_token", "bos"), ("eos_token", "eos"), ("pad_token", "padding"), ("unk_token", "unknown")):
        i = config_id(config, key, ids)
        if i is not None:
            meta.append(kv("tokenizer.ggml.%s_token_id" % name, 4, i))
    add_bos, add_eos = template_flags(tok.get("post_processor"))
    meta += [kv("tokenizer.ggml.add_bos_token", 7, add_bos), kv("tokenizer.ggml.add_eos_token", 7, add_eos)]
    if isinstance(config.get("chat_template"), str):
        meta.append(kv("tokenizer.chat_template", 8, config["chat_template"]))
    return meta


def varint(data, pos):
    result, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def proto_fields(data):
    """(field number, wire type, value) of a protobuf message; value is bytes, an int or 4/8 raw bytes."""
    pos = 0
    while pos < len(data):
        key, pos = varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, pos = varint(data, pos)
        elif wire == 1:
            v, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = varint(data, pos)
            v, pos = data[pos:pos + n], pos + n
        elif wire == 5:
            v, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, v


def from_spm(path):
    # ModelProto: 1 = repeated SentencePiece {1: piece, 2: score, 3: type}, 2 = TrainerSpec, 3 = NormalizerSpec.
    tokens, scores, types = [], [], []
    trainer, normalizer = {}, {}
    for field, _, v in proto_fields(open(path, "rb").read()):
        if field == 1:
            piece = dict((f, x) for f, _, x in proto_fields(v))
            tokens.append(piece[1].decode("utf-8"))
            scores.append(struct.unpack("<f", piece.get(2, b"\0\0\0\0"))[0])
            types.append(piece.get(3, NORMAL))
        elif field == 2:
            trainer = dict((f, x) for f, _, x in proto_fields(v))
        elif field == 3:
            normalizer = dict((f, x) for f, _, x in proto_fields(v))
    if trainer.get(3, 1) != 2:  # TrainerSpec.model_type: 1 unigram (the default), 2 BPE
        raise ValueError("not a BPE SentencePiece model")

    def special(field, default):  # TrainerSpec ids are int32 varints; -1 (none) comes as 2^64 - 1
        v = trainer.get(field, default)
        return None if v >= 2**63 else v

    meta = [kv("tokenizer.ggml.model", 8, "llama"), kv("tokenizer.ggml.tokens", 9, (8, tokens)),
            kv("tokenizer.ggml.scores", 9, (6, scores)), kv("tokenizer.ggml.token_type", 9, (5, types)),
            kv("tokenizer.ggml.add_space_prefix", 7, bool(normalizer.get(3, 1)))]
    for field, default, name in ((41, 1, "bos"), (42, 2, "eos"), (43, 2**64 - 1, "padding"), (40, 0, "unknown")):
        i = special(field, default)
        if i is not None:
            meta.append(kv("tokenizer.ggml.%s_token_id" % name, 4, i))
    meta += [kv("tokenizer.ggml.add_bos_token", 7, True), kv("tokenizer.ggml.add_eos_token", 7, False)]
    return meta


if __name__ == "__main__":
    kind, source, out = sys.argv[1:4]
    write_gguf(out, from_hf(source) if kind == "hf" else from_spm(source))
