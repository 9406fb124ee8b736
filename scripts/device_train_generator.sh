#!/usr/bin/env bash
# Trains the shipped generator on the device machine (run from the repo root there, with the
# Free Spoken Digit training split carried in .carry/fsdd/train and the .debs in .debs/), on its
# 16 CPU cores or (DEVICE=cuda) its GPU. Writes the model, its log and curves under $OUT.
#   STEPS LIMIT DEVICE DM LAYERS DS BATCH SEGMENT LR VAL_EVERY   (defaults: the shipped recipe)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
exec > >(tee $OUT/train_generator.log) 2>&1
nproc; lscpu | grep "Model name"
. scripts/device_build.sh || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null
STEPS=${STEPS:-900}
time timeout ${LIMIT:-500} $MW train --data .carry/fsdd/train --out $OUT/digits.safetensors --run-dir $OUT/digits.run \
  --d-model ${DM:-32} --layers ${LAYERS:-6} --d-state ${DS:-16} --batch ${BATCH:-32} --segment ${SEGMENT:-4000} \
  --steps $STEPS --lr ${LR:-3e-3} --lr-warmup 50 --val-every ${VAL_EVERY:-100} --checkpoint-every 100000 \
  --threads 16 --device ${DEVICE:-cpu} --no-plot </dev/null | tr '\r' '\n' | grep -v "^train \[" | tail -40
ls -la $OUT $OUT/digits.run
