#!/usr/bin/env bash
# One generator run longer than a device call (up to 600 s), over several calls: each call trains
# until DEADLINE seconds after its start, then stops the run with SIGTERM (train checkpoints and
# keeps the best model so far); the next call resumes it exactly (`train --resume`: the same data
# order, optimiser state and schedule over the whole run's STEPS).
#   NAME   the run's name (files NAME.*)          STEPS  the whole run's steps (its cosine schedule)
#   ARGS   train's flags for the model and data: the same in every call (train's rule for --resume)
#   DEADLINE  seconds from this script's start by which the call's training stops (default 570)
#   LR (default 3e-3), WARMUP (default 100), VE (validation every, default 1000)
#   CARRY_RUN  a checkpoint archive (NAME_run.tgz) that came back from an earlier call, carried to a
#              fresh machine when the warm one was released; a warm machine's own run goes first
# From the repository root on the GPU machine, with .debs/ and .carry/fsdd/train carried
# (device call: carry [".debs", ".carry/fsdd"], and the folder of CARRY_RUN if given):
#   NAME=fed STEPS=60000 ARGS="--pool 4,4 --d-model 32 --layers 1 --d-state 16 --batch 32 --segment 4000 \
#     --label-prefix 32 --label-dropout 0.15 --pad-end 0.5 --self-feed 0.3 --self-feed-ramp 2000" \
#     bash scripts/device_long_run.sh          # call 1; the same command again continues it
# Back in $OUT: NAME.safetensors (the best validation so far), NAME.json (train's summary),
# NAME_log.csv, NAME_run.tgz (the run directory: its checkpoint and best model, for CARRY_RUN) and
# build.log.
# The device tool brings a file back only under 16 MiB: an archive over SPLIT (default 15M) comes
# back in parts, NAME_run.tgz.00, .01, ... (a d_model 64 run's, with its optimiser state, is about
# 33 MB: three parts); CARRY_RUN=.../NAME_run.tgz finds its parts beside it.
# A dry run here: DEVICE=cpu MW=build/bin/mambawave WORK=/tmp/lt ... (tiny ARGS; SPLIT=100k to see parts).
# It exits 0 when the run has finished all its steps, 3 when it stopped at DEADLINE to go on.
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
: "${NAME:?NAME=the run\'s name}" "${STEPS:?STEPS=the whole run\'s steps}" "${ARGS:?ARGS=train\'s model and data flags}"
DEADLINE=${DEADLINE:-570}
export MW_BUILD_DIR=${MW_BUILD_DIR:-$PWD/build-dev/cli}
mkdir -p build-dev
if [[ -z ${MW:-} ]]; then  # MW=path/to/mambawave skips the build (a dry run on the CPU: DEVICE=cpu)
  . scripts/device_build.sh > "$OUT/build.log" 2>&1
  [[ -x ${MW:-} ]] || { echo "CLI build failed"; tail -30 "$OUT/build.log"; exit 1; }
  echo "CLI built at $(( $(date +%s) - T0 )) s"
fi
export LD_LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
WORK=${WORK:-/tmp/long}; RUN=$WORK/$NAME.run; mkdir -p "$WORK"
resume=()
if [[ -f $RUN/checkpoint/trainer.safetensors ]]; then
  resume=(--resume); echo "resuming $RUN (this machine's)"
elif [[ -n ${CARRY_RUN:-} ]]; then
  parts=("$CARRY_RUN"); [[ -f $CARRY_RUN ]] || parts=("$CARRY_RUN".[0-9][0-9])  # (whole, or in parts)
  [[ -f ${parts[0]} ]] || { echo "CARRY_RUN=$CARRY_RUN: no such file, nor its parts .00, .01, ... (carry its folder)"; exit 1; }
  # (the archive holds the run directory and the best model so far beside it)
  rm -rf "$RUN" && cat "${parts[@]}" | tar xzf - -C "$WORK" ||
    { echo "CARRY_RUN=$CARRY_RUN: not a run archive (${#parts[@]} file(s))"; exit 1; }
  [[ -f $RUN/checkpoint/trainer.safetensors ]] || { echo "CARRY_RUN=$CARRY_RUN holds no $NAME.run/checkpoint/trainer.safetensors"; exit 1; }
  resume=(--resume); echo "resuming the carried run $CARRY_RUN"
fi
left=$(( DEADLINE - ($(date +%s) - T0) ))
(( left > 30 )) || { echo "only $left s before DEADLINE=$DEADLINE: nothing trained"; exit 1; }
echo "training for at most $left s"
# shellcheck disable=SC2086  # ARGS is a list of flags
timeout -s TERM $left "$MW" train --data .carry/fsdd/train --out "$WORK/$NAME.safetensors" --run-dir "$RUN" \
  --steps "$STEPS" --lr "${LR:-3e-3}" --lr-warmup "${WARMUP:-100}" --val-every "${VE:-1000}" \
  --checkpoint-every 100000000 --device "${DEVICE:-cuda}" --threads 16 --no-plot --json "${resume[@]}" $ARGS \
  > "$OUT/$NAME.json" 2> "$WORK/$NAME.log" < /dev/null
rc=$?
tr '\r' '\n' < "$WORK/$NAME.log" | grep -v "^train \[" | tail -4
# 0: all STEPS done; 130/143 (or timeout's 124): stopped at DEADLINE with a checkpoint
cp "$WORK/$NAME.safetensors" "$OUT/" 2>/dev/null || echo "no model yet (no validation so far)"
cp "$RUN/log.csv" "$OUT/${NAME}_log.csv" 2>/dev/null
best=(); [[ -f $WORK/$NAME.safetensors ]] && best=("$NAME.safetensors")
tar czf "$OUT/${NAME}_run.tgz" -C "$WORK" "$NAME.run" "${best[@]}"
SPLIT=${SPLIT:-15M}; SPLIT=${SPLIT^^}  # (numfmt's suffixes are capitals)
if [[ $(stat -c %s "$OUT/${NAME}_run.tgz") -gt $(numfmt --from=iec "$SPLIT") ]]; then
  split -b "$SPLIT" -d "$OUT/${NAME}_run.tgz" "$OUT/${NAME}_run.tgz." && rm "$OUT/${NAME}_run.tgz"
  echo "the run's archive comes back in $(ls "$OUT/${NAME}_run.tgz."* | wc -l) parts"
fi
summary=$(python3 -c "import json; j=json.load(open('$OUT/$NAME.json')); print(j['steps_done'], 'of', j['steps'], 'steps, best', round(j['best'], 4), 'at step', j['best_step'])" 2>/dev/null) ||
  summary="no summary from train"
echo "rc $rc; $summary at $(( $(date +%s) - T0 )) s"
if [[ $rc == 0 ]]; then exit 0; fi
if [[ $rc == 124 || $rc == 130 || $rc == 143 ]]; then exit 3; fi
echo "train failed (rc $rc):"; tail -5 "$WORK/$NAME.log"; exit 1
