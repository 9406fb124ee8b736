#!/usr/bin/env bash
# scripts/device_profile_train.sh's TRAIN mode on the CPU, with a stand-in for Nsight Compute:
# the plain run's timing line, the profiled run started with the capture range off and
# MW_PROFILE_STEPS set for the steps asked, its CSV summed per step against the wall time
# (scripts/ncu_summary.py), and the refusals. A fault here would otherwise cost GPU time.
#   tests/profile_train_test.sh path/to/mambawave REPO_ROOT
set -euo pipefail
MW=$(realpath "$1")
ROOT=$(realpath "$2")
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"   # $PY, a scratch folder, check, refuse
PROFILE=$ROOT/scripts/device_profile_train.sh

tiny_fsdd_clips clips 3
# The stand-in: notes how it was called, runs the program, prints two steps' worth of launches
# (4 of 5 ms, 2 of 1 ms: 11 ms a step), its durations' digits grouped as the real ncu prints them.
mkdir -p fakebin
cat >fakebin/ncu <<'NCU'
#!/usr/bin/env bash
echo "profile-steps=${MW_PROFILE_STEPS:-} args=$*" >>"$NCU_LOG"
prog=(); seen=0
for a in "$@"; do
  if (( seen )); then prog+=("$a"); elif [[ $a == */mambawave ]]; then seen=1; prog+=("$a"); fi
done
"${prog[@]}" >&2 || exit $?
echo '"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","gpu__time_duration.sum"'
echo '"","","","","","","","nsecond"'
for i in 1 2 3 4; do echo "\"$i\",\"1\",\"mambawave\",\"h\",\"void scan_backward<8>(float const*, int)\",\"1\",\"7\",\"5,000,000\""; done
for i in 5 6; do echo "\"$i\",\"1\",\"mambawave\",\"h\",\"sgemm_64x32\",\"1\",\"7\",\"1,000,000\""; done
NCU
# A stand-in for Nsight Systems: `profile` runs the program; `stats` writes two steps' traces:
# the GPU busy 6 of each 10 ms; idle 4 ms while the host waited in cudaStreamSynchronize, and
# 4 ms while it made no CUDA call.
cat >fakebin/nsys <<'NSYS'
#!/usr/bin/env bash
echo "nsys $1 profile-steps=${MW_PROFILE_STEPS:-} args=$*" >>"$NCU_LOG"
base=; prev=
for a in "$@"; do [[ $prev == -o ]] && base=$a; prev=$a; done
case $1 in
  profile)
    prog=(); seen=0
    for a in "$@"; do
      if (( seen )); then prog+=("$a"); elif [[ $a == */mambawave ]]; then seen=1; prog+=("$a"); fi
    done
    touch "$base.nsys-rep"
    exec "${prog[@]}" ;;
  stats)
    { echo 'Start (ns),Duration (ns),CorrId,Name'
      echo '0,4000000,1,k1'; echo '4000000,1000000,2,[CUDA memcpy Host-to-Device]'
      echo '9000000,1000000,3,k2'; echo '10000000,4000000,4,k1'; echo '18000000,2000000,5,k2'
    } >"${base}_cuda_gpu_trace.csv"
    { echo 'Start (ns),Duration (ns),Name,Result'
      echo '0,1000,cudaLaunchKernel,0'; echo '5000000,4000000,cudaStreamSynchronize,0'
      echo '9000000,1000,cudaLaunchKernel,0'
    } >"${base}_cuda_api_trace.csv" ;;
esac
NSYS
chmod +x fakebin/ncu fakebin/nsys
export NCU_LOG=$PWD/ncu.log
FLAGS="--pool 2,2 --d-model 8 --layers 1 --d-state 4 --batch 2 --segment 400 --label-prefix 8 --self-feed 0.3"
run() { env PATH="$PWD/fakebin:$PATH" OUT="$PWD/out" WORK="$PWD/runs" MW="$MW" DEVICE=cpu STEPS=4 DATA=clips "$@" bash "$PROFILE"; }

rc=0; run TRAIN="tiny:$FLAGS" >prof.log 2>&1 || rc=$?
cp prof.log last.out
check "a TRAIN run is timed and profiled (exit $rc)" test $rc -eq 0
check "... the plain run's timing: samples/s and a step's wall time" \
    grep -qE "plain: 4 steps, .* samples/s over the last second \(a step [0-9.]+ ms\)" prof.log
check "... the host's waits for the GPU apart from its own work (none on the CPU)" \
    grep -qE "forward \+ backward [0-9.]+ ms \(the host waiting for the GPU 0.00 ms, its own work [0-9.]+ ms\)" prof.log
