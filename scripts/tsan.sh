#!/usr/bin/env bash
# Builds the comm tests, the core's thread-pool tests, the stage protocol's and the decode gate's tests with
# ThreadSanitizer and runs them; exits non-zero on a failed test or a reported race.
# Usage: scripts/tsan.sh [BUILD_DIR]   (default build-tsan). Only these targets are built: under TSan
# everything compiles and runs several times slower (about 11 min to build and 11 min to run on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-tsan}"
tests=(comm_unit_test comm_frame_test comm_flow_control_test comm_grpc_test comm_mismatch_test comm_security_test
       comm_failure_test core_test dist_protocol_test dist_plan_test)
targets=("${tests[@]}" comm_worker)
# core_test only runs what exercises the pool: the determinism tests (pool resizes, parallel_for, every op at
# 1 and 2 threads, the parallel sgemm pieces), the pool's heads-up and owned runs, cached attention, the
# quantized kernels and the GEMM's tiles; dist_plan_test only the decode gate (its members on threads of their
# own).
declare -A filter=([core_test]="Determinism.*:PoolHeadsUp.*:*OwnedRuns*:Quantized.*:CachedAttention.*:Gemm.*"
                   [dist_plan_test]="DecodeGate.*")

start=$(date +%s)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLXD_SANITIZE=thread \
      -DMLXD_BUILD_BENCH=OFF > /dev/null
cmake --build "$build" -j "${MLXD_BUILD_JOBS:-2}" --target "${targets[@]}"
built=$(date +%s)

# A report makes the binary exit non-zero (66); history_size=4 keeps old stacks restorable, so a race inside
# gRPC's threads is matched by tests/tsan.supp instead of showing up as "[failed to restore the stack]".
export TSAN_OPTIONS="suppressions=$root/tests/tsan.supp history_size=4 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
failed=()
for t in "${tests[@]}"; do
  echo "== $t"
  if ! "$build/bin/$t" --gtest_brief=1 --gtest_filter="${filter[$t]:-*}"; then failed+=("$t"); fi
done
echo "tsan: built in $((built - start)) s, tests ran in $(($(date +%s) - built)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "tsan: FAILED: ${failed[*]}"
  exit 1
fi
echo "tsan: all passed, no race reported"
