#!/usr/bin/env bash
# Packs a subset of the effect captures (scripts/make_captures.sh -> data/captures) small enough
# to carry to the device machine (64 MiB in all): for every setting of the Tube Screamer and the
# DS-1, PIECE seconds of every train and val input (after its 0.5 s of leading silence) and
# stretches of the capture signal (sweeps, noise, level steps, music), as 16-bit FLAC, with a
# manifest that keeps the pairs' controls, splits, latencies and the effects' control ranges.
# Output: .carry/fx/ (inputs shared by both effects).
set -euo pipefail
cd "$(dirname "$0")/.."
PIECE=${PIECE:-1.2}
SRC=data/captures; DST=.carry/fx
[[ -f $SRC/manifest.json ]] || { echo "no $SRC/manifest.json: run scripts/make_captures.sh" >&2; exit 1; }
rm -rf .carry/ts9 $DST; mkdir -p $DST
/usr/bin/python3 - "$SRC" "$DST" "$PIECE" <<'PY'
import json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
src, dst, piece = sys.argv[1], sys.argv[2], float(sys.argv[3])
m = json.load(open(os.path.join(src, 'manifest.json')))
DI = [(12.5, 3), (19, 3), (35, 4), (39.5, 10)]   # loud sweep, noises, level steps, music
jobs, out = {}, []
def cut(path, name, start, length):
    o = os.path.join(dst, name)
    jobs[o] = ['sox', '-V1', os.path.join(src, path), '-b', '16', '-C', '8', o, 'trim', str(start), str(length)]
    return name
for p in m['pairs']:
    if p['split'] not in ('train', 'val'):
        continue
    stem = os.path.splitext(os.path.basename(p['input']))[0]
    setting = os.path.basename(os.path.dirname(p['target']))
    pieces = DI if stem == 'di_capture' else [(0.5, piece)]
    for k, (start, length) in enumerate(pieces):
        tag = f'{stem}_{k}'
        out.append(dict(p, input=cut(p['input'], f'in/{tag}.flac', start, length),
                        target=cut(p['target'], f'{setting}/{tag}.flac', start, length)))
for o in jobs: os.makedirs(os.path.dirname(o), exist_ok=True)
with ThreadPoolExecutor(os.cpu_count()) as ex:
    list(ex.map(lambda c: subprocess.run(c, check=True), jobs.values()))
json.dump(dict(m, pairs=out, note='subset of data/captures for training on the device machine '
               '(scripts/device_effect_subset.sh)'), open(os.path.join(dst, 'manifest.json'), 'w'), indent=1)
print(len(out), 'pairs')
PY
du -sh $DST
