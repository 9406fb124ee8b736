#!/usr/bin/env bash
# Build, check and time the CUDA path on a GPU machine in one go (the standalone build of
# kernels/cuda/, so no third-party package is needed there). Logs go to $OUT (or /tmp/mwcuda-out).
#   bash kernels/cuda/run_device.sh [seconds of audio for the model bench, default 3600]
#        [sanitize] [racecheck] [profile] [profile-model]
set -uo pipefail
OUT=${OUT:-/tmp/mwcuda-out}
B=/tmp/mwcuda
source "$(dirname "${BASH_SOURCE[0]}")/build_standalone.sh"
build_standalone   # env.log, build.log; a failed build ends the script
echo "== tests"
$B/bin/mw_test_cuda > "$OUT/test.log" 2>&1; test_rc=$?
grep -v '^ok ' "$OUT/test.log"
echo "== bench"
$B/bin/mw_bench_cuda --seconds "${1:-3600}" 2>&1 | tee "$OUT/bench.log"; bench_rc=${PIPESTATUS[0]}
if [[ " $* " == *" sanitize "* ]]; then
  echo "== compute-sanitizer memcheck on the tests (2 minutes at most)"
  timeout 120 compute-sanitizer --tool memcheck --print-limit 20 $B/bin/mw_test_cuda > "$OUT/memcheck.log" 2>&1
  echo "memcheck rc $?"; grep -E "ERROR SUMMARY|passed|Invalid|FAIL" "$OUT/memcheck.log" | head -20
fi
if [[ " $* " == *" racecheck "* ]]; then
  echo "== compute-sanitizer racecheck on the tests (90 seconds at most)"
  timeout 90 compute-sanitizer --tool racecheck --racecheck-report hazard --print-limit 20 $B/bin/mw_test_cuda > "$OUT/racecheck.log" 2>&1
  echo "racecheck rc $?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed|Race|hazard|FAIL" "$OUT/racecheck.log" | head -20
fi
if [[ " $* " == *" profile "* ]]; then
  echo "== ncu: the scan's kernels (variants 2 and 1), B1 E128 N16 L2^20"
  ncu --clock-control none --kernel-name regex:"scan_tiles|combine" --launch-count 5 --section SpeedOfLight \
      --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats \
      --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section InstructionStats \
      $B/bin/mw_bench_cuda --scan 1 128 16 1048576 --reps 1 > "$OUT/ncu_scan.log" 2>&1
  grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Executed Instructions  |Issue Slots Busy|Waves Per SM" "$OUT/ncu_scan.log" | head -60
  cuobjdump -sass $B/CMakeFiles/mw_kernels_cuda.dir/scan.cu.o > "$OUT/scan_sass.txt" 2>&1 || true
fi
if [[ " $* " == *" profile-model "* ]]; then
  echo "== ncu: one layer of the D64x8 model (one segment of 2^22 samples)"
  ncu --clock-control none --launch-skip 111 --launch-count 14 --section SpeedOfLight \
      $B/bin/mw_bench_cuda --model 64 8 --seconds 87.381 > "$OUT/ncu_model.log" 2>&1
  grep -E "^  [a-zA-Z_].*\(|Duration|Memory Throughput|Compute \(SM\) Throughput" "$OUT/ncu_model.log" | head -70
fi
echo "tests rc $test_rc, bench rc $bench_rc"
exit $(( test_rc | bench_rc ))
