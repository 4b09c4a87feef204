#!/usr/bin/env python3
# A command reward for the tests: per JSON line, the number of words of the completion, plus 0.5 when the
# prompt mentions "lord", plus 0.25 when the completion holds a double quote or a newline (text round-trips).
import json
import sys

for line in sys.stdin:
    sample = json.loads(line)
    completion = sample["completion"]
    score = len(completion.split()) + (0.5 if "lord" in sample["prompt"] else 0.0)
    score += 0.25 if ('"' in completion or "\n" in completion) else 0.0
    print(score)
