#!/usr/bin/env bash
# LTI layers on the GPU (kernels/cuda/scan_lti.cu and the forward, step and tape that run it) in
# one device call: builds the standalone kernels/cuda/ tree and runs the CUDA checks in parallel
# processes (the float64 reference is single-threaded CPU work, so groups share the machine):
# the LTI groups and every other group (the selective paths share the code that changed).
#   SETS="=lti train;=train"  only these sets of groups (';' between processes, '|' between the
#                             groups of one); SETS=none: no standalone build and no checks
# Options, in any order:
#   memcheck compute-sanitizer memcheck over the LTI groups, beside the checks
#   bench    mw_bench_cuda: the whole-model forward and a training step, selective vs all LTI
#   catch2   builds the full tree with its tests (scripts/device_build.sh and the .debs carried
#            in .debs/; in the background from the start), runs mw_tests
#            "[lti],CUDA training tape*", and trains an all-LTI effect with
#            `train --device cuda --lti all`, then renders it on the GPU and on the CPU step
# Logs in $OUT (at most 8 files come back from a device call): build.log, tests.log, and the
# options' memcheck.log, bench.log, catch2.log, train.log. DEADLINE (seconds, default 285): the
# last steps are cut short to end by then.
set -uo pipefail
OUT=${OUT:-/tmp/mwlti-out}
mkdir -p "$OUT"
B=/tmp/mwcuda
T0=$SECONDS
ARGS=" $* "
SETS=${SETS:-}
stamp() { echo "[$((SECONDS - T0)) s] $*"; }
left() { local l=$(( ${DEADLINE:-285} - (SECONDS - T0) )); echo $(( l > 5 ? l : 5 )); }
has() { [[ $ARGS == *" $1 "* ]]; }
rc_all=0
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
  nvcc --version | tail -1
} > "$OUT/build.log" 2>&1

# In a subshell, so that it can run in the background.
full_build() { (MW_BUILD_DIR=/tmp/b2 MW_BUILD_TESTS=ON . scripts/device_build.sh > /tmp/catch2_build.log 2>&1); }

standalone_checks() {
  local G=Ninja; command -v ninja > /dev/null || G="Unix Makefiles"
  if ! { cmake -S kernels/cuda -B $B -G "$G" -DCMAKE_BUILD_TYPE=Release && cmake --build $B -j16; } >> "$OUT/build.log" 2>&1; then
    grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1
  fi
  stamp "standalone build done"
  if has memcheck; then
    timeout "${MEMCHECK_LIMIT:-150}" compute-sanitizer --tool memcheck --print-limit 10 $B/bin/mw_test_cuda \
      "=lti segments" "=lti train" "=lti step" > "$OUT/memcheck.log" 2>&1 &
    memcheck_pid=$!
  fi
  # One process per set of groups, each group named exactly.
  local sets=("=lti forward" "=lti segments|=lti step" "=lti train" "=effects|=generators" "=segments|=scan"
              "=step effects|=step generators" "=train" "=philox|=generate|=generate vs CPU step")
  [[ -n $SETS ]] && IFS=';' read -ra sets <<< "$SETS"
  local pids=() i rc words
  for i in "${!sets[@]}"; do
    IFS='|' read -ra words <<< "${sets[$i]}"
    timeout "${TEST_LIMIT:-200}" $B/bin/mw_test_cuda "${words[@]}" > "/tmp/lti_test_$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!sets[@]}"; do
    wait "${pids[$i]}"; rc=$?; rc_all=$((rc_all | rc))
    { echo "=== ${sets[$i]}: rc $rc"; cat "/tmp/lti_test_$i.log"; } >> "$OUT/tests.log"
  done
  stamp "checks done (rc $rc_all)"
  grep -E '^FAIL|passed, .* failed|^===' "$OUT/tests.log"
  echo "worst relative errors of the LTI checks:"
  grep -E '^ok ' "$OUT/tests.log" | grep -iE 'lti|mixed' | sed -E 's/.* rel ([0-9.e+-]+) .*/\1 &/' | sort -g |
    tail -5 | cut -c1-190
  if has memcheck; then
    wait $memcheck_pid
    stamp "memcheck rc $? (124: stopped at its limit): $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)" \
          "$(grep -c '^ok ' "$OUT/memcheck.log") checks ok, $(grep -c '^FAIL' "$OUT/memcheck.log") failed"
    grep -E "Invalid|out of bounds|^FAIL" "$OUT/memcheck.log" | head -10
  fi
  if has bench; then
    for lti in "" --lti; do
      timeout 60 $B/bin/mw_bench_cuda $lti --seconds 600 --model 16 4 2>&1 | grep -E '^model' | tee -a "$OUT/bench.log"
      timeout 60 $B/bin/mw_bench_cuda $lti --train-one 16 4 16 4096 2>&1 | grep -E '^train' | tee -a "$OUT/bench.log"
    done
  fi
}

