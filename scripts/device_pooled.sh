#!/usr/bin/env bash
# Pooled generators on the GPU (docs/POOLED.md), in one device call: builds the CUDA checks and
# the CLI side by side, runs the GPU checks (STEPS "test": the pooled tape's group and the flat
# tape's, whose code the pooled one shares; "testall": every group), then (STEPS "train") trains
# the runs of RUNS side by side with scripts/device_train_generator.sh, BUDGET seconds for them;
# STEPS "catch2" also builds the Catch2 suite and runs the GPU trainer's tests in it.
# STEPS "sfspeed" times self-feed on the GPU (plain, draws on the GPU, draws on the host) before
# the runs: SPEED_ARGS (train's flags for the model and data), SPEED_STEPS.
# From the repository root on the GPU machine, with .debs/ and .carry/fsdd/train carried:
#   device call: carry [".debs", ".carry/fsdd"]
#   STEPS="test train" BUDGET=330 STEPS_TRAIN=3000 \
#     RUNS="pool44 32 1 16 32 4000 --pool 4,4" bash scripts/device_pooled.sh
# DEADLINE=560 instead of BUDGET gives the runs what the build leaves of 560 s (a 600 s call).
# Build outputs go to build-dev/ (git-ignored, kept while the machine stays warm: a second call
# skips what is built). Back in $OUT: test.log, catch2.log and for each run its model, its JSON
# summary and its log.csv (as NAME_log.csv): 8 files for two runs, the most the device tool
# brings back. A failed build prints the end of its log instead.
# A run continued in the next call (the machine still warm: it waits 30 s) starts from the model
# this call left in /tmp/train_out, copied first (the next training clears that folder):
#   cp /tmp/train_out/a.safetensors /tmp/a_init.safetensors && STEPS="train" \
#     RUNS="b 64 2 16 32 4000 --init /tmp/a_init.safetensors ..." bash scripts/device_pooled.sh
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STEPS=${STEPS:-"test train"}
has() { [[ " $STEPS " == *" $1 "* ]]; }
G=Ninja; command -v ninja >/dev/null || G="Unix Makefiles"
export MW_BUILD_DIR=$PWD/build-dev/cli
CK=/tmp/checks; mkdir -p $CK  # logs, copied into $OUT at the end (build logs only when a build fails)
mkdir -p build-dev
# the checks (standalone CUDA build) and the CLI, in parallel
# (only where a step runs them: "catch2" alone gives the 16 cores to the Catch2 build)
cuda_pid=0
if has test || has testall; then
  ( cmake -S kernels/cuda -B build-dev/cuda -G "$G" -DCMAKE_BUILD_TYPE=Release -DMW_CUDA_ARCHITECTURES=90-real &&
    cmake --build build-dev/cuda -j8 --target mw_test_cuda ) > "$CK/build_cuda.log" 2>&1 &
  cuda_pid=$!
fi
cli_pid=0
if has train || has catch2; then
  # (catch2: the Catch2 suite too, for the GPU trainer's tests "[train][cuda]"; the CLI first)
  ( has catch2 && export MW_BUILD_TESTS=ON; . scripts/device_build.sh ) > "$CK/build_cli.log" 2>&1 &
  cli_pid=$!
fi
if [[ $cuda_pid != 0 ]]; then
  wait $cuda_pid || { echo "CUDA build failed"; grep -E -A5 "error|FAILED" "$CK/build_cuda.log" | head -40; exit 1; }
  echo "checks built at $(( $(date +%s) - T0 )) s"
fi
# The GPU checks while the CLI builds; the Catch2 GPU tests (tiny models) beside the training.
# (Their logs wait in /tmp/checks and go to $OUT at the end.)
# (the CLI's rpath names the unpacked .debs' libraries, but not theirs: libsndfile's own)
export LD_LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if has test || has testall; then
  groups=("pooled train" "=train")
  has testall && groups=()
  timeout 300 build-dev/cuda/bin/mw_test_cuda "${groups[@]}" > $CK/test.log 2>&1
  echo "mw_test_cuda rc $? at $(( $(date +%s) - T0 )) s"
  grep -v '^ok ' $CK/test.log | tail -12
  grep '^ok .*pooled' $CK/test.log | head -30