check "... the profiler starts with its capture off, on steps 6:7 of a 7-step run" \
    sh -c "grep -q -- '--profile-from-start off' ncu.log && grep -q 'profile-steps=6:7' ncu.log && grep -qE -- '--steps 7( |$)' ncu.log"
check "... the kernels summed per step (11 ms over 3 launches) against the step's wall time" \
    grep -qE "kernels' time per step 11.00 ms over 3 launches; a step's wall time [0-9.]+ ms: the kernels fill [0-9]+% of it" prof.log
check "... each kernel's share, by name" grep -qE "^ +90.9% +10000.0 us/step +2.0 launches/step  void scan_backward<8>" prof.log
check "... then the same steps' timeline under nsys, its capture range the profiler's" \
    sh -c "grep -q 'nsys profile profile-steps=6:7 .*--capture-range=cudaProfilerApi' ncu.log && grep -q 'nsys stats' ncu.log"
check "... the GPU's busy and idle time a step" \
    grep -q "captured span 10.00 ms a step; the GPU busy 6.00 ms (60%), idle 4.00 ms" prof.log
check "... the copies apart from the kernels" grep -qE "copy Host-to-Device +0.50 ms a step" prof.log
check "... each long gap with what the host did: waited, or made no CUDA call" \
    sh -c "grep -qE \"4000.0 us  after 'k1' before 'k2': none \\(host work\\)\" prof.log &&
           grep -qE \"4000.0 us  after '.CUDA memcpy Host-to-Device.' before 'k2': cudaStreamSynchronize\" prof.log"

: >ncu.log
rc=0; run TRAIN="tiny:$FLAGS" CAPTURE=2:4 >prof2.log 2>&1 || rc=$?
cp prof2.log last.out
check "CAPTURE=2:4: steps 2..4 captured, the CSV divided by 3 (exit $rc)" \
    sh -c "test $rc -eq 0 && grep -q 'profile-steps=2:4' ncu.log && grep -q \"kernels' time per step 7.33 ms\" prof2.log"

: >ncu.log
rc=0; run TRAIN="tiny:$FLAGS" PROFILERS=none >prof3.log 2>&1 || rc=$?
cp prof3.log last.out
check "PROFILERS=none: the plain timing alone, no profiler started (exit $rc)" \
    sh -c "test $rc -eq 0 && grep -q 'plain: 4 steps' prof3.log && test ! -s ncu.log"

refuse "an entry without NAME: refused before any run" 1 'expected NAME:FLAGS' run TRAIN="tiny:$FLAGS;$FLAGS"
refuse "CAPTURE out of order: refused" 1 'CAPTURE=5:3' run TRAIN="tiny:$FLAGS" CAPTURE=5:3
refuse "a missing data folder: refused, named" 1 'DATA=nosuch' run TRAIN="tiny:$FLAGS" DATA=nosuch
refuse "train itself refuses a malformed MW_PROFILE_STEPS, naming it" 1 'MW_PROFILE_STEPS|"7"' \
    env MW_PROFILE_STEPS=7 "$MW" train --data clips --out bad.safetensors --run-dir bad.run $FLAGS --steps 1
printf '"ID","Kernel Name","gpu__time_duration.sum"\n' >empty.csv
refuse "ncu_summary.py: a CSV with no durations: refused, named" 1 'empty.csv|no kernel durations' \
    $PY "$ROOT/scripts/ncu_summary.py" empty.csv --steps 2

# The device scripts' view of MW_HOST_TRACE's table (train prints it at exit on a GPU only): the
# two header lines, the first ROWS sites and the totals, each led by PREFIX; train's own lines not.
{ echo "train: done"; echo "host trace over 80 steps, per step (ms): ..."; echo "  own work  wait  waits  where"
  for i in $(seq 1 20); do echo "  $((21 - i)).000  1.000  1.0  f.cu:$i"; done; echo "  210.000  20.000  total"
} >trace.err
awk -v rows=12 -v prefix="x: " -f "$ROOT/scripts/host_trace_top.awk" trace.err >trace.top
check "host_trace_top.awk: the headers, the first 12 sites and the totals, prefixed" sh -c \
    "test \$(wc -l <trace.top) -eq 15 && head -1 trace.top | grep -q '^x: host trace over 80' &&
    grep -q 'x:   9.000  1.000  1.0  f.cu:12\$' trace.top && ! grep -q 'f.cu:13\$' trace.top &&
    tail -1 trace.top | grep -q '^x:   210.000  20.000  total\$' && ! grep -q 'train: done' trace.top"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
