#!/usr/bin/env bash
# The CUDA scan, side by side: the checkout's kernels against the same with a candidate patch
# (or any two trees), built, disassembled and timed in one device call, so that both run on the
# same GPU in the same minutes.
#   bash scripts/device_scan_ab.sh            (from the repository root, on the GPU machine)
# Trees: BASE_TREE (default: the checkout, ".") and NEW_TREE (default: a copy of the checkout's
# kernels/, model/ and tests/ in /tmp/ab_tree_new with PATCH applied; PATCH defaults to
# scripts/scan_ab/scan_v3_fewer_instructions.patch). A tree of another revision can be carried,
# e.g. `git archive <rev> kernels model tests | tar -x -C .carry/base` here and
# BASE_TREE=.carry/base with carry [".carry/base"]. The new tree is built whole (mw_test_cuda
# too), the old one for mw_bench_cuda only, both for sm_90 alone.
# Steps (STEPS, default "build sass bench"): build; sass (the SASS of scan_sequences<8, 2,
# float> from both, in $OUT/sass.tar.gz); ncu (InstructionStats, WarpStateStats, SchedulerStats
# and the pipes of scan_sequences at the training shape, both); bench (mw_bench_cuda --scan on
# SHAPES, old and new interleaved ROUNDS times; with OPTS, the new one once per value of
# MW_SCAN_OPT (the patch's experimental switches) at the training shape); test (every group of
# mw_test_cuda on the new tree). Logs and a table in $OUT (7 files: build.log, sass.tar.gz,
# ncu_base.log, ncu_new.log, bench.log, table.txt, test.log). About 7 minutes with OPTS of 9
# values and 2 rounds (estimate: not yet run).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BASE_TREE=${BASE_TREE:-.}; NEW_TREE=${NEW_TREE:-}
PATCH=${PATCH:-scripts/scan_ab/scan_v3_fewer_instructions.patch}
STEPS=${STEPS:-"build sass bench"}
SHAPES=${SHAPES:-"16 1536 16 4096|64 256 16 4096|16 512 16 16384|1 128 16 1048576"}
ROUNDS=${ROUNDS:-2}
OPTS=${OPTS:-}
BB=/tmp/ab_base; BN=/tmp/ab_new
has() { [[ " $STEPS " == *" $1 "* ]]; }
G=Ninja; command -v ninja >/dev/null || G="Unix Makefiles"

if has build; then
  if [[ -z $NEW_TREE ]]; then
    NEW_TREE=/tmp/ab_tree_new; rm -rf $NEW_TREE; mkdir -p $NEW_TREE
    cp -r kernels model tests $NEW_TREE/
    (cd $NEW_TREE && { git apply "$OLDPWD/$PATCH" 2>/dev/null || patch -p1 -s < "$OLDPWD/$PATCH"; }) ||
      { echo "$PATCH does not apply"; exit 1; }
  fi
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > "$OUT/build.log" 2>&1
  ( cmake -S "$BASE_TREE/kernels/cuda" -B $BB -G "$G" -DCMAKE_BUILD_TYPE=Release -DMW_CUDA_ARCHITECTURES=90-real &&
    cmake --build $BB -j8 --target mw_bench_cuda ) > /tmp/ab_build_base.log 2>&1 &
  ( cmake -S "$NEW_TREE/kernels/cuda" -B $BN -G "$G" -DCMAKE_BUILD_TYPE=Release -DMW_CUDA_ARCHITECTURES=90-real &&
    cmake --build $BN -j8 ) > /tmp/ab_build_new.log 2>&1 &
  wait
  for w in base new; do echo "== build $w"; cat /tmp/ab_build_$w.log; done >> "$OUT/build.log"
  for b in $BB $BN; do [[ -x $b/bin/mw_bench_cuda ]] || { echo "build failed: $b"; grep -E -A5 "error|FAILED" "$OUT/build.log" | head -40; exit 1; }; done
  echo "built ($SECONDS s)"
fi

if has sass; then
  mkdir -p /tmp/sass
  for w in base new; do
    b=$([[ $w == base ]] && echo $BB || echo $BN)
    cuobjdump -sass $b/CMakeFiles/mw_kernels_cuda.dir/scan.cu.o > /tmp/sass/all_$w.sass 2>&1
    awk '/Function :/ { keep = index($0, "scan_sequencesILi8ELi2Ef") > 0 } keep' /tmp/sass/all_$w.sass > /tmp/sass/seq82_$w.sass
    echo "sass $w: $(grep -c 'Function :' /tmp/sass/seq82_$w.sass) functions, $(wc -l < /tmp/sass/seq82_$w.sass) lines"
  done
  tar -czf "$OUT/sass.tar.gz" -C /tmp/sass seq82_base.sass seq82_new.sass
fi

if has ncu; then
  for w in base new; do
    b=$([[ $w == base ]] && echo $BB || echo $BN)
    timeout 200 ncu --clock-control none --kernel-name regex:scan_sequences --launch-count 1 \
      --section SpeedOfLight --section InstructionStats --section WarpStateStats --section SchedulerStats \
      --section ComputeWorkloadAnalysis --section Occupancy \
      --metrics smsp__inst_executed.sum,smsp__inst_executed_pipe_xu.sum \
      $b/bin/mw_bench_cuda --scan 16 1536 16 4096 --reps 1 > "$OUT/ncu_$w.log" 2>&1
    echo "ncu $w rc $?"
    grep -E "Duration|Executed Instructions  |Issue Slots Busy|Issued Ipc|No Eligible|Active Warps Per|Eligible Warps|Warp Cycles Per Issued|inst_executed" "$OUT/ncu_$w.log" | head -20
  done
fi

if has bench; then
  IFS='|' read -ra shapes <<< "$SHAPES"
  for r in $(seq 1 "$ROUNDS"); do
    for shape in "${shapes[@]}"; do
      for w in base new; do
        b=$([[ $w == base ]] && echo $BB || echo $BN)
        echo "## round $r $w $shape" >> "$OUT/bench.log"
        timeout 120 $b/bin/mw_bench_cuda --scan $shape >> "$OUT/bench.log" 2>&1
      done
    done
    if [[ -n $OPTS ]]; then
      for o in $OPTS; do
        echo "## round $r opt$o 16 1536 16 4096" >> "$OUT/bench.log"
        MW_SCAN_OPT=$o timeout 120 $BN/bin/mw_bench_cuda --scan 16 1536 16 4096 >> "$OUT/bench.log" 2>&1
      done
    fi
  done
  echo "bench done ($SECONDS s)"
  # the table: one line per run, variant 0 (the default) and the copy bandwidth of that run
  awk '/^## /{tag=$0; sub(/^## /,"",tag)} /copy:/{match($0,/= [0-9]+ GB\/s/); copy=substr($0,RSTART+2,RLENGTH-7)}
       /^scan v0 /{ms=$0; sub(/.*\): /,"",ms); sub(/; floors.*/,"",ms); printf "%-40s %s copy %5s GB/s  %s\n", tag, index($0, " bf16 ") ? "bf16" : "fp32", copy, ms}' "$OUT/bench.log" | tee "$OUT/table.txt"
fi

if has test; then
  timeout 400 $BN/bin/mw_test_cuda > "$OUT/test.log" 2>&1; echo "mw_test_cuda rc $?"
  grep -v '^ok ' "$OUT/test.log" | tail -15
fi
echo "total $SECONDS s"