# An all-LTI effect trained on the GPU from tests/train_test.sh's synthetic capture, then
# rendered by the GPU forward and by the CPU step: the two renders must agree.
train_cli() {
  local W=/tmp/ltitrain MW=/tmp/b2/bin/mambawave PY=python3
  rm -rf $W; mkdir -p $W
  sed -n "/^cat >mk.py <<'PYEOF'/,/^PYEOF/p" tests/train_test.sh | sed '1d;$d' > $W/mk.py
  python3 -c "import numpy" 2> /dev/null || PY=/opt/torch/.venv/bin/python3
  ( cd $W && $PY mk.py && timeout 60 $MW train --input di.wav --target rec.wav --d-model 8 --layers 2 \
      --d-state 8 --batch 8 --segment 1024 --warmup 256 --lr 5e-3 --lr-warmup 10 --val-every 20 --no-plot \
      --device cuda --lti all --steps 120 --out lti.safetensors --json \
    && $MW info lti.safetensors \
    && $MW render -m lti.safetensors --in di.wav --out gpu.wav --device cuda \
    && $MW render -m lti.safetensors --in di.wav --out cpu.wav --path step --device cpu \
    && $PY -c "
import numpy as np
def rd(p):
    b = open(p, 'rb').read(); i = b.find(b'data'); return np.frombuffer(b[i + 8:], dtype='<f4')
a, c = rd('gpu.wav'), rd('cpu.wav')
print('render gpu vs cpu step: rel', np.linalg.norm(a - c) / np.linalg.norm(c), 'samples', len(a), len(c))" )
}

if has catch2 && [[ $SETS != none ]]; then full_build & catch2_pid=$!; fi
if [[ $SETS != none ]]; then standalone_checks; fi

if has catch2; then
  if [[ $SETS == none ]]; then full_build; else wait $catch2_pid; fi
  cp /tmp/catch2_build.log "$OUT/catch2.log"
  # The build's binaries need the .debs' libraries (device_build.sh exported this in its
  # subshell; the rpath does not reach libsndfile's own dependencies such as libFLAC).
  export LD_LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  stamp "full build done: $(tail -1 /tmp/b2/build_mw_tests.log 2> /dev/null)"
  if [[ -x /tmp/b2/bin/mambawave ]]; then train_cli > "$OUT/train.log" 2>&1 & train_pid=$!; fi
  if [[ -x /tmp/b2/bin/mw_tests ]]; then
    timeout "$(left)" /tmp/b2/bin/mw_tests "[lti],CUDA training tape*" >> "$OUT/catch2.log" 2>&1
    stamp "mw_tests [lti],CUDA training tape* rc $?: $(tail -2 "$OUT/catch2.log" | tr '\n' ' ')"
  else
    grep -B2 -A12 -E "error|FAILED" /tmp/b2/build_mw_tests.log 2> /dev/null | head -40
  fi
  if [[ -n ${train_pid:-} ]]; then
    wait $train_pid
    stamp "train --device cuda --lti all, renders: rc $?"; grep -vE '^step|^ *[0-9]+ ' "$OUT/train.log" | tail -14
  fi
fi
exit $rc_all
