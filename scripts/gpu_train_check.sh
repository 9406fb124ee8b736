#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry .debs from scripts/device_debs.sh and
# .carry from scripts/device_effect_subset.sh): builds the CLI and the Catch2 tests with CUDA,
# runs the GPU trainer's tests, then fine-tunes the shipped ts9 preset on the capture subset the
# same way on the GPU and on the CPU (every core) for STEPS_CMP steps to compare the time per
# step, and finally (FINETUNE_STEPS > 0) a longer fine-tune on the GPU. Logs and models go to $OUT.
#   STEPS_CMP=200 FINETUNE_STEPS=0 FINETUNE_EFFECT=ts9 FINETUNE_LR=1e-3 bash scripts/gpu_train_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_train.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
MW_BUILD_TESTS=ON . scripts/device_build.sh || exit 1
echo "== the GPU trainer's tests"
/tmp/b/bin/mw_tests "[train][cuda]" "CUDA training tape*" 2>&1 | tail -4
STEPS_CMP=${STEPS_CMP:-200}
common=(--manifest .carry/fx/manifest.json --batch 16 --segment 4096 --warmup 1024 --lr-warmup 100
        --checkpoint-every 100000 --no-plot)
for dev in cuda cpu; do
  echo "== ts9 fine-tune, $STEPS_CMP steps, --device $dev"
  /usr/bin/time -f "wall %e s" $MW train "${common[@]}" --effect ts9 --init presets/ts9.safetensors --device $dev \
    --steps "$STEPS_CMP" --lr 1e-3 --val-every "$STEPS_CMP" --out "$OUT/cmp_$dev.safetensors" \
    --run-dir "$OUT/cmp_$dev.run" </dev/null 2>&1 | tr '\r' '\n' | grep -v "^train \[" | tail -5
  tail -2 "$OUT/cmp_$dev.run/log.csv"
done
if [[ ${FINETUNE_STEPS:-0} -gt 0 ]]; then
  e=${FINETUNE_EFFECT:-ts9}
  echo "== $e fine-tune on the GPU, $FINETUNE_STEPS steps at lr ${FINETUNE_LR:-1e-3}"
  timeout "${FINETUNE_LIMIT:-400}" $MW train "${common[@]}" --effect "$e" --init "presets/$e.safetensors" \
    --device cuda --steps "$FINETUNE_STEPS" --lr "${FINETUNE_LR:-1e-3}" --val-every 1000 \
    --out "$OUT/$e.finetune.safetensors" --run-dir "$OUT/$e.finetune.run" </dev/null 2>&1 | tr '\r' '\n' |
    grep -v "^train \[" | tail -6
fi
(cd "$OUT" && find . -name checkpoint -prune -o -type f -print | grep -v gpu_train.log |
  tar czf results.tgz --exclude=checkpoint -T - 2>/dev/null; find . -mindepth 1 -maxdepth 1 ! -name results.tgz ! -name gpu_train.log -exec rm -rf {} +)
