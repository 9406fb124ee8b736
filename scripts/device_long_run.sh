#!/usr/bin/env bash
# Generator runs longer than a device call (up to 600 s), over several calls: each call trains
# until DEADLINE seconds after its start, then stops the runs with SIGTERM (train checkpoints and
# keeps the best model so far); the next call resumes them exactly (`train --resume`: the same data
# order, optimiser state and schedule over the whole run's STEPS). One run, or several side by
# side on the one GPU from one build (a small model leaves most of an H100 idle: two such runs
# each got 0.8x the samples/s of one alone).
#   NAME   the run's name (files NAME.*)          STEPS  the whole run's steps (its cosine schedule)
#   ARGS   train's flags for the model and data: the same in every call (train's rule for --resume)
#   RUNS   instead of NAME and ARGS, several runs side by side: "NAME1 ARGS1;NAME2 ARGS2;..." (the
#          first word of each is its name); they share LR, WARMUP and VE, and STEPS unless a name
#          says its own: "big:32000 ARGS1;small:16000 ARGS2" (give a resumed run the steps it began with: they set its schedule)
#   DEADLINE  seconds from this script's start by which the call's training stops (default 570)
#   LR (default 3e-3), WARMUP (default 100), VE (validation every, default 1000)
#   CARRY_DIR  a folder holding the run archives (NAME_run.tgz, or its parts) that came back from an
#              earlier call, carried to a fresh machine when the warm one was released; a warm
#              machine's own run goes first. (CARRY_RUN=path/NAME_run.tgz names one run's archive.)
# From the repository root on the GPU machine, with .debs/ and .carry/fsdd/train carried
# (device call: carry [".debs", ".carry/fsdd"], and CARRY_DIR if given):
#   NAME=fed STEPS=36000 LR=2e-3 ARGS="--pool 4,4 --d-model 32 --layers 1 --d-state 16 --batch 32 --segment 4000 \
#     --label-prefix 32 --label-dropout 0.15 --pad-end 0.5 --self-feed 0.3 --self-feed-ramp 2000" \
#     bash scripts/device_long_run.sh          # call 1; the same command again continues it
#   RUNS="fed $A;fedsp $A --speed-perturb 0.9,1.1" STEPS=36000 LR=2e-3 CARRY_DIR=.carry/runs \
#     bash scripts/device_long_run.sh          # two side by side (docs/DIGITS.md, "One run, self-fed ...")
#   RUNS="lfed:32000 $L;ufed:20000 $U" LR=2e-3 CARRY_DIR=.carry/runs bash scripts/device_long_run.sh
#                                              # a carried run resumed beside a fresh one of its own length
# Back in $OUT, for each run: NAME.safetensors (the best validation so far), NAME.json (train's
# summary) and NAME_run.tgz (the run directory: its checkpoint, log.csv and best.json, with the
# summary, for CARRY_DIR; not the best model, which comes back beside it); with one run also
# NAME_log.csv; and build.log. The device tool brings back at most 8 files: two small runs fit.
# LEAN=1 sends the archives and the best models alone (and build.log).
# It brings a file back only under 16 MiB: an archive over SPLIT (default 15M) comes back in parts,
# NAME_run.tgz.00, .01, ... (a d_model 64 run's, with its optimiser state and its 32 lanes' states,
# is about 26 MB: two parts); CARRY_DIR and CARRY_RUN find the parts beside it.
# What a call carries is at most 64 MiB with the tracked tree (about 15 MB), .debs (4) and the
# FSDD training split (19): room for one d_model 64 run's archive, not two. A carried run resumes
# without its best model unless NAME.safetensors lies beside its archive; either way train writes
# a new one only when its validation beats the run's best.json, so keep the one that came back.
# A dry run here: DEVICE=cpu MW=build/bin/mambawave WORK=/tmp/lt ... (tiny ARGS; SPLIT=100k to see parts;
# DATA=folder for other clips than .carry/fsdd/train). tests/long_run_test.sh does so in ctest.
# Each call's output ends with each run's MW_HOST_TRACE table (kernels/host_trace.h; MW_HOST_TRACE=0
# leaves it out): per training step, the host's own work and its waits for the GPU at the six
# sites with most time, and the totals, over the whole call.
# It exits 0 when every run has finished all its steps, 3 when one stopped at DEADLINE to go on,
# 1 when one failed.
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[[ -n ${STEPS:-} || ${RUNS:-} == *:* ]] || { echo "STEPS=the whole run's steps (or NAME:STEPS in RUNS)"; exit 1; }
if [[ -z ${RUNS:-} ]]; then
  : "${NAME:?NAME=the run\'s name (or RUNS=\"NAME1 ARGS1;NAME2 ARGS2\")}" "${ARGS:?ARGS=train\'s model and data flags}"
  RUNS="$NAME $ARGS"
