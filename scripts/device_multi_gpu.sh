#!/usr/bin/env bash
# Data-parallel training on the GPU machine (issue 5): builds the CLI with CUDA and NCCL, then
#   1. one GPU plain against the same run as NCCL rank 0 of 1 (`--rank 0 --world-size 1`):
#      the NCCL path (rendezvous, all-reduce of host buffers) must give the same weights;
#   2. with 2+ GPUs: `--gpus 2` against one GPU with the same global batch (up to float
#      rounding), and the scaling of samples/s from 1 to 2 GPUs on a large generator shape;
#   3. the Catch2 cases tagged [parallel] (CPU ranks, and two ranks sharing the GPU).
# Results: $OUT/multi_gpu.log (and the runs' JSON). Device call: carry [".debs"];
#   command: OUT=$OUT bash scripts/device_multi_gpu.sh          (kind nvidia-h200-x2 for step 2)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LOG=$OUT/multi_gpu.log
exec > >(tee -a "$LOG") 2>&1
export NCCL_NVLS_ENABLE=0  # never NVLink multicast on these shared hosts (device KINDS.md)
T0=$(date +%s)
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
echo "GPUs: $GPUS"
if [[ ! -f /usr/local/cuda/include/nccl.h ]]; then  # else the PyTorch wheel's NCCL
  NCCL_HOME=$(python3 -c "import nvidia.nccl as m; print(list(m.__path__)[0])" 2>/dev/null) && export NCCL_HOME
  echo "NCCL_HOME=${NCCL_HOME:-none}"
fi
MW_BUILD_TESTS=OFF . scripts/device_build.sh >"$OUT/build.log" 2>&1
grep -h NCCL /tmp/b.cfg.log; echo "built at $(( $(date +%s) - T0 )) s"
[[ -x ${MW:-} ]] || { tail -20 "$OUT/build.log"; exit 1; }
W=/tmp/mgpu; rm -rf $W; mkdir -p $W/rv $W/gen
python3 - "$W" <<'PY'
import struct, sys, numpy as np
w = sys.argv[1]
def wav(path, x, rate):
    x = np.asarray(x, '<f4'); d = x.tobytes(); fmt = struct.pack('<HHIIHH', 3, 1, rate, rate * 4, 4, 32)
    open(path, 'wb').write(b'RIFF' + struct.pack('<I', 4 + 8 + len(fmt) + 8 + len(d)) + b'WAVE' + b'fmt ' +
                           struct.pack('<I', len(fmt)) + fmt + b'data' + struct.pack('<I', len(d)) + d)
rng = np.random.default_rng(3); n = 20 * 48000
t = np.arange(n) / 48000
x = 0.4 * np.sin(2 * np.pi * 110 * t * (1 + 0.5 * np.sin(t))) * (0.5 + 0.5 * np.sin(3 * t)) + 0.02 * rng.standard_normal(n)
wav(f'{w}/di.wav', x, 48000); wav(f'{w}/rec.wav', 0.5 * np.tanh(3 * x), 48000)
for i in range(8):  # generator data: 8 clips of 20 s at 8 kHz, tones with noise
    tt = np.arange(20 * 8000) / 8000
    wav(f'{w}/gen/clip{i}.wav', 0.5 * np.sin(2 * np.pi * (200 + 50 * i) * tt) + 0.05 * rng.standard_normal(len(tt)), 8000)
PY
fx=(train --input $W/di.wav --target $W/rec.wav --d-model 16 --layers 4 --batch 8 --segment 2048 --steps 150
    --val-every 50 --lr 3e-3 --no-plot --json --device cuda)
compare() {  # compare A B LIMIT: the largest weight difference
  python3 - "$@" <<'PY'
import sys
from safetensors.numpy import load_file
a, b, limit = load_file(sys.argv[1]), load_file(sys.argv[2]), float(sys.argv[3])
worst = max(float(abs(a[k].astype('f8') - b[k].astype('f8')).max()) for k in a)
moved = sorted(a) == sorted(b)
print(f"largest weight difference {worst:.3g} (limit {limit:g}) -> {'PASS' if worst <= limit and moved else 'FAIL'}")
PY
}
echo "== 1. one GPU, plain vs NCCL rank 0 of 1"
$MW "${fx[@]}" --out $W/one.safetensors >$OUT/one.json 2>$OUT/one.log; tail -c 300 $OUT/one.json
$MW "${fx[@]}" --out $W/nccl1.safetensors --rank 0 --world-size 1 --rendezvous $W/rv >$OUT/nccl1.json 2>$OUT/nccl1.log
tail -c 300 $OUT/nccl1.json; grep -h 'rank 0' $OUT/nccl1.log
compare $W/one.safetensors $W/nccl1.safetensors 0
if [[ $GPUS -ge 2 ]]; then
  echo "== 2. --gpus 2 vs one GPU, same global batch"
  $MW "${fx[@]}" --out $W/two.safetensors --gpus 2 >$OUT/two.json 2>$OUT/two.log; tail -c 300 $OUT/two.json
  compare $W/one.safetensors $W/two.safetensors 1e-3
  echo "== scaling, generator d_model 256 x 4, batch 16 x 16384"
  gen=(train --data $W/gen --d-model 256 --layers 4 --batch 16 --segment 16384 --steps 40 --val-every 1000
       --no-plot --json --device cuda)
  $MW "${gen[@]}" --out $W/g1.safetensors >$OUT/g1.json 2>/dev/null; cat $OUT/g1.json
  $MW "${gen[@]}" --out $W/g2.safetensors --gpus 2 >$OUT/g2.json 2>/dev/null; cat $OUT/g2.json
  python3 -c "import json; a=json.load(open('$OUT/g1.json')); b=json.load(open('$OUT/g2.json')); print('1 -> 2 GPUs: %.3g -> %.3g samples/s, %.2fx' % (a['samples_per_second'], b['samples_per_second'], b['samples_per_second']/a['samples_per_second']))"
fi
echo "== 3. Catch2 [parallel]"
MW_BUILD_TESTS=ON . scripts/device_build.sh >"$OUT/build_tests.log" 2>&1
if [[ -x /tmp/b/bin/mw_tests ]]; then
  timeout 120 /tmp/b/bin/mw_tests "[parallel]" 2>&1 | tail -4
else
  grep -B2 -A10 -E "error|FAILED" /tmp/b/build_mw_tests.log | head -40
fi
echo "done at $(( $(date +%s) - T0 )) s"
