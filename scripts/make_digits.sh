#!/usr/bin/env bash
# Rebuilds one of the three spoken-digit generator presets (docs/DIGITS.md), each one run of
# `mambawave train` from random weights on the FSDD training split: the 8 kHz mu-law pooled shape
# (pool 4,4: stacks at 8000, 2000 and 500 Hz), batch 32 x 4000 samples at lr 2e-3 (warm-up 100,
# cosine to the end), each training clip followed by 0.5 s of silence (train --pad-end: a word
# ends in quiet, not babble).
#
#   scripts/make_digits.sh PRESET [FSDD_TRAIN_DIR]      (default ../shared/data/fsdd/train)
#
# PRESET     recipe                                                        shipped file made on
# digits     d_model 32, one layer a stack, no labels (292.6k parameters);  one H100, 2026-12-07,
#            16000 steps; no self-feed (it made this model's clips less     5.6 min beside a second
#            word-like: docs/DIGITS.md, "The unlabelled preset pooled")     run of the same size
# labelled   d_model 32, one layer a stack, label prefix 32, label dropout  one H100, 2026-12-07,
#            0.15 (a null label: guidance at 2 streams a clip), fed its     18.1 min beside a
#            own draws from the first step (train --self-feed 0.3, rising   second run
#            over 2000 steps); 36000 steps; guidance 1.5
# large      d_model 64, two layers a stack (1.82 M parameters), labelled   one H100 over two
#            and self-fed as `labelled`, weight decay 0.02, the clips also  sessions, 34.3 min
#            at 0.9 and 1.1 times the speed; 32000 steps; stored as F16;
#            guidance 1.5
# (The shipped files were trained through scripts/device_long_run.sh, which runs the same flags
# in device calls of at most 10 minutes, resuming between them.) On a 2-core CPU (DEVICE=cpu)
# `digits` and `labelled` would take about 15 hours (85k samples/s; not run), `large` days.
#
#   OUT=path     where the model goes (default presets/digits.safetensors, digits_labelled...,
#                digits_large...)
#   WORK=dir     the run directory and best model (default /tmp/mambawave-PRESET)
#   DEVICE=cuda  (default) or cpu;  MW=path  the mambawave binary (default build/bin/mambawave)
#   STEPS=N      a shorter run, to try the script (default: the recipe's)
# The run checkpoints on Ctrl-C; the same command continues it (train --resume).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
me=make_digits.sh
fsdd="the Free Spoken Digit Dataset training split (Jakobovski et al., CC BY-SA 4.0)"
val="validation = recordings 5-9 of each speaker and digit"
labels=(--label-prefix 32 --label-dropout 0.15 --self-feed 0.3 --self-feed-ramp 2000)
case ${1:-} in
  digits)
    name=digits steps=16000 guidance=() f16=0
    flags=(--d-model 32 --layers 1)
    desc="Spoken-digit babble: 8 kHz mu-law pooled generator without labels, trained by mambawave train on $fsdd in one run from random weights; $val. For words on request, digits_labelled" ;;
  labelled)
    name=digits_labelled steps=36000 guidance=(--guidance 1.5) f16=0
    flags=(--d-model 32 --layers 1 "${labels[@]}")
    desc="Spoken digits on request: 8 kHz mu-law pooled generator told which digit to say (labels 0-9 from the file names, and a null label for guidance; generate --label D --guidance 1.5, or the Synth's keys C4..A4 with its Guidance), trained by mambawave train on $fsdd, fed its own draws from the first step; $val" ;;
  large)
    name=digits_large steps=32000 guidance=(--guidance 1.5) f16=1
    flags=(--d-model 64 --layers 2 "${labels[@]}" --weight-decay 0.02 --speed-perturb 0.9,1.1)
    desc="Spoken digits on request, large: 8 kHz mu-law pooled generator (d_model 64, 1.8 M parameters) told which digit to say (labels 0-9 and a null label; generate --label D, guided at its own weight 1.5), trained by mambawave train on a GPU in one run from random weights on $fsdd and its copies at 0.9 and 1.1 times the speed, fed its own draws from the first step; $val. Dearer than digits_labelled on the CPU (docs/BENCHMARKS.md): for offline generate, or one voice live" ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "$me: which preset? digits, labelled or large (--help)" >&2; exit 1 ;;
esac
data=${2:-$root/../shared/data/fsdd/train}
out=${OUT:-$root/presets/$name.safetensors}
work=${WORK:-/tmp/mambawave-$name}
mw=${MW:-$root/build/bin/mambawave}
[[ -x $mw ]] || { echo "$me: $mw: no mambawave binary (build it: scripts/build.sh)" >&2; exit 1; }
[[ -d $data ]] || { echo "$me: $data: no FSDD training split" >&2; exit 1; }
mkdir -p "$work"
resume=(); [[ -f $work/run/checkpoint/trainer.safetensors ]] && resume=(--resume)
"$mw" train --data "$data" --out "$work/$name.safetensors" --run-dir "$work/run" "${resume[@]}" \
  --device "${DEVICE:-cuda}" --pool 4,4 --d-state 16 --batch 32 --segment 4000 --pad-end 0.5 "${flags[@]}" \
  --steps "${STEPS:-$steps}" --lr 2e-3 --lr-warmup 100 --val-every 1000 --checkpoint-every 2000 --json
if (( f16 )); then
  /usr/bin/python3 "$root/scripts/to_f16.py" "$work/$name.safetensors" --out "$out"
else
  cp "$work/$name.safetensors" "$out"
fi
/usr/bin/python3 "$root/scripts/set_description.py" "$out" "$desc" "${guidance[@]}"
score="COUNT=250 SEED=\"1 2 3 4\""; (( ${#guidance[@]} )) && score="LABELS=1 COUNT=300 SEED=\"1 2 3\""
echo "wrote $out; score it: $score scripts/digits_score.sh $out"
