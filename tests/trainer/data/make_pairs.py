#!/usr/bin/env python3
"""Writes pairs.jsonl: preference pairs from corpus.txt for the reward-model and DPO tests.

Each verse of at least 8 words gives one pair: the prompt is its first 4 words, the chosen response the
rest of the verse as written, the rejected response the same words in a seeded random order. A model of
English prose (the default model was trained on this text) can tell them apart, so a reward model or DPO
has a signal to learn within a few dozen steps. Run: python3 make_pairs.py > pairs.jsonl
"""
import json
import os
import random

here = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(7)
with open(os.path.join(here, "corpus.txt"), encoding="utf-8") as f:
    for line in f:
        words = line.split()
        if len(words) < 8:
            continue
        prompt, rest = words[:4], words[4:]
        shuffled = rest[:]
        while shuffled == rest:
            rng.shuffle(shuffled)
        print(json.dumps({"prompt": " ".join(prompt), "chosen": " " + " ".join(rest),
                          "rejected": " " + " ".join(shuffled)}))
