#!/usr/bin/env bash
# Runs the mlxd benchmark suite (a few minutes) and writes, under OUT_DIR:
#   raw/<suite>.json   Google Benchmark's JSON output,
#   <suite>.json       each figure beside its same-run baseline and the ratio (summarize.py),
#   summary.md         the same as Markdown tables.
# Usage: bench/run_benchmarks.sh [OUT_DIR] [BUILD_DIR]   (defaults: bench/results and build)
# Extra Google Benchmark flags may be passed in BENCH_ARGS, e.g. BENCH_ARGS=--benchmark_filter=threads:1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/results}
build=${2:-$here/../build}
mkdir -p "$out/raw"

# This environment sets OPENBLAS_CORETYPE=Haswell, which makes OpenBLAS use its AVX2 sgemm kernel (about 100
# GFLOP/s per core here, against about 186 for the AVX-512 one). The GEMM comparison is meant against the best
# OpenBLAS kernel, so the benchmark commands, and only they, run with SkylakeX; tests and CI keep Haswell.
# mlxd keeps OpenBLAS single-threaded and splits products over its own pool; the cblas baselines use
# OpenBLAS's threads, which spin for a while after each call and would take a core from the next mlxd call
# unless they sleep at once (OPENBLAS_THREAD_TIMEOUT=4, its minimum).
blas_env=(env OPENBLAS_CORETYPE=SkylakeX OPENBLAS_THREAD_TIMEOUT=4)

# Minimum seconds per benchmark; every iteration also runs the baselines, so wall time is a few times this.
declare -A min_time=([gemm]=1 [matvec]=0.5 [qmatvec]=0.5 [ops]=0.5 [decode]=1 [optim]=1 [sampler]=0.3)

for suite in gemm matvec qmatvec ops decode optim sampler; do
  bin="$build/bin/${suite}_bench"
  if [[ ! -x $bin ]]; then
    echo "missing $bin: build first (cmake --preset release && cmake --build build -j2)" >&2
    exit 1
  fi
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
  "${blas_env[@]}" "$bin" --benchmark_min_time="${min_time[$suite]}" \
    --benchmark_out="$out/raw/$suite.json" --benchmark_out_format=json ${BENCH_ARGS:-}
done

/usr/bin/env python3 "$here/summarize.py" "$out" "$out/raw/gemm.json" "$out/raw/matvec.json" \
  "$out/raw/qmatvec.json" "$out/raw/ops.json" "$out/raw/decode.json" "$out/raw/optim.json" "$out/raw/sampler.json" \
  | tee "$out/summary.md"
