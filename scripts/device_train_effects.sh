#!/usr/bin/env bash
# The effect ablation and preset training, run on the device machine's CPU cores: several
# (effect, shape) runs side by side (THREADS each) on the captures subset in .carry/fx (made
# here by scripts/device_effect_subset.sh), same data, steps, seed and schedule. Models, logs
# and run directories land in $OUT.
#   RUNS="name effect d_model layers d_state [extra train flags];..."  STEPS  THREADS  LIMIT (seconds per run)  LR
# A run named NAME starts from .carry/init/NAME.safetensors when that file is there (fine-tuning
# a model from an earlier round; .carry/ is git-ignored and travels with the device call).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nproc; lscpu | grep "Model name"
MW_WITH_CUDA=OFF . scripts/device_build.sh >$OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
STEPS=${STEPS:-4000}; THREADS=${THREADS:-3}; LIMIT=${LIMIT:-480}; LR=${LR:-4e-3}
RUNS=${RUNS:-"ts9_d12x3n8 ts9 12 3 8;ts9_d16x2n8 ts9 16 2 8;ts9_d8x3n8 ts9 8 3 8;ts9_d16x4n16 ts9 16 4 16;ds1_d12x3n8 ds1 12 3 8"}
IFS=';' read -ra list <<<"$RUNS"
pids=()
for s in "${list[@]}"; do
  read -r name effect dm layers ds extra <<<"$s"
  init=(); [ -f .carry/init/$name.safetensors ] && init=(--init .carry/init/$name.safetensors)
  timeout $LIMIT $MW train --manifest .carry/fx/manifest.json --effect $effect --out $OUT/$name.safetensors \
    --run-dir $OUT/$name.run --d-model $dm --layers $layers --d-state $ds --no-skip --preemph 0 \
    --batch 16 --segment 4096 --warmup 1024 --steps $STEPS --lr $LR --lr-warmup 100 --val-every 500 \
    --checkpoint-every 500 --threads $THREADS --no-plot "${init[@]}" ${extra:-} </dev/null >$OUT/$name.log 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
for s in "${list[@]}"; do read -r name _ <<<"$s"; echo "== $name"; tail -n 3 $OUT/$name.log | cut -c1-300; done
# One archive to bring back (the device tool returns few files): models, logs, curves, best.json.
(cd $OUT && tar czf results.tgz --exclude=checkpoint *.safetensors *.log *.run 2>/dev/null &&
  find . -mindepth 1 ! -name results.tgz -delete)
