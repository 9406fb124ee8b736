#!/usr/bin/env bash
# Rebuilds presets/digits_labelled.safetensors: the spoken-digit generator told which digit to
# say (docs/DIGITS.md), trained in six runs, each starting from the last: four on this machine's
# CPU (the recipe it was made with on 2026-12-05: about 12 + 50 + 6 + 75 minutes on two cores),
# the fifth on a GPU (4.2 minutes on an H100; DEVICE5=cpu runs it here, in about a day), the
# sixth on the CPU again (2026-12-07, 10 minutes on one core):
#   1. pooled 4,4, d_model 32, one layer a stack, label prefix 32: 5000 steps at lr 3e-3
#   2. 12000 more at lr 1.5e-3
#   3. 1500 at lr 5e-4
#   4. 9000 at lr 1e-3 with label dropout 0.15 (a null label, for guidance at 2 streams a clip),
#      batches of 16
#   5. 26661 at lr 5e-4, label dropout 0.15, batches of 16, each training clip followed by 0.5 s
#      of silence (train --pad-end: the clips end in quiet instead of babble), with the preset's
#      description (the best validation, at step 26500, is what it keeps)
#   6. 1500 at lr 5e-4, label dropout 0.15, the same silence, with the model's own draws fed in place
#      of 30% of its classes (train --self-feed 0.3; docs/DIGITS.md, "The model's own draws in its
#      history"); then its guidance weight set to 2
# Batches of 8 × 4000 samples in the first three. DEVICE=cuda runs the same steps on a GPU; a
# GPU run of one piece with larger batches is the better recipe, not yet made (docs/DIGITS.md).
#   scripts/make_digits_labelled.sh [FSDD_TRAIN_DIR]      (default ../shared/data/fsdd/train)
#   OUT=path   where the model goes (default presets/digits_labelled.safetensors)
#   WORK=dir   the intermediate models and run directories (default /tmp/mambawave-digits-labelled)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-$root/../shared/data/fsdd/train}
out=${OUT:-$root/presets/digits_labelled.safetensors}
work=${WORK:-/tmp/mambawave-digits-labelled}
mw=$root/build/bin/mambawave
[[ -x $mw ]] || { echo "make_digits_labelled.sh: $mw: no mambawave binary (build it: scripts/build.sh)" >&2; exit 1; }
[[ -d $data ]] || { echo "make_digits_labelled.sh: $data: no FSDD training split" >&2; exit 1; }
mkdir -p "$work"
desc="Spoken digits on request: 8 kHz mu-law pooled generator told which digit to say (labels 0-9 from the file names, and a null label for guidance; generate --label D --guidance 3, or the Synth's keys C4..A4 with its Guidance), trained by mambawave train on the Free Spoken Digit Dataset training split (Jakobovski et al., CC BY-SA 4.0); validation = recordings 5-9 of each speaker and digit"
common=(--data "$data" --label-prefix 32 --segment 4000 --json)
cpu=(--device "${DEVICE:-cpu}")  # stages 1-4 and 6
echo "== 1/6: 5000 steps from a fresh pooled model"
"$mw" train "${common[@]}" "${cpu[@]}" --out "$work/stage1.safetensors" --pool 4,4 --d-model 32 --layers 1 --d-state 16 \
  --batch 8 --steps 5000 --lr 3e-3 --lr-warmup 100
echo "== 2/6: 12000 steps more"
"$mw" train "${common[@]}" "${cpu[@]}" --out "$work/stage2.safetensors" --init "$work/stage1.safetensors" \
  --batch 8 --steps 12000 --lr 1.5e-3 --lr-warmup 200
echo "== 3/6: 1500 steps at a low rate"
"$mw" train "${common[@]}" "${cpu[@]}" --batch 8 --out "$work/stage3.safetensors" --init "$work/stage2.safetensors" \
  --steps 1500 --lr 5e-4 --lr-warmup 100 --val-every 250
echo "== 4/6: 9000 steps with label dropout 0.15 (the null label)"
"$mw" train "${common[@]}" "${cpu[@]}" --batch 16 --out "$work/stage4.safetensors" --init "$work/stage3.safetensors" \
  --label-dropout 0.15 --steps 9000 --lr 1e-3 --lr-warmup 200 --val-every 500
echo "== 5/6: 26661 steps with 0.5 s of silence after each training clip, with the preset's description"
"$mw" train "${common[@]}" --device "${DEVICE5:-cuda}" --batch 16 --out "$work/stage5.safetensors" \
  --init "$work/stage4.safetensors" --label-dropout 0.15 --pad-end 0.5 --steps 26661 --lr 5e-4 --lr-warmup 100 \
  --val-every 500 --checkpoint-every 100000 --description "$desc"
echo "== 6/6: 1500 steps with the model's own draws in its history (--self-feed 0.3)"
"$mw" train "${common[@]}" "${cpu[@]}" --batch 8 --out "$work/stage6.safetensors" --init "$work/stage5.safetensors" \
  --label-dropout 0.15 --pad-end 0.5 --self-feed 0.3 --steps 1500 --lr 5e-4 --lr-warmup 100 --val-every 500
cp "$work/stage6.safetensors" "$out"
# its own guidance weight, the one that scored best (docs/DIGITS.md, "The model's own draws in its history")
/usr/bin/python3 "$root/scripts/set_description.py" "$out" "${desc/--guidance 3/--guidance 2}" --guidance 2
echo "wrote $out; score it: LABELS=1 GUIDANCE=2 scripts/digits_score.sh $out"
