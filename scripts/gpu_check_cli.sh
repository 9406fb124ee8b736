#!/usr/bin/env bash
# GPU check of `render/run --device cuda` (run on the device machine from the repo root).
# Needs the Debian 12 .debs of libsndfile, libsamplerate, CLI11 and nlohmann-json (and their
# libraries) in .debs/, made here with `apt-get download` and carried to the device machine,
# which has none of them. .debs/ is git-ignored (.git/info/exclude).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
exec > >(tee $OUT/log.txt) 2>&1
nvidia-smi -L; nvcc --version | tail -2; cmake --version | head -1; gcc --version | head -1
D=/tmp/deb; rm -rf $D; mkdir -p $D
for f in .debs/*.deb; do dpkg -x $f $D; done
LIB=$D/usr/lib/x86_64-linux-gnu
for pc in $(find $D -name '*.pc'); do sed -i "s|^prefix=/usr|prefix=$D/usr|; s|-I/usr/include|-I$D/usr/include|; /^Requires.private/d" $pc; done
export PKG_CONFIG_PATH=$LIB/pkgconfig:$D/usr/share/pkgconfig LD_LIBRARY_PATH=$LIB:${LD_LIBRARY_PATH:-}
PKC=$(command -v pkg-config || echo $D/usr/bin/pkgconf)
command -v ninja >/dev/null || export PATH=$PATH:$D/usr/bin
echo "pkg-config: $PKC"; $PKC --cflags --libs sndfile samplerate
cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DMW_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH=$D/usr \
  -DPKG_CONFIG_EXECUTABLE=$PKC -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$LIB -Wl,-rpath,$LIB" >/tmp/cfg.log 2>&1 \
  || { tail -30 /tmp/cfg.log; exit 1; }
grep -i "cuda" /tmp/cfg.log
time cmake --build /tmp/b -j16 --target mambawave 2>&1 | tail -3 || exit 1
M=/tmp/b/bin/mambawave; cd /tmp
python3 - <<'PY'
import numpy as np, struct
rate, n = 48000, 60 * 48000
t = np.arange(n) / rate
rng = np.random.default_rng(0)
x = np.stack([0.4*np.sin(2*np.pi*(220+110*c)*t) + 0.05*(rng.random(n)-0.5) for c in range(2)], 1).astype('<f4')
data = x.tobytes(); fmt = struct.pack('<HHIIHH', 3, 2, rate, rate*8, 8, 32)
body = b'WAVE' + b'fmt ' + struct.pack('<I', 16) + fmt + b'data' + struct.pack('<I', len(data)) + data
open('in60.wav', 'wb').write(b'RIFF' + struct.pack('<I', len(body)) + body)
np.save('x60.npy', x[:, 0].copy())
PY
$M init --kind effect --out fx.safetensors --seed 1 --control drive:0:1:0.5
$M info fx.safetensors | head -8
echo "== render cpu";  $M render -m fx.safetensors -i in60.wav -o cpu.wav -c drive=0.7 --device cpu
echo "== render cuda"; $M render -m fx.safetensors -i in60.wav -o cuda.wav -c drive=0.7 --device cuda
echo "== render cuda again"; $M render -m fx.safetensors -i in60.wav -o cuda2.wav -c drive=0.7 --device cuda
echo "== render auto"; $M render -m fx.safetensors -i in60.wav -o auto.wav -c drive=0.7
echo "== run cpu";  $M run -m fx.safetensors -i x60.npy -o ycpu.npy -c drive=0.7 --device cpu
echo "== run cuda"; $M run -m fx.safetensors -i x60.npy -o ycuda.npy -c drive=0.7 --device cuda
echo "== run cuda --path step (usage error)"; $M run -m fx.safetensors -i x60.npy -o bad.npy --device cuda --path step; echo rc=$?
$M init --kind generator --out gen.safetensors --d-model 16 --layers 2 --seed 2 >/dev/null
python3 -c "import numpy as np; np.save('tok.npy', np.random.default_rng(1).integers(0,256,100000).astype(np.int16))"
echo "== run generator cpu/cuda"; $M run -m gen.safetensors -i tok.npy -o lcpu.npy --device cpu; $M run -m gen.safetensors -i tok.npy -o lcuda.npy --device cuda
python3 - <<'PY'
import numpy as np
def wav(p):
    b = open(p, 'rb').read(); i = b.index(b'data'); return np.frombuffer(b[i+8:], '<f4').reshape(-1, 2).astype(np.float64)
def cmp(name, a, b):
    d = np.abs(a - b); print('%-34s max abs diff %.3g, rel %.3g (max |cpu| %.3g), %d values' % (name, d.max(), d.max()/max(np.abs(b).max(),1e-6), np.abs(b).max(), a.size))
c = wav('cpu.wav')
cmp('render cuda vs cpu (both ch)', wav('cuda.wav'), c)
for ch in (0, 1): cmp('  channel %d' % ch, wav('cuda.wav')[:, ch], c[:, ch])
cmp('render cuda run2 vs run1', wav('cuda2.wav'), wav('cuda.wav'))
cmp('render auto vs cuda', wav('auto.wav'), wav('cuda.wav'))
cmp('run cuda vs cpu (batch 1)', np.load('ycuda.npy').astype(np.float64), np.load('ycpu.npy').astype(np.float64))
cmp('run cpu vs render cpu ch0', np.load('ycpu.npy').astype(np.float64), c[:, 0])
cmp('run generator logits cuda vs cpu', np.load('lcuda.npy').astype(np.float64), np.load('lcpu.npy').astype(np.float64))
PY
