#!/usr/bin/env bash
# Trains generator runs on the device machine (from the repo root there, with the Free Spoken
# Digit training split carried in .carry/fsdd/train and the .debs in .debs/): builds the CLI,
# calibrates every run of RUNS for 150 steps side by side, then trains them side by side, each
# with a cosine schedule sized to fill what is left of BUDGET. Models, logs and curves land in
# $OUT (one archive, results.tgz).
#   RUNS="name d_model layers d_state batch segment [extra train flags];..."
#   BUDGET (seconds for the whole script, default 560)  DEVICE (cuda or cpu, default cuda)
#   FILL (share of the calibrated rate counted on, default 0.45: the calibration reports its last
#   second, which runs ahead of whole runs sharing the GPU; 0.75 for one run alone)  LR (default 3e-3)
#   STEPS (every run this many steps instead of what the budget allows)
#   SAME_STEPS=1 (every run the steps the slowest run's rate allows: runs to compare at equal steps)
# Device call: carry [".debs", ".carry/fsdd"] (copy /work/shared/data/fsdd/train to .carry/fsdd/train);
#   command: BUDGET=570 STEPS=9500 RUNS="digits 32 6 16 32 4000" bash scripts/device_train_generator.sh
# The shipped digits preset is that (9500 steps in 322 s on an H200, validation NLL 3.76
# bits/sample), then, with its model copied to .carry/init/digits.safetensors and carried too:
#   BUDGET=560 STEPS=9000 LR=1e-3 RUNS="digits 32 6 16 32 4000 --init .carry/init/digits.safetensors"
# (290 s, 3.72; docs/DIGITS.md has its history). A run named digits gets the preset's description.
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
BUDGET=${BUDGET:-560}; LR=${LR:-3e-3}; DEVICE=${DEVICE:-cuda}
RUNS=${RUNS:-"digits 32 6 16 32 4000"}
nproc; nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null
if [[ -z ${MW:-} ]]; then  # MW=path/to/mambawave skips the build (a dry run here: DEVICE=cpu)
  . scripts/device_build.sh >$OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
  echo "built at $(( $(date +%s) - T0 )) s"
fi
IFS=';' read -ra list <<<"$RUNS"
# the shipped preset's line for `info` and the plugin
DIGITS_DESC="Spoken-digit babble: 8 kHz mu-law generator trained by mambawave train on the Free Spoken Digit Dataset training split (Jakobovski et al., CC BY-SA 4.0); validation = recordings 5-9 of each speaker and digit"
train() {  # name dm layers ds batch segment steps [extra...]; TL: seconds before it is stopped
  local name=$1 dm=$2 layers=$3 ds=$4 batch=$5 seg=$6 steps=$7; shift 7
  local desc=(); [[ $name == digits ]] && desc=(--description "$DIGITS_DESC")
  timeout ${TL:-100000} $MW train --data .carry/fsdd/train --out $OUT/$name.safetensors --run-dir $OUT/$name.run \
    --d-model $dm --layers $layers --d-state $ds --batch $batch --segment $seg --steps $steps --lr $LR \
    --lr-warmup 100 --val-every ${VE:-500} --checkpoint-every 100000 --device $DEVICE --threads 16 \
    --no-plot --json "${desc[@]}" "$@" </dev/null
}
pids=()
for s in "${list[@]}"; do
  read -r name dm layers ds batch seg extra <<<"$s"
  VE=1000000 train ${name}_cal $dm $layers $ds $batch $seg 150 ${extra:-} >$OUT/${name}_cal.json 2>$OUT/${name}_cal.log &
  pids+=($!)
done
wait "${pids[@]}"
left=$(( BUDGET - ($(date +%s) - T0) - 40 ))
echo "calibrated at $(( $(date +%s) - T0 )) s; $left s left to train"
fit() {  # name batch seg: the steps its calibrated rate fills the time left with
  local sps
  sps=$(python3 -c "import json; print(json.load(open('$OUT/${1}_cal.json'))['samples_per_second'])" 2>/dev/null || echo 0)
  python3 -c "print(max(200, int(${FILL:-0.45} * $left * $sps / ($2 * $3))))"
}
# SAME_STEPS=1: every run the steps of the slowest (runs to compare at equal steps)
if [[ -z ${STEPS:-} && -n ${SAME_STEPS:-} ]]; then
  STEPS=$(for s in "${list[@]}"; do read -r name dm layers ds batch seg extra <<<"$s"; fit $name $batch $seg; done | sort -n | head -1)
fi
pids=()
for s in "${list[@]}"; do
  read -r name dm layers ds batch seg extra <<<"$s"
  fits=$(fit $name $batch $seg)
  steps=${STEPS:-$fits}
  echo "$name: $fits steps fit its calibrated rate -> $steps steps"
  TL=$(( left + 20 )) train $name $dm $layers $ds $batch $seg $steps ${extra:-} >$OUT/$name.json 2>$OUT/$name.log &
  pids+=($!)
done
wait "${pids[@]}"
for s in "${list[@]}"; do
  read -r name _ <<<"$s"; echo "== $name"; cat $OUT/$name.json; echo
  tr '\r' '\n' <$OUT/$name.log | grep -v "^train \[" | tail -5
done
rm -rf $OUT/*_cal.run $OUT/*_cal.safetensors
# (the archive comes back only under 16 MiB: the runs' checkpoints stay behind, their logs come)
rm -f $OUT/*.run/trainer.safetensors $OUT/*.run/model.safetensors
(cd $OUT && tar czf /tmp/results.tgz .; [[ $? -le 1 ]] && find . -mindepth 1 -delete && mv /tmp/results.tgz .)
echo "done at $(( $(date +%s) - T0 )) s"
