#!/usr/bin/env bash
# The effect ablation, run on the device machine's CPU cores: several model shapes trained side
# by side (THREADS each) on the Tube Screamer captures subset in .carry/ts9 (made here by
# scripts/device_effect_subset.sh), same data, steps, seed and schedule. Models and logs land
# in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nproc; lscpu | grep "Model name"
MW_WITH_CUDA=OFF . scripts/device_build.sh >$OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
STEPS=${STEPS:-3000}; THREADS=${THREADS:-4}; LIMIT=${LIMIT:-480}
# name d_model layers d_state
SHAPES=${SHAPES:-"d16x4n16 16 4 16;d16x3n8 16 3 8;d12x3n8 12 3 8;d8x4n8 8 4 8"}
IFS=';' read -ra list <<<"$SHAPES"
pids=()
for s in "${list[@]}"; do
  read -r name dm layers ds <<<"$s"
  timeout $LIMIT $MW train --manifest .carry/ts9/manifest.json --effect ts9 --out $OUT/$name.safetensors \
    --run-dir $OUT/$name.run --d-model $dm --layers $layers --d-state $ds --batch 16 --segment 4096 \
    --warmup 1024 --steps $STEPS --lr 4e-3 --lr-warmup 100 --val-every 500 --checkpoint-every 500 \
    --threads $THREADS --no-plot </dev/null >$OUT/$name.log 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
for s in "${list[@]}"; do read -r name _ <<<"$s"; echo "== $name"; tail -n 4 $OUT/$name.log; done
