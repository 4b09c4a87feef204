#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the test suite with CTest; prints CTest's summary.
# Usage: scripts/test.sh [extra ctest arguments, e.g. -L unit or -LE slow]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh" release
cd "$root/build"
ctest --output-on-failure --timeout 600 -j "${MLXD_TEST_JOBS:-2}" "$@"
