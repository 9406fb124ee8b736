#!/usr/bin/env bash
# On the GPU machine, from the repository root (needs .debs/ from scripts/device_debs.sh):
# builds the CLI with CUDA, runs the CLI end-to-end tests there (their CUDA section included),
# then times `mambawave render --device cuda` over one hour of 48 kHz stereo for each shipped
# effect preset, file I/O included (16-bit WAV in, 32-bit float WAV out), with peak memory,
# and checks a 5-minute render on the GPU against the CPU. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee "$OUT/render_hour.log") 2>&1
REPO=$(pwd)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
. scripts/device_build.sh || exit 1
echo "== CLI tests with $MW"
bash tests/cli_test.sh "$MW" "$REPO" > "$OUT/cli_test.log" 2>&1; echo "cli_test rc=$?"
grep -c "^ok" "$OUT/cli_test.log"; grep "^FAIL\|cuda" "$OUT/cli_test.log" | head -20; tail -2 "$OUT/cli_test.log"
W=/tmp/hour; mkdir -p $W; cd $W
python3 - <<'PY'
# One hour (and five minutes) of 48 kHz stereo, 16-bit: plucked notes over a quiet noise floor.
import numpy as np, struct
rate = 48000
def wav16(path, x):
    data = (np.clip(x, -1, 1) * 32767).astype('<i2').tobytes()
    fmt = struct.pack('<HHIIHH', 1, 2, rate, rate * 4, 4, 16)
    body = b'WAVE' + b'fmt ' + struct.pack('<I', 16) + fmt + b'data' + struct.pack('<I', len(data)) + data
    open(path, 'wb').write(b'RIFF' + struct.pack('<I', len(body)) + body)
rng = np.random.default_rng(7)
bar = rate * 2                                   # a 2 s phrase of 8 notes, tiled
t = np.arange(bar // 8) / rate
notes = [np.sin(2 * np.pi * f * t) * np.exp(-t * 6) for f in 82.4 * 2 ** (rng.integers(0, 24, 8) / 12)]
phrase = 0.5 * np.concatenate(notes)
for name, seconds in (('five_min.wav', 300), ('hour.wav', 3600)):
    n = seconds * rate
    left = np.tile(phrase, seconds // 2)[:n]
    x = np.stack([left, np.roll(left, 12345)], 1) + 1e-3 * rng.standard_normal((n, 2))
    wav16(name, x.astype(np.float32))
PY
ls -l $W/*.wav
for p in ts9 ds1; do
  echo "== $p: one hour of 48 kHz stereo, --device cuda"
  /usr/bin/time -f "wall %e s, max RSS %M KB" "$MW" render -m "$REPO/presets/$p.safetensors" -i hour.wav -o hour_$p.wav --device cuda 2>&1 | tr '\r' '\n' | grep -v "^render \[" | tail -4
  ls -l hour_$p.wav; rm -f hour_$p.wav
done
echo "== ts9: five minutes, cuda vs cpu ($(nproc) threads)"
"$MW" render -m "$REPO/presets/ts9.safetensors" -i five_min.wav -o five_cuda.wav --device cuda -c drive=0.8 -c tone=300 2>&1 | tail -1
"$MW" render -m "$REPO/presets/ts9.safetensors" -i five_min.wav -o five_cpu.wav --device cpu -c drive=0.8 -c tone=300 2>&1 | tail -1
python3 - <<'PY'
import numpy as np
def wav(p):
    b = open(p, 'rb').read(); i = b.index(b'data'); return np.frombuffer(b[i+8:], '<f4').reshape(-1, 2).astype(np.float64)
a, b = wav('five_cuda.wav'), wav('five_cpu.wav')
d = np.abs(a - b)
print('five minutes stereo: %d frames, max |cuda - cpu| %.3g, relative to max |cpu| %.3g: %.3g'
      % (len(a), d.max(), np.abs(b).max(), d.max() / np.abs(b).max()))
PY
