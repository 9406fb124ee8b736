#!/bin/bash
# Time the CPU fast kernels of git revision REV (A) against the working tree (B), side by side
# in one process: step and 64-sample blocks, for each model file given (standalone/ab_kernels.cpp).
#   scripts/ab_kernels.sh HEAD [--streams 2] presets/ds1.safetensors presets/digits.safetensors
# REV's kernels/fast_impl.inc must fit the working tree's prepared layout (fast_internal.h).
# Needs an AVX-512 CPU and a configured build/ (README).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
rev=$1; shift
mkdir -p build/ab
git show "$rev:kernels/fast_impl.inc" > build/ab/ab_old.inc.new
# only rewrite it when it changed, so ninja does not rebuild for nothing
cmp -s build/ab/ab_old.inc.new build/ab/ab_old.inc 2>/dev/null || mv build/ab/ab_old.inc.new build/ab/ab_old.inc
rm -f build/ab/ab_old.inc.new
cmake --build build --target mw_ab_kernels >/dev/null
echo "A = $rev ($(git rev-parse --short "$rev")), B = the working tree; ns per sample, 10th percentile of 300 runs"
exec build/bin/mw_ab_kernels "$@"
