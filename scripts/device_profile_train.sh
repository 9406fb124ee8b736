#!/usr/bin/env bash
# On the GPU machine: where a training step's time goes, kernel by kernel, under Nsight Compute
# (each launch's duration only), the kernels listed by their share of the step
# (scripts/ncu_summary.py). Logs under $OUT.
#
# The training tape alone, on the bench's random models: builds the standalone CUDA tree
# (kernels/cuda) and profiles one warm-up and two timed steps of mw_bench_cuda --train-one/--train-gen:
#   bash scripts/device_profile_train.sh ["gen 64 6 16 8192;eff 16 4 32 4096;..."]
#
# The CLI's own `train`, whole steps as a run takes them (pooled generators, self-feed, labels,
# the gradients' trip to the host and AdamW included): builds the CLI (scripts/device_build.sh:
# carry .debs) and trains on DATA (default .carry/fsdd/train: carry .carry/fsdd):
#   TRAIN="large:--pool 4,4 --d-model 64 --layers 2 --batch 32 --segment 4000 ...;small:..." \
#     bash scripts/device_profile_train.sh
# Each run is timed plain first, STEPS steps (default 80): its last second's samples/s and its
# mean samples a step give a step's wall time. Then a fresh run of the same flags under ncu
# captures steps CAPTURE (default 6:7, counted from 1: the trainer's MW_PROFILE_STEPS), so the
# tape's allocation, cuBLAS's start and the validation stay out of the profile. The summary says
# what share of a step's wall time the kernels fill; the rest is copies, host work and gaps. The
# plain line splits a step's forward and backward into the host's waits for the GPU and its own
# work (train --json's gpu_wait_seconds), and the plain run's MW_HOST_TRACE table (kernels/host_trace.h)
# says at which of the tapes' waits (file:line) the host's own work and its waits fall, per step,
# the 12 sites with most time and the totals (the whole table is in $OUT/NAME_plain.err). Where Nsight Systems is installed (or NSYS=path; the lent
# GPU machines' image lacks it), a third run records the same steps' timeline, and
# scripts/nsys_summary.py says how long the GPU sat idle and what the host did meanwhile.
# PROFILERS="ncu", "nsys" or "none" (default "ncu nsys") picks them; "none" times the runs alone.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/mw-profile}
mkdir -p "$OUT"
NCU=(ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw --print-units base)

