#!/usr/bin/python3
"""Writes tiny_byte_tokenizer/: a byte-level BPE tokenizer.json made for mlxd's CLI tests (no third-party vocab).

Ids 0-255 are the 256 bytes in GPT-2's byte-to-unicode spelling, then a few merges, then <|endoftext|>.
Run: /usr/bin/python3 tests/apps/data/make_tiny_byte_tokenizer.py
"""
import json
import os


def bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


B = bytes_to_unicode()
vocab = {B[b]: b for b in range(256)}
merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), (B[ord(" ")], "w"), ("o", "r")]
for a, b in merges:
    vocab[a + b] = len(vocab)
eos = len(vocab)
tokenizer = {
    "version": "1.0",
    "added_tokens": [{"id": eos, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
}
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_byte_tokenizer")
os.makedirs(here, exist_ok=True)
with open(os.path.join(here, "tokenizer.json"), "w") as f:
    json.dump(tokenizer, f, ensure_ascii=False)
with open(os.path.join(here, "tokenizer_config.json"), "w") as f:
    # A small chat template in the shape of the real ones: role headers, the end token after each turn.
    chat_template = ("{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}"
                     "{% if add_generation_prompt %}assistant:{% endif %}")
    json.dump({"eos_token": "<|endoftext|>", "clean_up_tokenization_spaces": False, "chat_template": chat_template},
              f)
with open(os.path.join(here, "config.json"), "w") as f:
    json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": eos + 1, "hidden_size": 16,
               "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "max_position_embeddings": 128}, f, indent=1)
