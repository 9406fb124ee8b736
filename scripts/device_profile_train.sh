#!/usr/bin/env bash
# On the GPU machine: where a training step's time goes, kernel by kernel. Builds the standalone
# CUDA tree (kernels/cuda), then for each shape runs one warm-up and two timed steps of the
# training tape (mw_bench_cuda --train-one/--train-gen) under Nsight Compute, reading only each
# launch's duration, and prints the kernels by their share of the step. Logs under $OUT.
#   bash scripts/device_profile_train.sh ["gen 64 6 16 8192;eff 16 4 32 4096;..."]
set -uo pipefail
OUT=${OUT:-/tmp/mw-profile}
mkdir -p "$OUT"
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
  ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
      $B/bin/mw_bench_cuda $flag "$d" "$l" "$b" "$len" --train-steps 2 > "$OUT/$name.csv" 2> "$OUT/$name.err"
  python3 - "$OUT/$name.csv" <<'PY'
import csv, sys, collections, re
rows = [l for l in open(sys.argv[1]) if l.startswith('"')]
rd = csv.DictReader(rows)
tot = collections.defaultdict(float); cnt = collections.Counter()
for row in rd:
    try: t = float(row["gpu__time_duration.sum"])
    except (KeyError, ValueError): continue
    k = re.sub(r"\(.*", "", row["Kernel Name"])[:70]
    tot[k] += t; cnt[k] += 1
# three steps ran (warm-up + 2): per step = total / 3
all_ = sum(tot.values())
print(f"  kernels' time per step {all_/3/1e6:.2f} ms (sum of launch durations / 3 steps)")
for k, t in sorted(tot.items(), key=lambda kv: -kv[1])[:22]:
    print(f"  {100*t/all_:5.1f}%  {t/3/1e3:9.1f} us/step  {cnt[k]//3:4d} launches/step  {k}")
PY
done
