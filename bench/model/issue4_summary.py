"""The table of bench/model/issue4_table.sh: each figure as a ratio of llama.cpp's (the issue's reference)
and of the decode bound measured in the same run, with the issue's targets; the last line is JSON.
Usage: issue4_summary.py llama_cpp_reference.json results.jsonl"""
import json
import sys

ORDER = {"15m": 0, "110m": 1, "1b": 2, "f32": 0, "f16": 1, "q8_0": 2, "q4_0": 3}


def cell(value, ratio, target):
    """'  1185.5  1.45x*': the figure, its ratio to llama.cpp's, and a star when under the target."""
    if value is None:
        return "-"
    return f"{value:8.1f} {ratio:5.2f}x{' ' if ratio >= target else '*'}"


def row_of(size, dtype, two, one, base, targets):
    pp, tg = two["pp"]["tokens_per_s"], two["tg"]["tokens_per_s"]
    tg1 = one["tg"]["tokens_per_s"] if one else None
    weights_and_kv = two["decode_weight_mb"] + two["kv_cache_mb"]
    return {
        "size": size,
        "type": dtype,
        "pp512": pp,
        "pp512_vs_llama_cpp": pp / base["pp512"],
        "pp512_target": targets["pp512_f32_f16"] if dtype in ("f32", "f16") else targets["pp512"],
        "tg128": tg,
        "tg128_vs_llama_cpp": tg / base["tg128"],
        "tg128_1t": tg1,
        "tg128_1t_vs_llama_cpp": tg1 / base["tg128_1t"] if one else None,
        "tg128_target": targets["tg128"],
        "tg_share_of_bound": two["tg"]["share_of_bound"],
        "tg_1t_share_of_bound": one["tg"]["share_of_bound"] if one else None,
        "peak_rss_vs_bound": two["peak_rss_mb"] / (weights_and_kv * targets["peak_memory_over_weights_and_kv"]),
        # What the process holds beyond weights and KV cache: its libraries (about 22 MB) and working memory.
        "peak_rss_extra_mb": two["peak_rss_mb"] - weights_and_kv,
    }


def main():
    ref = json.load(open(sys.argv[1]))
    runs = {}
    for line in open(sys.argv[2]):
        j = json.loads(line)
        runs[(j["size"], j["type"], j["threads"])] = j["result"]
    keys = sorted((k for k in runs if k[2] == 2), key=lambda k: (ORDER.get(k[0], 9), ORDER.get(k[1], 9)))
    rows = [
        row_of(size, dtype, runs[(size, dtype, 2)], runs.get((size, dtype, 1)), ref["figures"][size][dtype],
               ref["targets"])
        for size, dtype, _ in keys
    ]
    print(f"{'model':6} {'type':5} {'pp512 2t':>16} {'tg128 2t':>16} {'tg128 1t':>16} "
          f"{'tg/bound 2t 1t':>15} {'peak/bound':>10} {'extra MB':>8}")
    for r in rows:
        share1 = "-" if r["tg_1t_share_of_bound"] is None else f"{r['tg_1t_share_of_bound']:.2f}"
        print(f"{r['size']:6} {r['type']:5} {cell(r['pp512'], r['pp512_vs_llama_cpp'], r['pp512_target']):>16}"
              f" {cell(r['tg128'], r['tg128_vs_llama_cpp'], r['tg128_target']):>16}"
              f" {cell(r['tg128_1t'], r['tg128_1t_vs_llama_cpp'], r['tg128_target']):>16}"
              f" {r['tg_share_of_bound']:8.2f} {share1:>6} {r['peak_rss_vs_bound']:10.2f}"
              f" {r['peak_rss_extra_mb']:8.1f}")
    print("(* under the issue's target: pp512 1.5x for f32/f16 and 1.0x for the others, tg128 1.1x;"
          " peak/bound at most 1)")
    print(json.dumps({"issue4_table": rows}))


main()
