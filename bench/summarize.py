#!/usr/bin/env python3
"""Turns Google Benchmark JSON from the mlxd benchmarks into figures beside their same-run baselines.

Each benchmark reports its figure as a counter named by its unit (GFLOPS, GBps, tokens_per_s or Mlogits_per_s),
each baseline as <baseline>_<unit> and the ratio as ratio_<baseline> (see paired_timing.h). For every raw file
NAME.json this writes OUT_DIR/NAME.json with one record per benchmark and prints a Markdown table.

Usage: summarize.py OUT_DIR RAW.json [RAW.json ...]
"""
import json
import os
import re
import sys

UNITS = ("GFLOPS", "GBps", "tokens_per_s", "Mlogits_per_s")

# (benchmark name pattern, baseline, minimum ratio): the targets the benchmarks were written against.
TARGETS = [
    (r"^gemm/(square_(1024|2048|4096)|llama_)", "cblas", 0.9),
    (r"^matvec/[^/]+/(4096|8192)x", "read", 0.8),
]


def target_for(name):
    for pattern, baseline, min_ratio in TARGETS:
        if re.search(pattern, name):
            return baseline, min_ratio
    return None


def pick_runs(benchmarks):
    """The median of repetitions when the run had them, else the plain iterations."""
    medians = [b for b in benchmarks if b.get("aggregate_name") == "median"]
    if medians:
        return medians, lambda b: b["run_name"]
    return [b for b in benchmarks if b.get("run_type", "iteration") == "iteration"], lambda b: b["name"]


def summarize(raw):
    runs, name_of = pick_runs(raw.get("benchmarks", []))
    records = []
    for b in runs:
        unit = next((u for u in UNITS if u in b), None)
        if unit is None:
            continue
        name = re.sub(r"/real_time$", "", name_of(b))
        record = {"benchmark": name, "unit": unit, "value": b[unit], "label": b.get("label", ""), "baselines": {}}
        for key, ratio in b.items():
            if key.startswith("ratio_"):
                base = key[len("ratio_"):]
                record["baselines"][base] = {"value": b.get(f"{base}_{unit}"), "ratio": ratio}
        target = target_for(name)
        if target and target[0] in record["baselines"]:
            base, min_ratio = target
            record["target"] = {"baseline": base, "min_ratio": min_ratio,
                                "met": record["baselines"][base]["ratio"] >= min_ratio}
        records.append(record)
    context = {k: v for k, v in raw.get("context", {}).items() if k not in ("caches",)}
    return {"context": context, "results": records}


def table(summary):
    rows = summary["results"]
    bases = sorted({b for r in rows for b in r["baselines"]})
    head = ["benchmark", "value"] + [f"{b}" for b in bases] + [f"ratio vs {b}" for b in bases] + ["target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["benchmark"], f'{r["value"]:.1f} {r["unit"]}']
        cells += [f'{r["baselines"][b]["value"]:.1f}' if b in r["baselines"] else "" for b in bases]
        cells += [f'{r["baselines"][b]["ratio"]:.2f}' if b in r["baselines"] else "" for b in bases]
        t = r.get("target")
        cells.append("" if not t else f'>= {t["min_ratio"]} vs {t["baseline"]}: ' + ("met" if t["met"] else "MISSED"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for path in argv[2:]:
        with open(path) as f:
            summary = summarize(json.load(f))
        name = os.path.splitext(os.path.basename(path))[0]
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        print(f"## {name}\n\n{table(summary)}\n")


if __name__ == "__main__":
    main(sys.argv)
