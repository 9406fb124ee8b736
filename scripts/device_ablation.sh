#!/usr/bin/env bash
# The SSM-variant ablation (scripts/ssm_ablation.py, docs/ABLATION.md) on the GPU machine: makes
# the TS9 targets from the carried inputs, then trains every variant side by side on the one GPU
# until BUDGET seconds of the call are nearly spent, and packs the results into $OUT.
#   carry [".carry/fxdata", ".carry/fsdd_classes.npz"]   (scripts/device_effect_data.sh and
#   `python3 scripts/ssm_ablation.py pack-digits /work/shared/data/fsdd/train .carry/fsdd_classes.npz`)
#   TS9_RUNS / DIGITS_RUNS: "name layers [extra flags];..." (set empty: none of that task)   STEPS   BUDGET (default 570)
set -uo pipefail
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p $OUT/abl
BUDGET=${BUDGET:-570}; STEPS=${STEPS:-4000}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; python3 -c "import torch; print('torch', torch.__version__)"
python3 - <<'PY'
import json
m = json.load(open('.carry/fxdata/manifest.json'))
m['pairs'] = [p for p in m['pairs'] if p['effect'] == 'ts9']
json.dump(m, open('.carry/fxdata/manifest_ts9.json', 'w'))
PY
python3 scripts/captures/make_targets.py .carry/fxdata/manifest_ts9.json | tail -1 || exit 1
echo "targets made at $(( $(date +%s) - T0 )) s"
TS9_RUNS=${TS9_RUNS-"sel sel,sel,sel,sel;sel_seed2 sel,sel,sel,sel --seed 2;lti lti,lti,lti,lti;clti clti,clti,clti,clti;csel csel,csel,csel,csel;outer clti,sel,sel,clti;first clti,sel,sel,sel"}
DIGITS_RUNS=${DIGITS_RUNS-"digits_sel sel,sel,sel,sel,sel,sel;digits_first2 clti,clti,sel,sel,sel,sel"}
left=$(( BUDGET - ($(date +%s) - T0) - 40 ))
echo "training for at most $left s"
pids=()
run() {  # task name layers [extra]
  local task=$1 name=$2 layers=$3; shift 3
  local data=(--manifest .carry/fxdata/manifest_ts9.json)
  [[ $task == digits ]] && data=(--data .carry/fsdd_classes.npz --d-model 32 --val-every 500 --checkpoint)
  timeout $(( left + 30 )) python3 scripts/ssm_ablation.py train --task $task --name $name --layers $layers \
    --steps $STEPS --val-every 250 --max-seconds $left --out $OUT/abl "${data[@]}" "$@" >$OUT/abl/$name.log 2>&1 &
  pids+=($!)
}
IFS=';' read -ra list <<<"$TS9_RUNS"
for s in "${list[@]}"; do read -r name layers extra <<<"$s"; run ts9 $name $layers ${extra:-}; done
IFS=';' read -ra list <<<"$DIGITS_RUNS"
for s in "${list[@]}"; do read -r name layers extra <<<"$s"; run digits $name $layers ${extra:-}; done
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
wait "${pids[@]}"
for f in $OUT/abl/*.log; do echo "== $f"; tail -n 3 $f | cut -c1-400; done
python3 scripts/ssm_ablation.py table $OUT/abl
(cd $OUT && tar czf /tmp/abl.tgz abl && rm -rf abl && mv /tmp/abl.tgz .)
echo "done at $(( $(date +%s) - T0 )) s"
