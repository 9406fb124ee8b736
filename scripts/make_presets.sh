#!/usr/bin/env bash
# Rebuilds the shipped effect presets (presets/ts9.safetensors, presets/ds1.safetensors) the
# way they were made, then measures them on the held-out test pairs and writes the figures into
# the files (training.evaluation.test). Needs the captures (scripts/make_captures.sh) and the
# subset the presets were trained on (scripts/device_effect_subset.sh -> .carry/fx).
#   scripts/make_presets.sh [ts9|ds1 ...]       (default: both)
# The shipped files were trained on the GPU machine's 16 CPU cores with
# scripts/device_train_effects.sh (about 10 minutes per stage); on 2 cores expect hours.
# Recipe per effect: stage 1 from scratch, 9000 steps at lr 4e-3; stage 2 fine-tunes the
# stage-1 model for 12000 steps at lr 1.5e-3 (the shipped ts9 stopped at 9500 of them on a time
# limit); ts9 only: stage 3, 3000 more steps at lr 1.5e-3 (test ESR 0.0336 -> 0.0311,
# docs/ABLATION.md). The generator preset (digits) is rebuilt by scripts/device_train_generator.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
MW=build/bin/mambawave
[[ -x $MW ]] || ./scripts/build.sh
[[ -f data/captures/manifest.json ]] || ./scripts/make_captures.sh
[[ -f .carry/fx/manifest.json ]] || ./scripts/device_effect_subset.sh
effects=("$@"); [[ ${#effects[@]} -gt 0 ]] || effects=(ts9 ds1)
common=(--manifest .carry/fx/manifest.json --d-model 8 --layers 3 --d-state 8 --no-skip --preemph 0
        --batch 16 --segment 4096 --warmup 1024 --lr-warmup 100 --val-every 500 --checkpoint-every 500)
mkdir -p out/presets
for e in "${effects[@]}"; do
  $MW train "${common[@]}" --effect "$e" --steps 9000 --lr 4e-3 --out out/presets/$e.stage1.safetensors
  $MW train "${common[@]}" --effect "$e" --steps 12000 --lr 1.5e-3 --init out/presets/$e.stage1.safetensors \
    --out out/presets/$e.safetensors
  if [[ $e == ts9 ]]; then
    mv out/presets/$e.safetensors out/presets/$e.stage2.safetensors
    $MW train "${common[@]}" --effect "$e" --steps 3000 --lr 1.5e-3 --init out/presets/$e.stage2.safetensors \
      --out out/presets/$e.safetensors
  fi
  $MW eval -m out/presets/$e.safetensors --manifest data/captures/manifest.json --effect "$e" --record
  cp out/presets/$e.safetensors presets/$e.safetensors
done
