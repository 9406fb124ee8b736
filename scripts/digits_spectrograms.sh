#!/usr/bin/env bash
# Spectrograms of the digits generator next to real takes: held-out recordings, continuations
# of their first 0.15 s, and free-running samples -> docs/images/digits-spectrograms.png
#   scripts/digits_spectrograms.sh [MODEL] [FSDD_DIR]     (OUT_PNG=path: write the plot elsewhere;
#   PYTHON=path: a python3 with numpy and matplotlib, default /usr/bin/python3)
# A labelled model (train --label-prefix) is asked for the digit of each column, guided at the
# weight it declares (`info`'s guidance line), or at GUIDANCE if set (0: plain sampling).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=$(realpath "${1:-$root/presets/digits.safetensors}")   # (the work below runs in a scratch folder)
fsdd=$(realpath "${2:-$root/../shared/data/fsdd/train}")
mw=$root/build/bin/mambawave
py=${PYTHON:-/usr/bin/python3}  # (with numpy and matplotlib: Debian's, not whatever python3 comes first)
out_png=${OUT_PNG:-$root/docs/images/digits-spectrograms.png}
[[ $out_png == /* ]] || out_png=$PWD/$out_png  # (relative to where it was called from)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
digits=(0 3 7 9)
# (whether it is labelled, and the guidance weight it declares)
read -r labelled declared < <("$mw" info "$model" --json |
  "$py" -c "import json, sys; j = json.load(sys.stdin); print(1 if j['labels'] else 0, j.get('guidance') or 0)")
weight=${GUIDANCE:-$declared}
asked() {  # generate's arguments for digit $1: a labelled model is asked for it
  [[ $labelled == 1 ]] && echo "--label $1${GUIDANCE:+ --guidance $GUIDANCE}"
  return 0
}
free=()
for i in 0 1 2 3; do
  if [[ $labelled == 1 ]]; then
    # shellcheck disable=SC2046
    "$mw" generate -m "$model" --seconds 1.5 --seed 11 $(asked ${digits[$i]}) -o free_$i.wav --device cpu >/dev/null 2>&1
  elif [[ $i == 0 ]]; then
    "$mw" generate -m "$model" --seconds 1.5 --count 4 --seed 11 -o free.wav --device cpu >/dev/null 2>&1
    for k in 0 1 2 3; do mv free_00$((k + 1)).wav free_$k.wav; done
  fi
  free+=("$work/free_$i.wav")
done
# prime.py IN OUT SECONDS: the first SECONDS of IN as 16-bit WAV; join.py A B OUT: A then B (float WAV)
cat > wav.py <<'PY'
import struct, sys, numpy as np
def rd(p):
    b = open(p, 'rb').read(); i = b.index(b'data'); n = struct.unpack('<I', b[i + 4:i + 8])[0]
    f = b.index(b'fmt '); tag, ch, rate, _, _, bits = struct.unpack('<HHIIHH', b[f + 8:f + 24])
    x = np.frombuffer(b[i + 8:i + 8 + n], '<f4') if tag == 3 else np.frombuffer(b[i + 8:i + 8 + n], '<i2') / 32768.0
    return rate, x.reshape(-1, ch).mean(1)
def wr(p, rate, x):
    data = np.asarray(x, '<f4').tobytes(); f = struct.pack('<HHIIHH', 3, 1, rate, rate * 4, 4, 32)
    body = b'WAVE' + b'fmt ' + struct.pack('<I', 16) + f + b'data' + struct.pack('<I', len(data)) + data
    open(p, 'wb').write(b'RIFF' + struct.pack('<I', len(body)) + body)
if sys.argv[1] == 'head':
    r, x = rd(sys.argv[2]); wr(sys.argv[3], r, x[:int(float(sys.argv[4]) * r)])
else:
    r, a = rd(sys.argv[2]); _, c = rd(sys.argv[3]); wr(sys.argv[4], r, np.concatenate([a, c]))
PY
real=() primed=()
for d in "${digits[@]}"; do
  take=$fsdd/${d}_jackson_5.wav   # recordings 5..9 are the preset's validation split
  "$py" wav.py head "$take" prime_$d.wav 0.15
  # shellcheck disable=SC2046
  "$mw" generate -m "$model" --seconds 0.6 --seed 5 --prime prime_$d.wav $(asked $d) -o cont_$d.wav --device cpu >/dev/null 2>&1
  "$py" wav.py join prime_$d.wav cont_$d.wav primed_$d.wav
  real+=("$take"); primed+=("$work/primed_$d.wav")
done
join() { local IFS=,; echo "$*"; }
"$py" "$root/scripts/plot_spectrograms.py" "$out_png" \
  "$(basename "$model"): held-out takes, continuations of their first 0.15 s, free-running samples (seed 11)" \
  "held out (jackson, take 5)=$(join "${real[@]}")" \
  "first 0.15 s real, then generated=$(join "${primed[@]}")" \
  "$( [[ $labelled == 1 ]] && echo "asked for 0, 3, 7, 9 (guidance $weight)" || echo free-running)=$(join "${free[@]}")"