if [[ -n ${TRAIN:-} ]]; then
  DATA=${DATA:-.carry/fsdd/train}; STEPS=${STEPS:-80}; CAPTURE=${CAPTURE:-6:7}
  [[ -d $DATA ]] || { echo "DATA=$DATA: no such folder (carry .carry/fsdd, or name the clips' folder)"; exit 1; }
  [[ $CAPTURE =~ ^([0-9]+):([0-9]+)$ ]] || { echo "CAPTURE=$CAPTURE: expected FIRST:LAST"; exit 1; }
  c0=${BASH_REMATCH[1]} c1=${BASH_REMATCH[2]}
  (( c0 >= 1 && c1 >= c0 )) || { echo "CAPTURE=$CAPTURE: expected 1 <= FIRST <= LAST"; exit 1; }
  if [[ -z ${MW:-} ]]; then  # MW=path/to/mambawave skips the build (a dry run here: DEVICE=cpu)
    export MW_BUILD_DIR=${MW_BUILD_DIR:-$PWD/build-dev/cli}
    mkdir -p build-dev
    . "$here/device_build.sh" > "$OUT/build.log" 2>&1
    [[ -x ${MW:-} ]] || { echo "CLI build failed"; tail -30 "$OUT/build.log"; exit 1; }
  fi
  DEVICE=${DEVICE:-cuda}
  # Nsight Systems, where installed: the same steps' timeline (scripts/nsys_summary.py)
  NSYS=${NSYS:-$(command -v nsys || ls /opt/nvidia/nsight-systems/*/bin/nsys /usr/local/cuda/bin/nsys 2>/dev/null | head -1)}
  W=${WORK:-/tmp/mw-profile-runs}  # the runs' files, made anew for each
  IFS=';' read -ra runs <<< "$TRAIN"
  for r in "${runs[@]}"; do
    [[ $r == ?*:* ]] || { echo "TRAIN: \"$r\": expected NAME:FLAGS"; exit 1; }
  done
  for r in "${runs[@]}"; do
    name=${r%%:*} flags=${r#*:}
    echo "== $name: train $flags"
    rm -rf "$W" && mkdir -p "$W"
    # (flags unquoted on purpose: they are train's words)
    # shellcheck disable=SC2086
    MW_HOST_TRACE=1 "$MW" train --data "$DATA" --out "$W/plain.safetensors" --run-dir "$W/plain.run" --device "$DEVICE" $flags \
        --steps "$STEPS" --val-every 1000000 --no-plot --json > "$OUT/${name}_plain.json" 2> "$OUT/${name}_plain.err" ||
      { echo "$name: train failed"; tail -5 "$OUT/${name}_plain.err"; continue; }
    timing=$(python3 -c 'import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
n, rate, sec = j["steps_done"], j["samples_per_second"], j["seconds"]
step_ms = 1e3 * j["samples_seen"] / n / rate
print("%.3f" % step_ms)
fb, wait = sec["forward_backward"], j.get("gpu_wait_seconds")  # (None: a CLI from before it)
split = "" if wait is None else " (the host waiting for the GPU %.2f ms, its own work %.2f ms)" % (
    1e3 * wait / n, 1e3 * (fb - wait) / n)
print("  plain: %d steps, %.4g samples/s over the last second (a step %.2f ms); per step over the run: "
      "forward + backward %.2f ms%s, update %.2f ms" % (n, rate, step_ms, 1e3 * fb / n, split, 1e3 * sec["update"] / n))' \
        "$OUT/${name}_plain.json")
    wall_ms=${timing%%$'\n'*}
    echo "${timing#*$'\n'}"
    # MW_HOST_TRACE's table (a CLI from before it, or the CPU, prints none): the sites with most
    # time, then the totals
    awk -v rows=12 -v prefix="  " -f "$here/host_trace_top.awk" "$OUT/${name}_plain.err"
    [[ ${PROFILERS:-ncu nsys} == *ncu* ]] || continue  # PROFILERS=none: the plain timing alone (A/B runs)
    command -v ncu > /dev/null || { echo "  (no ncu on this machine: no profile)"; continue; }
    rm -rf "$W" && mkdir -p "$W"
    # shellcheck disable=SC2086
    MW_PROFILE_STEPS=$CAPTURE "${NCU[@]}" --profile-from-start off \
      "$MW" train --data "$DATA" --out "$W/ncu.safetensors" --run-dir "$W/ncu.run" --device "$DEVICE" $flags \
        --steps "$c1" --val-every 1000000 --no-plot > "$OUT/$name.csv" 2> "$OUT/$name.err"
    python3 "$here/ncu_summary.py" "$OUT/$name.csv" --steps $((c1 - c0 + 1)) --wall-ms "$wall_ms"
    [[ ${PROFILERS:-ncu nsys} == *nsys* ]] || continue
    [[ -n $NSYS ]] || { echo "  (no nsys on this machine: no timeline)"; continue; }
    rm -rf "$W" && mkdir -p "$W"
    # shellcheck disable=SC2086
    MW_PROFILE_STEPS=$CAPTURE "$NSYS" profile --capture-range=cudaProfilerApi --capture-range-end=stop \
      --trace=cuda,osrt --sample=none --force-overwrite true -o "$OUT/$name" \
      "$MW" train --data "$DATA" --out "$W/nsys.safetensors" --run-dir "$W/nsys.run" --device "$DEVICE" $flags \
        --steps "$c1" --val-every 1000000 --no-plot > "$OUT/$name.nsys.log" 2>&1 &&
    "$NSYS" stats --report cuda_gpu_trace,cuda_api_trace --format csv --force-export true -o "$OUT/$name" \
      "$OUT/$name.nsys-rep" >> "$OUT/$name.nsys.log" 2>&1 ||
      { echo "$name: nsys failed"; tail -5 "$OUT/$name.nsys.log"; continue; }
    python3 "$here/nsys_summary.py" "$OUT/${name}_cuda_gpu_trace.csv" "$OUT/${name}_cuda_api_trace.csv" \
      --steps $((c1 - c0 + 1))
  done
  exit 0
fi

B=/tmp/mwcuda
SHAPES=${1:-"gen 64 6 16 8192;gen 32 6 32 4000;eff 16 4 32 4096;gen 256 4 16 16384"}
G=Ninja; command -v ninja > /dev/null || G="Unix Makefiles"
if ! { cmake -S kernels/cuda -B $B -G "$G" -DCMAKE_BUILD_TYPE=Release && cmake --build $B -j16 --target mw_bench_cuda; } > "$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"; exit 1
fi
IFS=';' read -ra runs <<< "$SHAPES"
for r in "${runs[@]}"; do
  read -r kind d l b len <<< "$r"
  flag=--train-one; [[ $kind == gen ]] && flag=--train-gen
  name="${kind}_D${d}x${l}_B${b}_L${len}"
  echo "== $name: plain timing"
  $B/bin/mw_bench_cuda $flag "$d" "$l" "$b" "$len" 2>&1 | grep -E "^train"
  "${NCU[@]}" $B/bin/mw_bench_cuda $flag "$d" "$l" "$b" "$len" --train-steps 2 > "$OUT/$name.csv" 2> "$OUT/$name.err"
  python3 "$here/ncu_summary.py" "$OUT/$name.csv" --steps 3  # (a warm-up and two timed steps)
done
