#!/usr/bin/env bash
# Rebuilds presets/digits_large.safetensors: the large spoken-digit generator told which digit to
# say (docs/DIGITS.md). One run from random weights, fed its own draws from the first step
# (train --self-feed 0.3, rising from 0 over the first 2000 steps; docs/DIGITS.md, "The large
# shape self-fed from random weights"): pooled 4,4, d_model 64, two layers a stack (1.82 M
# parameters), label prefix 32, label dropout 0.15 (a null label, for guidance at 2 streams a
# clip), weight decay 0.02, the training clips also at 0.9 and 1.1 times the speed, each followed
# by 0.5 s of silence (train --pad-end); 32000 steps of 32 x 4000 samples at lr 2e-3 (the best
# validation came at step 31000); then its tensors stored as F16 (scripts/to_f16.py), the preset's
# description and its guidance weight, 1.5.
# The shipped file was made so on one H100 over two sessions, in device calls of at most 10
# minutes (scripts/device_long_run.sh, resuming between calls): 34.3 minutes of training.
# On a 2-core CPU (DEVICE=cpu) it would take days.
#   scripts/make_digits_large.sh [FSDD_TRAIN_DIR]      (default ../shared/data/fsdd/train)
#   OUT=path     where the model goes (default presets/digits_large.safetensors)
#   WORK=dir     the run directory and best model (default /tmp/mambawave-digits-large)
#   DEVICE=cuda  (default) or cpu;  MW=path  the mambawave binary (default build/bin/mambawave)
#   STEPS=N      a shorter run, to try the script (default 32000, the recipe)
# The run checkpoints on Ctrl-C; the same command continues it (train --resume).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-$root/../shared/data/fsdd/train}
out=${OUT:-$root/presets/digits_large.safetensors}
work=${WORK:-/tmp/mambawave-digits-large}
mw=${MW:-$root/build/bin/mambawave}
[[ -x $mw ]] || { echo "make_digits_large.sh: $mw: no mambawave binary (build it: scripts/build.sh)" >&2; exit 1; }
[[ -d $data ]] || { echo "make_digits_large.sh: $data: no FSDD training split" >&2; exit 1; }
mkdir -p "$work"
desc="Spoken digits on request, large: 8 kHz mu-law pooled generator (d_model 64, 1.8 M parameters) told which digit to say (labels 0-9 and a null label; generate --label D, guided at its own weight 1.5), trained by mambawave train on a GPU in one run from random weights on the Free Spoken Digit Dataset training split (Jakobovski et al., CC BY-SA 4.0) and its copies at 0.9 and 1.1 times the speed, fed its own draws from the first step; validation = recordings 5-9 of each speaker and digit. Dearer than digits_labelled on the CPU (docs/BENCHMARKS.md): for offline generate, or one voice live"
resume=(); [[ -f $work/run/checkpoint/trainer.safetensors ]] && resume=(--resume)
"$mw" train --data "$data" --out "$work/digits_large.safetensors" --run-dir "$work/run" "${resume[@]}" \
  --device "${DEVICE:-cuda}" --pool 4,4 --d-model 64 --layers 2 --d-state 16 --batch 32 --segment 4000 \
  --label-prefix 32 --label-dropout 0.15 --weight-decay 0.02 --speed-perturb 0.9,1.1 --pad-end 0.5 \
  --self-feed 0.3 --self-feed-ramp 2000 \
  --steps "${STEPS:-32000}" --lr 2e-3 --lr-warmup 100 --val-every 1000 --checkpoint-every 2000 --json
/usr/bin/python3 "$root/scripts/to_f16.py" "$work/digits_large.safetensors" --out "$out"
/usr/bin/python3 "$root/scripts/set_description.py" "$out" "$desc" --guidance 1.5
echo "wrote $out; score it: LABELS=1 COUNT=300 SEED=\"1 2 3\" scripts/digits_score.sh $out"
