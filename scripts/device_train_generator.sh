#!/usr/bin/env bash
# Trains the shipped generator on the device machine's CPU cores (run from the repo root there,
# with the Free Spoken Digit training split carried in .carry/fsdd/train and the .debs in .debs/).
# Writes the model, its log and curves under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
exec > >(tee $OUT/train_generator.log) 2>&1
nproc; lscpu | grep "Model name"
. scripts/device_build.sh || exit 1
STEPS=${STEPS:-900}
time timeout ${LIMIT:-500} $MW train --data .carry/fsdd/train --out $OUT/digits.safetensors --run-dir $OUT/digits.run \
  --d-model ${DM:-32} --layers ${LAYERS:-6} --batch 32 --segment 4000 --steps $STEPS --lr 3e-3 --lr-warmup 50 \
  --val-every 100 --checkpoint-every 100 --threads 16 --no-plot
ls -la $OUT $OUT/digits.run
