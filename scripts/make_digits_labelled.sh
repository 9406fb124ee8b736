#!/usr/bin/env bash
# Rebuilds presets/digits_labelled.safetensors: the spoken-digit generator told which digit to
# say (docs/DIGITS.md). One run from random weights, fed its own draws from the first step
# (train --self-feed 0.3, rising from 0 over the first 2000 steps; docs/DIGITS.md, "Self-fed from
# the first step"): pooled 4,4, d_model 32, one layer a stack, label prefix 32, label dropout 0.15
# (a null label, for guidance at 2 streams a clip), each training clip followed by 0.5 s of
# silence (train --pad-end: a word ends in quiet, not babble); 36000 steps of 32 x 4000 samples at
# lr 2e-3; then the preset's description and its guidance weight, 1.5, the one that scored best.
# The shipped file was made so on 2026-12-07 on one H100, 18.1 minutes beside a second run of the
# same size, in three device calls of at most 10 minutes (scripts/device_long_run.sh runs this
# recipe so, resuming between calls: docs/DIGITS.md, "One run, self-fed from random weights"). On a 2-core CPU (DEVICE=cpu) it would take about 15 hours
# (an estimate from 20 steps' speed on one, about 85k samples/s; not run).
#   scripts/make_digits_labelled.sh [FSDD_TRAIN_DIR]      (default ../shared/data/fsdd/train)
#   OUT=path     where the model goes (default presets/digits_labelled.safetensors)
#   WORK=dir     the run directory and best model (default /tmp/mambawave-digits-labelled)
#   DEVICE=cuda  (default) or cpu;  MW=path  the mambawave binary (default build/bin/mambawave)
#   STEPS=N      a shorter run, to try the script (default 36000, the recipe)
# The run checkpoints on Ctrl-C; the same command continues it (train --resume).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-$root/../shared/data/fsdd/train}
out=${OUT:-$root/presets/digits_labelled.safetensors}
work=${WORK:-/tmp/mambawave-digits-labelled}
mw=${MW:-$root/build/bin/mambawave}
[[ -x $mw ]] || { echo "make_digits_labelled.sh: $mw: no mambawave binary (build it: scripts/build.sh)" >&2; exit 1; }
[[ -d $data ]] || { echo "make_digits_labelled.sh: $data: no FSDD training split" >&2; exit 1; }
mkdir -p "$work"
desc="Spoken digits on request: 8 kHz mu-law pooled generator told which digit to say (labels 0-9 from the file names, and a null label for guidance; generate --label D --guidance 1.5, or the Synth's keys C4..A4 with its Guidance), trained by mambawave train on the Free Spoken Digit Dataset training split (Jakobovski et al., CC BY-SA 4.0), fed its own draws from the first step; validation = recordings 5-9 of each speaker and digit"
resume=(); [[ -f $work/run/checkpoint/trainer.safetensors ]] && resume=(--resume)
"$mw" train --data "$data" --out "$work/digits_labelled.safetensors" --run-dir "$work/run" "${resume[@]}" \
  --device "${DEVICE:-cuda}" --pool 4,4 --d-model 32 --layers 1 --d-state 16 --batch 32 --segment 4000 \
  --label-prefix 32 --label-dropout 0.15 --pad-end 0.5 --self-feed 0.3 --self-feed-ramp 2000 \
  --steps "${STEPS:-36000}" --lr 2e-3 --lr-warmup 100 --val-every 1000 --checkpoint-every 2000 --json
cp "$work/digits_labelled.safetensors" "$out"
/usr/bin/python3 "$root/scripts/set_description.py" "$out" "$desc" --guidance 1.5
echo "wrote $out; score it: LABELS=1 COUNT=300 SEED=\"1 2 3\" scripts/digits_score.sh $out"
