#!/usr/bin/env bash
# On the GPU machine: is the working tree's trainer faster than a base commit's, and still right?
# Builds the working tree's CLI and mw_tests and a second CLI from BASE (a source tree made here
# with `git archive COMMIT | tar -x -C .carry/base`; carry it, with .debs and .carry/fsdd), runs
# the Catch2 GPU cases of training and the forward on the new build, then times both CLIs' plain
# runs of TRAIN (scripts/device_profile_train.sh, PROFILERS=none) alternating, ROUNDS times, with
# the new one also under --tf32 once. The new CLI's lines split a step's forward and backward
# into the host's waits for the GPU and its own work (train --json's gpu_wait_seconds).
#   bash scripts/device_train_ab.sh       # carry [".debs", ".carry/fsdd", ".carry/base"]
# TRAIN: as device_profile_train.sh takes it (default: both labelled digits presets' recipes).
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/mw-ab}; BASE=${BASE:-.carry/base}; ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT"
[[ -f $BASE/CMakeLists.txt ]] || { echo "BASE=$BASE: no source tree (git archive COMMIT | tar -x -C $BASE)"; exit 1; }
export PATH=/usr/local/cuda/bin:$PATH
( MW_BUILD_DIR=/tmp/bnew MW_BUILD_TESTS=ON . "$here/device_build.sh" > "$OUT/build_new.log" 2>&1 ) &
while [[ ! -f /tmp/deb/.unpacked ]]; do sleep 1; done  # (the .debs unpacked once, by the first build)
rm -rf /tmp/base && cp -r "$BASE" /tmp/base && cp -r .debs /tmp/base/.debs
( cd /tmp/base && MW_BUILD_DIR=/tmp/bbase . scripts/device_build.sh > "$OUT/build_base.log" 2>&1 ) &
wait
for v in new base; do [[ -x /tmp/b$v/bin/mambawave ]] || { echo "the $v CLI did not build:"; tail -20 "$OUT/build_$v.log"; exit 1; }; done
export LD_LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
if [[ -x /tmp/bnew/bin/mw_tests ]]; then
  timeout "${TEST_LIMIT:-150}" /tmp/bnew/bin/mw_tests "[train][cuda],CUDA training tape*,CUDA pooled*,CUDA forward*" \
    > "$OUT/catch2_cuda.log" 2>&1
  echo "Catch2 GPU cases (training, tapes, forward) rc $?: $(tail -2 "$OUT/catch2_cuda.log" | tr '\n' ' ')"
else
  echo "mw_tests did not build:"; grep -B2 -A10 -E "error|FAILED" /tmp/bnew/build_mw_tests.log | head -30
fi
P="--pool 4,4 --d-state 16 --batch 32 --segment 4000 --pad-end 0.5 --label-prefix 32 --label-dropout 0.15 --self-feed 0.3 --lr 2e-3 --lr-warmup 100"
TRAIN=${TRAIN:-"large:$P --d-model 64 --layers 2 --weight-decay 0.02 --speed-perturb 0.9,1.1;small:$P --d-model 32 --layers 1"}
plain() {  # plain NAME CLI TRAIN
  echo "== $1"
  MW=$2 PROFILERS=none TRAIN="$3" OUT="$OUT/ab_$1" bash "$here/device_profile_train.sh" 2>&1 | grep -E "^==|plain"
}
first=${TRAIN%%;*}
for ((r = 1; r <= ROUNDS; r++)); do
  plain "base$r" /tmp/bbase/bin/mambawave "$TRAIN"
  plain "new$r" /tmp/bnew/bin/mambawave "$TRAIN"
  if (( r == 1 )); then
    plain new_tf32 /tmp/bnew/bin/mambawave "${first%%:*}_tf32:${first#*:} --tf32"
  fi
done
nvidia-smi --query-gpu=name --format=csv,noheader
