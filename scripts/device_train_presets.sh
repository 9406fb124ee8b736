#!/usr/bin/env bash
# Trains the effect presets on the GPU machine, on the whole capture training set: builds the
# CLI with CUDA, makes the targets there from the carried inputs (scripts/device_effect_data.sh
# packs .carry/fxdata here), then trains every run of RUNS side by side on the one GPU for
# whatever is left of the call's time budget. Models, logs and curves land in $OUT.
#   RUNS="name effect d_model layers d_state [extra train flags];..."
#   BUDGET (seconds for the whole script, default 560)  BATCH  SEGMENT  LR  VAL_EVERY  STEPS (every
#   run this many steps, for runs to compare; default: as many as the budget allows)  CHECK (1: also
#   scripts/device_check.sh, beside the training; catch2: only its Catch2 part)
# A run named NAME starts from .carry/init/NAME.safetensors when that file is there (so does its
# 200-step calibration run); a run's own --lr or --manifest in its extra flags replaces LR or
# the carried set's manifest, and its own --device (e.g. "--device cpu --threads 7") DEVICE.
# Device call: carry [".debs", ".carry/fxdata", ".carry/init"];
#   command: bash scripts/device_train_presets.sh
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
BUDGET=${BUDGET:-560}; BATCH=${BATCH:-32}; SEGMENT=${SEGMENT:-4096}; LR=${LR:-3e-3}; VAL_EVERY=${VAL_EVERY:-1000}
RUNS=${RUNS:-"ts9_d16x4 ts9 16 4 16;ds1_d16x4 ds1 16 4 16"}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; nproc
DEVICE=${DEVICE:-cuda}
if [[ -z ${MW:-} ]]; then  # MW=path/to/mambawave skips the build (a dry run here: DEVICE=cpu)
  . scripts/device_build.sh >$OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
  tail -3 $OUT/build.log; echo "built at $(( $(date +%s) - T0 )) s"
fi
# CHECK=1: the CUDA checks and scan benchmarks (scripts/device_check.sh) run beside the training.
[[ ${CHECK:-0} != 0 ]] && { CHECK=$CHECK bash scripts/device_check.sh >$OUT/check.log 2>&1 & }
${PY:-python3} scripts/captures/make_targets.py .carry/fxdata/manifest.json | tail -1 || exit 1

IFS=';' read -ra list <<<"$RUNS"
train() {  # name effect dm layers ds steps [extra...]; TL: seconds before the run is stopped
  local name=$1 effect=$2 dm=$3 layers=$4 ds=$5 steps=$6; shift 6
  local base=${name%_cal} init=(); [ -f .carry/init/$base.safetensors ] && init=(--init .carry/init/$base.safetensors)
  local lr=(--lr $LR); [[ " $* " == *" --lr "* ]] && lr=()  # a run's own --lr wins over LR
  local man=(--manifest .carry/fxdata/manifest.json); [[ " $* " == *" --manifest "* ]] && man=()  # ... and --manifest
  local dev=(--device $DEVICE); [[ " $* " == *" --device "* ]] && dev=()  # ... and --device
  # timeout on the trainer itself: a stopped run must not go on writing into $OUT
  timeout ${TL:-100000} $MW train "${man[@]}" --effect $effect "${dev[@]}" --out $OUT/$name.safetensors \
    --run-dir $OUT/$name.run --d-model $dm --layers $layers --d-state $ds --no-skip --preemph 0 \
    --batch $BATCH --segment $SEGMENT --warmup 1024 --steps $steps "${lr[@]}" --lr-warmup 200 \
    --val-every ${VE:-$VAL_EVERY} --checkpoint-every 2000 --no-plot --json "${init[@]}" "$@" </dev/null
}
# Calibration: 200 steps of every run side by side give each run's samples/s under sharing.
pids=()
for s in "${list[@]}"; do
  read -r name effect dm layers ds extra <<<"$s"
  VE=1000000 train ${name}_cal $effect $dm $layers $ds 200 ${extra:-} >$OUT/${name}_cal.json 2>$OUT/${name}_cal.log &
  pids+=($!)
done
wait "${pids[@]}"
left=$(( BUDGET - ($(date +%s) - T0) - 45 ))
echo "calibrated at $(( $(date +%s) - T0 )) s; $left s left to train"
pids=()
for s in "${list[@]}"; do
  read -r name effect dm layers ds extra <<<"$s"
  sps=$(python3 -c "import json,sys; print(json.load(open('$OUT/${name}_cal.json'))['samples_per_second'])" 2>/dev/null || echo 0)
  # The calibration reports its last second's samples/s, which ran ahead of whole runs by up to 2x
  # when four shared the GPU (2026-12-03: TS9 runs cut at 63% and 85% of their steps): 0.45 of it.
  # FILL (default 0.45) replaces that share, e.g. 0.8 for runs that do not share the GPU.
  steps=${STEPS:-$(python3 -c "print(max(500, int(${FILL:-0.45} * $left * $sps / ($BATCH * $SEGMENT))))")}
  echo "$name: $sps samples/s in calibration -> $steps steps"
  TL=$(( left + 20 )) train $name $effect $dm $layers $ds $steps ${extra:-} >$OUT/$name.json 2>$OUT/$name.log &
  pids+=($!)
done
wait "${pids[@]}"
for s in "${list[@]}"; do read -r name _ <<<"$s"; echo "== $name"; cat $OUT/$name.json; tail -c 400 $OUT/$name.log; echo; done
if [[ ${CHECK:-0} != 0 ]]; then wait; echo "== checks"; cat $OUT/check.log; fi
rm -rf $OUT/*_cal.run $OUT/*_cal.safetensors $OUT/*.run/checkpoint*
# One archive to bring back (the device tool returns only a few files): models, logs, curves.
# (every run has stopped; tar's status 1 only means a file changed while it read)
(cd $OUT && tar czf /tmp/results.tgz --exclude=check.log .; [[ $? -le 1 ]] &&
  find . -mindepth 1 ! -name check.log -delete && mv /tmp/results.tgz .)
echo "done at $(( $(date +%s) - T0 )) s"
