#!/usr/bin/env bash
# The CUDA checks and the scan benchmarks on the GPU machine, short enough to run beside a
# training run in the same device call: the standalone build of kernels/cuda/, every group of
# mw_test_cuda (the float64 reference, the scan with fp32 and bf16 inputs, the training tape),
# compute-sanitizer memcheck on the scan and tape groups, the scan rows of mw_bench_cuda, and
# the Catch2 suite's GPU cases (scripts/device_build.sh with MW_BUILD_TESTS=ON; its .debs).
# Logs in $OUT/check_*.log; a summary on stdout.
#   bash scripts/device_check.sh            (from the repository root, on the GPU machine)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=/tmp/mwcuda
if [[ ${CHECK:-1} != catch2 ]]; then  # CHECK=catch2: only the Catch2 part (last)
G=Ninja; command -v ninja >/dev/null || G="Unix Makefiles"
if ! { cmake -S kernels/cuda -B $B -G "$G" -DCMAKE_BUILD_TYPE=Release && cmake --build $B -j16; } >"$OUT/check_build.log" 2>&1; then
  grep -E "error|FAILED" "$OUT/check_build.log" | head -30; exit 1
fi
echo "== mw_test_cuda (every group)"
timeout 300 $B/bin/mw_test_cuda >"$OUT/check_test.log" 2>&1; echo "rc $?"
grep -v '^ok ' "$OUT/check_test.log" | head -40
grep -E 'bf16 .* vs unrounded' "$OUT/check_test.log" | sort -k14 -g | tail -3
echo "== compute-sanitizer memcheck: scan and train groups"
for g in scan train; do
  timeout 150 compute-sanitizer --tool memcheck --print-limit 10 $B/bin/mw_test_cuda $g >"$OUT/check_memcheck_$g.log" 2>&1
  echo "$g rc $?: $(grep -E 'ERROR SUMMARY' "$OUT/check_memcheck_$g.log" | tail -1) $(tail -1 "$OUT/check_memcheck_$g.log")"
done
echo "== scan benchmarks (fp32 variants 2 and 1, bf16)"
for shape in "1 128 16 1048576" "16 1536 16 4096" "1 256 16 16777216"; do
  timeout 60 $B/bin/mw_bench_cuda --scan $shape 2>&1 | grep -E '^scan|copy' | tee -a "$OUT/check_bench.log"
done
fi
echo "== the Catch2 suite's GPU cases"
MW_BUILD_DIR=/tmp/b2 MW_BUILD_TESTS=ON . scripts/device_build.sh >"$OUT/check_catch2_build.log" 2>&1
grep -E "error|FAILED" "$OUT/check_catch2_build.log" | head -20
if [[ -x /tmp/b2/bin/mw_tests ]]; then
  timeout ${CATCH2_LIMIT:-300} /tmp/b2/bin/mw_tests "[cuda],[lti]" >"$OUT/check_catch2.log" 2>&1
  echo "catch2 (every GPU case, the LTI cases) rc $?"; tail -4 "$OUT/check_catch2.log"
else
  echo "mw_tests did not build:"; grep -B2 -A12 -E "error|FAILED" /tmp/b2/build_mw_tests.log | head -60
fi