fi
if has catch2; then
  (
    while [[ ! -x $MW_BUILD_DIR/bin/mw_tests ]] && kill -0 $cli_pid 2>/dev/null; do sleep 2; done
    timeout 200 $MW_BUILD_DIR/bin/mw_tests "[train][cuda],[cuda][pooled]" > $CK/catch2.log 2>&1
    echo "mw_tests [train][cuda] [cuda][pooled] rc $? at $(( $(date +%s) - T0 )) s"; tail -4 $CK/catch2.log
  ) > $CK/catch2.txt 2>&1 &
  catch2_pid=$!
  # (sfspeed times the GPU alone: the tests first)
  if has sfspeed; then wait $catch2_pid; cat $CK/catch2.txt; fi
fi
if has sfspeed; then
  # Self-feed's cost on the GPU: SPEED_STEPS (default 150) steps of `train SPEED_ARGS`, plain, then
  # self-fed (--self-feed 0.3) with the draws on the GPU, then with them on the host
  # (MW_SELF_FEED_ON_HOST=1, as before), one after another with the build done and the GPU alone.
  wait $cli_pid
  for mode in plain gpu host; do
    feed=(); [[ $mode != plain ]] && feed=(--self-feed 0.3)
    rm -rf /tmp/sf_$mode.run  # (a warm machine's earlier call left one: train would refuse it)
    MW_SELF_FEED_ON_HOST=$([[ $mode == host ]] && echo 1 || echo 0) \
      $MW_BUILD_DIR/bin/mambawave train --data .carry/fsdd/train ${SPEED_ARGS:-} "${feed[@]}" \
        --steps ${SPEED_STEPS:-150} --out /tmp/sf_$mode.safetensors --run-dir /tmp/sf_$mode.run --device cuda \
        --threads 16 --val-every 1000000 --checkpoint-every 1000000 --no-plot --json \
        > $CK/sfspeed_$mode.json 2> $CK/sfspeed_$mode.log </dev/null
    rc=$?; [[ $rc != 0 ]] && tail -3 $CK/sfspeed_$mode.log
    echo "sfspeed $mode: rc $rc $(python3 -c "import json; j=json.load(open('$CK/sfspeed_$mode.json')); print(round(j['samples_per_second']), 'samples/s,', j['steps_done'], 'steps in', round(j['wall_seconds'], 1), 's')" 2>&1) at $(( $(date +%s) - T0 )) s"
  done
fi
if has train; then
  while [[ ! -x $MW_BUILD_DIR/bin/mambawave ]] && kill -0 $cli_pid 2>/dev/null; do sleep 2; done
  [[ -x $MW_BUILD_DIR/bin/mambawave ]] || { echo "CLI build failed"; tail -30 "$CK/build_cli.log"; }
  echo "CLI built at $(( $(date +%s) - T0 )) s"
  # (into a folder of its own: $OUT gets each run's model, JSON and log.csv, the files that come back)
  TOUT=/tmp/train_out; rm -rf $TOUT
  # DEADLINE: seconds from this script's start by which the runs must end, whatever the build took
  [[ -n ${DEADLINE:-} ]] && BUDGET=$(( DEADLINE - ($(date +%s) - T0) )) && echo "training budget $BUDGET s"
  OUT=$TOUT MW=$MW_BUILD_DIR/bin/mambawave BUDGET=${BUDGET:-300} STEPS=${STEPS_TRAIN:-} FILL=${FILL:-0.75} \
    RUNS=${RUNS:-"pool44 32 1 16 32 4000 --pool 4,4"} bash scripts/device_train_generator.sh
  (cd $TOUT && tar xzf results.tgz && for j in *.json; do
     n=${j%.json}; [[ $n == *_cal ]] && continue
     cp $n.safetensors $j "$OUT/"; cp $n.run/log.csv "$OUT/${n}_log.csv"
   done)
fi
if has catch2 && ! has sfspeed; then wait $catch2_pid; cat $CK/catch2.txt; fi
cp $CK/test.log $CK/catch2.log $CK/sfspeed_*.json "$OUT/" 2>/dev/null
echo "total $(( $(date +%s) - T0 )) s"
