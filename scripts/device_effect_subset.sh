#!/usr/bin/env bash
# Packs a subset of the effect captures (scripts/make_captures.sh -> data/captures) small enough
# to carry to the device machine (64 MiB): the first SECONDS of every train and val input, and
# two stretches of the capture signal (sweeps + noise, music), with their Tube Screamer targets
# at every drive setting, as 16-bit FLAC, plus a manifest. Output: .carry/ts9/.
set -euo pipefail
SECONDS_EACH=${SECONDS_EACH:-4}
SRC=data/captures; DST=.carry/ts9
rm -rf $DST; mkdir -p $DST
/usr/bin/python3 - "$SRC" "$DST" "$SECONDS_EACH" <<'PY'
import json, os, subprocess, sys
src, dst, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
m = json.load(open(os.path.join(src, 'manifest.json')))
pairs = m['pairs'] if isinstance(m, dict) else m
out = []
def cut(path, name, start, length):
    o = os.path.join(dst, name)
    if not os.path.exists(o):
        os.makedirs(os.path.dirname(o), exist_ok=True)
        subprocess.run(['sox', os.path.join(src, path), '-b', '16', o, 'trim', str(start), str(length)], check=True)
    return os.path.relpath(o, dst)
for p in pairs:
    if p['effect'] != 'ts9' or p['split'] not in ('train', 'val'):
        continue
    stem = os.path.splitext(os.path.basename(p['input']))[0]
    d = p['controls']['drive']
    pieces = [(0, secs)] if stem != 'di_capture' else [(2, 28), (40, 20)]
    for k, (start, length) in enumerate(pieces):
        tag = f'{stem}_{k}'
        out.append({'input': cut(p['input'], f'in/{tag}.flac', start, length),
                    'target': cut(p['target'], f'ts9_{d}/{tag}.flac', start, length),
                    'effect': 'ts9', 'controls': {'drive': d}, 'split': p['split'],
                    'latency_samples': p.get('latency_samples', 0)})
json.dump({'pairs': out, 'note': 'subset of data/captures for training on the device machine'},
          open(os.path.join(dst, 'manifest.json'), 'w'), indent=1)
print(len(out), 'pairs')
PY
du -sh $DST
