#!/usr/bin/env bash
# The GPU step (kernels/cuda/step.cu) on a GPU machine in one go: builds the standalone
# kernels/cuda/ tree (nvcc and cmake only, no third-party package: see run_device.sh), runs the
# step's CUDA checks (Philox, step effects, step generators, generation with sampling), then
# the step benchmark (S = 1, 64, 1024, 4096; persistent kernel vs CUDA Graph). Logs go to $OUT
# (or /tmp/mwstep-out).
#   bash kernels/cuda/run_step_device.sh [all-tests] [tune] [sanitize]
#     all-tests  also the forward's checks (the whole mw_test_cuda)
#     tune       the benchmark also sweeps streams per block and threads (mw_bench_cuda --step-tune)
#     sanitize   compute-sanitizer memcheck over the step's checks (3 minutes at most)
#     profile    ncu of the step kernel: effect S1 and S4096, generator S1 and S4096
set -uo pipefail
OUT=${OUT:-/tmp/mwstep-out}
B=/tmp/mwcuda
source "$(dirname "${BASH_SOURCE[0]}")/build_standalone.sh"
build_standalone   # env.log, build.log; a failed build ends the script
grep -E "warning" "$OUT/build.log" | head -20

echo "== step checks"
test_rc=0
groups="philox step generate"
[[ " $* " == *" all-tests "* ]] && groups=""
if [[ -z $groups ]]; then
  $B/bin/mw_test_cuda > "$OUT/test_step.log" 2>&1 || test_rc=$?
else
  : > "$OUT/test_step.log"
  for g in $groups; do $B/bin/mw_test_cuda "$g" >> "$OUT/test_step.log" 2>&1 || test_rc=$?; done
fi
grep -v '^ok ' "$OUT/test_step.log"
grep -c '^ok ' "$OUT/test_step.log" | sed 's/^/checks passed: /'

echo "== step benchmark"
mode=--step; [[ " $* " == *" tune "* ]] && mode=--step-tune
$B/bin/mw_bench_cuda $mode 2>&1 | tee "$OUT/bench_step.log"; bench_rc=${PIPESTATUS[0]}

if [[ " $* " == *" sanitize "* ]]; then
  echo "== compute-sanitizer memcheck on the step's checks (3 minutes at most)"
  timeout 180 compute-sanitizer --tool memcheck --print-limit 20 $B/bin/mw_test_cuda step > "$OUT/memcheck_step.log" 2>&1
  echo "memcheck rc $?"; grep -E "ERROR SUMMARY|passed|Invalid|FAIL" "$OUT/memcheck_step.log" | head -20
fi
if [[ " $* " == *" profile "* ]]; then
  echo "== ncu: the step kernel (first launch: 32 samples)"
  for cfg in "effect 1" "effect 4096" "generator 1" "generator 4096"; do
    read -r kind streams <<<"$cfg"
    ncu --clock-control none --kernel-name regex:step_kernel --launch-count 1 --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats \
        --section MemoryWorkloadAnalysis --section InstructionStats \
        $B/bin/mw_bench_cuda --step-one $kind $streams > "$OUT/ncu_step_${kind}_$streams.log" 2>&1
    echo "-- $cfg"
    grep -E "Duration|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Issue Slots Busy|Registers Per|Shared Memory Configuration Size|Stall|Warp Cycles Per Issued|Block Size|Grid Size|Bank|stalled" "$OUT/ncu_step_${kind}_$streams.log" | cut -c1-240 | head -30
  done
fi
echo "tests rc $test_rc, bench rc $bench_rc"
exit $(( test_rc | bench_rc ))