fi
IFS=';' read -ra runs <<< "$RUNS"
DEADLINE=${DEADLINE:-570}
export MW_BUILD_DIR=${MW_BUILD_DIR:-$PWD/build-dev/cli}
mkdir -p build-dev
if [[ -z ${MW:-} ]]; then  # MW=path/to/mambawave skips the build (a dry run on the CPU: DEVICE=cpu)
  . scripts/device_build.sh > "$OUT/build.log" 2>&1
  [[ -x ${MW:-} ]] || { echo "CLI build failed"; tail -30 "$OUT/build.log"; exit 1; }
  echo "CLI built at $(( $(date +%s) - T0 )) s"
fi
export LD_LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
WORK=${WORK:-/tmp/long}; mkdir -p "$WORK"
SPLIT=${SPLIT:-15M}; SPLIT=${SPLIT^^}  # (numfmt's suffixes are capitals)

# Where a run starts: this machine's checkpoint, else a carried archive, else fresh. Prints the
# resume flag, or nothing; fails with a message for an archive that is not the run's.
start_of() {
  local name=$1 run=$WORK/$1.run archive="" parts
  if [[ -f $run/checkpoint/trainer.safetensors ]]; then
    echo "$name: resuming $run (this machine's)" >&2; echo --resume; return 0
  fi
  if [[ -n ${CARRY_RUN:-} && $(basename "$CARRY_RUN") == "${name}_run.tgz" ]]; then archive=$CARRY_RUN
  elif [[ -n ${CARRY_DIR:-} ]]; then archive=$CARRY_DIR/${name}_run.tgz; fi
  [[ -n $archive ]] || return 0
  parts=("$archive"); [[ -f $archive ]] || parts=("$archive".[0-9][0-9])  # (whole, or in parts)
  if [[ ! -f ${parts[0]} ]]; then
    [[ -n ${CARRY_RUN:-} ]] && { echo "CARRY_RUN=$CARRY_RUN: no such file, nor its parts .00, .01, ... (carry its folder)" >&2; return 1; }
    echo "$name: nothing in CARRY_DIR=$CARRY_DIR: a fresh run" >&2; return 0
  fi
  # (the archive holds the run directory and train's summary; an older one the best model too)
  rm -rf "$run" "$WORK/$name.safetensors" && cat "${parts[@]}" | tar xzf - -C "$WORK" ||
    { echo "$archive: not a run archive (${#parts[@]} file(s))" >&2; return 1; }
  [[ -f $run/checkpoint/trainer.safetensors ]] || { echo "$archive holds no $name.run/checkpoint/trainer.safetensors" >&2; return 1; }
  local best; best=$(dirname "$archive")/$name.safetensors
  if [[ -f $best ]]; then cp "$best" "$WORK/"
  elif [[ ! -f $WORK/$name.safetensors ]]; then
    echo "$name: its best model so far was not carried (keep the one that came back: a new one is written only if it does better)" >&2
  fi
  echo "$name: resuming the carried run $archive" >&2; echo --resume
}

