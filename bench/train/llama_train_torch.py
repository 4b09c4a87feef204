#!/usr/bin/python3
"""PyTorch baseline for llama_train_bench: the same Llama training step (forward, mean token loss, backward,
AdamW update) in float32 on random tokens. Prints one JSON object {"threads", "tokens_per_s", "step_s"}.

Usage: llama_train_torch.py THREADS STEPS VOCAB DIM LAYERS HEADS FFN ROWS SEQ
"""
import json
import sys
import time

import torch


def main():
    threads, steps, vocab, dim, n_layers, heads, ffn, rows, seq = map(int, sys.argv[1:10])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hd = dim // heads
    def p(*shape, scale=0.02):
        return (torch.randn(*shape) * scale).requires_grad_(True)
    emb = p(vocab, dim)
    layers = [{"n1": torch.ones(dim, requires_grad=True), "n2": torch.ones(dim, requires_grad=True),
               "q": p(dim, dim), "k": p(dim, dim), "v": p(dim, dim), "o": p(dim, dim),
               "g": p(ffn, dim), "u": p(ffn, dim), "d": p(dim, ffn)} for _ in range(n_layers)]
    norm = torch.ones(dim, requires_grad=True)
    inv_freq = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.arange(seq, dtype=torch.float32)[:, None] * inv_freq
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    mask = torch.full((seq, seq), float("-inf")).triu(1)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rope(x):
        half = hd // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    def step(tokens, labels):
        x = emb[tokens]
        for L in layers:
            a = rms(x, L["n1"])
            q, k, v = [(a @ L[n].T).view(rows, seq, heads, hd).transpose(1, 2) for n in "qkv"]
            q, k = rope(q), rope(k)
            s = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + mask, -1)
            x = x + (s @ v).transpose(1, 2).reshape(rows, seq, dim) @ L["o"].T
            m = rms(x, L["n2"])
            x = x + (torch.nn.functional.silu(m @ L["g"].T) * (m @ L["u"].T)) @ L["d"].T
        logits = rms(x, norm) @ emb.T
        loss = torch.nn.functional.cross_entropy(logits.view(-1, vocab), labels.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    params = [emb, norm] + [t for L in layers for t in L.values()]
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1, foreach=True)
    tokens = torch.randint(0, vocab, (rows, seq))
    labels = torch.randint(0, vocab, (rows, seq))
    step(tokens, labels)
    start = time.perf_counter()
    for _ in range(steps):
        step(tokens, labels)
    elapsed = (time.perf_counter() - start) / steps
    print(json.dumps({"threads": threads, "tokens_per_s": rows * seq / elapsed, "step_s": elapsed}))


if __name__ == "__main__":
    main()
