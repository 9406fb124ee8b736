#!/usr/bin/env bash
# The STFT loss on the GPU (kernels/cuda/stft_loss.cu, cuFFT) in one device call: builds the CUDA
# checks and the CLI with its Catch2 suite, runs the checks (mw_test_cuda's "stft loss" and
# "train" groups, Catch2's "[train][cuda]"), then, side by side in this run: the loss alone for a
# batch on the GPU against one CPU core doing it lane after lane as the trainer did before
# (mw_bench_cuda --stft), and an effect's training on the GPU with ESR alone and with
# --stft-weight 0.1, in samples per second.
# From the repository root on the GPU machine, with .debs/ carried:
#   device call: carry [".debs"]
#   bash scripts/device_stft.sh
# Back in $OUT: stft.log (every run's JSON line and the table), test.log, catch2.log.
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
G=Ninja; command -v ninja >/dev/null || G="Unix Makefiles"
export MW_BUILD_DIR=$PWD/build-dev/cli
mkdir -p build-dev
( cmake -S kernels/cuda -B build-dev/cuda -G "$G" -DCMAKE_BUILD_TYPE=Release -DMW_CUDA_ARCHITECTURES=90-real &&
  cmake --build build-dev/cuda -j8 --target mw_test_cuda mw_bench_cuda ) > "$OUT/build_cuda.log" 2>&1 &
cuda_pid=$!
( export MW_BUILD_TESTS=ON; . scripts/device_build.sh ) > "$OUT/build_cli.log" 2>&1 &
cli_pid=$!
wait $cuda_pid || { echo "CUDA build failed"; grep -E -A5 "error|FAILED" "$OUT/build_cuda.log" | head -40; exit 1; }
rm -f "$OUT/build_cuda.log"
export LD_LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
timeout 200 build-dev/cuda/bin/mw_test_cuda "stft loss" "=train" > "$OUT/test.log" 2>&1
echo "mw_test_cuda rc $? at $(( $(date +%s) - T0 )) s"; grep -v '^ok ' "$OUT/test.log" | tail -6; grep 'STFT' "$OUT/test.log"
wait $cli_pid
MW=$MW_BUILD_DIR/bin/mambawave
[[ -x $MW ]] || { echo "CLI build failed"; tail -30 "$OUT/build_cli.log"; exit 1; }
rm -f "$OUT/build_cli.log"
timeout 240 $MW_BUILD_DIR/bin/mw_tests "[train][cuda]" > "$OUT/catch2.log" 2>&1
echo "mw_tests [train][cuda] rc $? at $(( $(date +%s) - T0 )) s"; tail -3 "$OUT/catch2.log"

# A minute of guitar-like tones through an asymmetric clipper, at 48 kHz (as tests/train_test.sh's).
W=/tmp/stft_bench; mkdir -p $W
python3 - $W <<'PYEOF'
import struct, sys
import numpy as np
def write_wav(path, x, rate):
    x = np.asarray(x, dtype='<f4'); data = x.tobytes()
    fmt = struct.pack('<HHIIHH', 3, 1, rate, rate * 4, 4, 32)
    with open(path, 'wb') as f:
        f.write(b'RIFF' + struct.pack('<I', 4 + 8 + len(fmt) + 8 + len(data)) + b'WAVE')
        f.write(b'fmt ' + struct.pack('<I', len(fmt)) + fmt + b'data' + struct.pack('<I', len(data)) + data)
rng = np.random.default_rng(1); rate = 48000; n = 60 * rate
x = np.zeros(n); pos = 0
while pos < n:
    s = np.arange(min(int(rate * rng.uniform(0.15, 0.6)), n - pos)) / rate
    f = 82.4 * 2 ** (rng.integers(0, 36) / 12)
    x[pos:pos + len(s)] += rng.uniform(0.05, 0.5) * sum(np.sin(2 * np.pi * f * k * s) / k for k in (1, 2, 3)) * np.exp(-s * rng.uniform(2, 12))
    pos += len(s)
x *= 0.5 / np.max(np.abs(x))
write_wav(sys.argv[1] + '/di.wav', x, rate)
write_wav(sys.argv[1] + '/rec.wav', 0.5 * np.tanh(4 * x + 0.3) - 0.5 * np.tanh(0.3), rate)
PYEOF
run() {  # name binary [flags]: 300 steps of a D16x4 effect, batch 16 x 8192, on the GPU
  local name=$1 bin=$2; shift 2
  timeout 150 $bin train --input $W/di.wav --target $W/rec.wav --out $W/$name.safetensors --run-dir $W/$name.run \
    --d-model 16 --layers 4 --batch 16 --segment 8192 --steps ${STEPS:-300} --lr 1e-3 --val-every 100000 \
    --checkpoint-every 100000 --device cuda --threads 16 --no-plot --json "$@" </dev/null 2>/dev/null | tail -1 |
    python3 -c "import json,sys; j=json.loads(sys.stdin.read()); print('$name', round(j['samples_per_second']), j['wall_seconds'], j['best'])"
}
{
  run esr $MW
  run stft $MW --stft-weight 0.1
  for L in 4096 8192 16384; do build-dev/cuda/bin/mw_bench_cuda --stft 16 $L | grep '^STFT'; done
} | tee "$OUT/stft.log"
echo "total $(( $(date +%s) - T0 )) s"