# One run until DEADLINE, then its files into $OUT. Its exit status is train's.
one_run() {
  local name=$1 args=$2 left=$3 resume=$4 steps=$5 run=$WORK/$1.run rc
  # shellcheck disable=SC2086  # args is a list of flags
  MW_HOST_TRACE=${MW_HOST_TRACE:-1} timeout -s TERM "$left" "$MW" train --data "${DATA:-.carry/fsdd/train}" --out "$WORK/$name.safetensors" --run-dir "$run" \
    --steps "$steps" --lr "${LR:-3e-3}" --lr-warmup "${WARMUP:-100}" --val-every "${VE:-1000}" \
    --checkpoint-every 100000000 --device "${DEVICE:-cuda}" --threads "$threads" --no-plot --json $resume $args \
    > "$WORK/$name.json" 2> "$WORK/$name.log" < /dev/null
  rc=$?
  [[ -f $WORK/$name.safetensors ]] || echo "$name: no model here (no validation yet, or none beat the carried run's best)"
  cp "$WORK/$name.safetensors" "$OUT/" 2>/dev/null
  if [[ -z ${LEAN:-} ]]; then
    cp "$WORK/$name.json" "$OUT/"
    (( ${#names[@]} == 1 )) && cp "$run/log.csv" "$OUT/${name}_log.csv" 2>/dev/null
  fi
  tar czf "$OUT/${name}_run.tgz" -C "$WORK" "$name.run" "$name.json"
  if [[ $(stat -c %s "$OUT/${name}_run.tgz") -gt $(numfmt --from=iec "$SPLIT") ]]; then
    split -b "$SPLIT" -d "$OUT/${name}_run.tgz" "$OUT/${name}_run.tgz." && rm "$OUT/${name}_run.tgz"
    echo "$name: the run's archive comes back in $(ls "$OUT/${name}_run.tgz."* | wc -l) parts"
  fi
  return $rc
}

names=(); args=(); resumes=(); steps=()
for r in "${runs[@]}"; do
  read -r r <<< "$r"  # (trimmed)
  [[ -n $r ]] || continue
  first=${r%% *}; names+=("${first%%:*}"); [[ $r == *" "* ]] && args+=("${r#* }") || args+=("")
  if [[ $first == *:* ]]; then steps+=("${first#*:}"); else steps+=("${STEPS:-}"); fi
  [[ ${steps[-1]} =~ ^[1-9][0-9]*$ ]] || { echo "${names[-1]}: its steps '${steps[-1]}' are not a count (STEPS=N, or NAME:N in RUNS)"; exit 1; }
  resumes+=("$(start_of "${names[-1]}")") || exit 1
done
(( ${#names[@]} > 0 )) || { echo "RUNS=$RUNS: no run"; exit 1; }
threads=$(( $(nproc) / ${#names[@]} )); (( threads > 0 )) || threads=1  # (the host's cores, shared out)
left=$(( DEADLINE - ($(date +%s) - T0) ))
(( left > 30 )) || { echo "only $left s before DEADLINE=$DEADLINE: nothing trained"; exit 1; }
echo "training ${names[*]} for at most $left s"
pids=()
for i in "${!names[@]}"; do
  one_run "${names[$i]}" "${args[$i]}" "$left" "${resumes[$i]}" "${steps[$i]}" & pids+=($!)
done
status=0
for i in "${!names[@]}"; do
  name=${names[$i]}
  wait "${pids[$i]}"; rc=$?
  # (train's last words come before MW_HOST_TRACE's table, which it prints at its exit)
  tr '\r' '\n' < "$WORK/$name.log" | awk '/^host trace over/ {exit} {print}' | grep -v -e "^train \[" -e "^$" |
    tail -4 | sed "s/^/$name: /"
  awk -v rows=6 -v prefix="$name: " -f scripts/host_trace_top.awk "$WORK/$name.log"
  summary=$(python3 -c "import json; j=json.load(open('$WORK/$name.json')); print(j['steps_done'], 'of', j['steps'], 'steps, best', round(j['best'], 4), 'at step', j['best_step'])" 2>/dev/null) ||
    summary="no summary from train"
  echo "$name: rc $rc; $summary"
  # 0: all its steps done; 130/143 (or timeout's 124): stopped at DEADLINE with a checkpoint, unless
  # the stop came as the last step was being written (its summary says every step is done)
  [[ $summary == "${steps[$i]} of ${steps[$i]} steps"* ]] && rc=0
  if [[ $rc == 124 || $rc == 130 || $rc == 143 ]]; then (( status == 1 )) || status=3
  elif [[ $rc != 0 ]]; then echo "$name: train failed (rc $rc):"; tail -5 "$WORK/$name.log"; status=1; fi
done
echo "done at $(( $(date +%s) - T0 )) s"
exit $status
