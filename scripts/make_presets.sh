#!/usr/bin/env bash
# Rebuilds the shipped effect presets (presets/ts9.safetensors, presets/ds1.safetensors) the
# way they were made, then measures them on the held-out test pairs and writes the figures into
# the files (training.evaluation.test). Needs the captures (scripts/make_captures.sh).
#   scripts/make_presets.sh [ts9|ds1 ...]       (default: both)
# ts9 (since 2026-12-03): d_model 16 x 4, d_state 16, on the whole training set of
#   data/captures, 12000 steps of batch 16 x 4096 at lr 3e-3 (cosine), one run; it took 81 min
#   on one core of the 2-core VM (--threads 1), about 2 minutes on an H200 (--device cuda). Test
#   ESR 0.0336 (d 8 x 3) -> 0.0127.
# ds1: d_model 8 x 3, d_state 8, on the captures subset of scripts/device_effect_subset.sh
#   (.carry/fx), trained on the GPU machine's 16 CPU cores: stage 1 from scratch, 9000 steps at
#   lr 4e-3; stage 2 fine-tunes it for 12000 steps at lr 1.5e-3. A d_model 16 x 4 DS-1 on the
#   whole set was tried and not shipped (docs/ABLATION.md).
# The generator preset (digits) is rebuilt by scripts/device_train_generator.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
MW=build/bin/mambawave
[[ -x $MW ]] || ./scripts/build.sh
[[ -f data/captures/manifest.json ]] || ./scripts/make_captures.sh
effects=("$@"); [[ ${#effects[@]} -gt 0 ]] || effects=(ts9 ds1)
mkdir -p out/presets
for e in "${effects[@]}"; do
  if [[ $e == ts9 ]]; then
    $MW train --manifest data/captures/manifest.json --effect ts9 --d-model 16 --layers 4 --d-state 16 --no-skip \
      --preemph 0 --batch 16 --segment 4096 --warmup 1024 --steps 12000 --lr 3e-3 --lr-warmup 200 \
      --val-every 2000 --checkpoint-every 1000 --out out/presets/ts9.safetensors
  else
    [[ -f .carry/fx/manifest.json ]] || ./scripts/device_effect_subset.sh
    common=(--manifest .carry/fx/manifest.json --d-model 8 --layers 3 --d-state 8 --no-skip --preemph 0
            --batch 16 --segment 4096 --warmup 1024 --lr-warmup 100 --val-every 500 --checkpoint-every 500)
    $MW train "${common[@]}" --effect "$e" --steps 9000 --lr 4e-3 --out out/presets/$e.stage1.safetensors
    $MW train "${common[@]}" --effect "$e" --steps 12000 --lr 1.5e-3 --init out/presets/$e.stage1.safetensors \
      --out out/presets/$e.safetensors
  fi
  $MW eval -m out/presets/$e.safetensors --manifest data/captures/manifest.json --effect "$e" --record
  cp out/presets/$e.safetensors presets/$e.safetensors
done
