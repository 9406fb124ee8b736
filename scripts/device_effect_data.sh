#!/usr/bin/env bash
# Packs the whole effect training set (every train and val input of data/captures, both pedals,
# every knob setting) small enough to carry to the GPU machine (64 MiB in all), by carrying the
# inputs only: the targets are made there by running the same LV2 plugins over them
# (scripts/captures/make_targets.py). The inputs are shared by all 24 settings, so this is
# 24x the audio the 16-bit FLAC subset of scripts/device_effect_subset.sh could hold.
#   .carry/fxdata/in/*.wav          train + val inputs, 16-bit PCM (lv2run.py reads WAV only)
#   .carry/fxdata/lv2/              the two plugins' binaries, libzita-resampler, saved lv2info
#   .carry/fxdata/manifest.json     data/captures' manifest, train + val pairs, inputs renamed
# On the GPU machine: python3 scripts/captures/make_targets.py .carry/fxdata/manifest.json
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=data/captures; DST=.carry/fxdata
[[ -f $SRC/manifest.json ]] || { echo "no $SRC/manifest.json: run scripts/make_captures.sh" >&2; exit 1; }
rm -rf $DST; mkdir -p $DST/in $DST/lv2
/usr/bin/python3 - "$SRC" "$DST" <<'PY'
import json, os, shutil, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
src, dst = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(src, 'manifest.json')))
pairs, inputs = [], {}
for p in m['pairs']:
    if p['split'] not in ('train', 'val'):
        continue
    name = 'in/' + os.path.basename(p['input'])
    inputs[name] = os.path.join(src, p['input'])
    pairs.append(dict(p, input=name))
def convert(item):
    name, path = item
    subprocess.run(['sox', '-V1', path, '-b', '16', os.path.join(dst, name)], check=True)
    if os.path.exists(path + '.json'):  # the capture signal's sidecar (sync clicks)
        shutil.copy(path + '.json', os.path.join(dst, name + '.json'))
with ThreadPoolExecutor(os.cpu_count()) as ex:
    list(ex.map(convert, inputs.items()))
sys.path.insert(0, 'scripts/captures')
from pack_lv2 import pack
pack([e['plugin'] for e in m['effects'].values()], os.path.join(dst, 'lv2'))
json.dump(dict(m, pairs=pairs, note='train and val inputs of data/captures, 16-bit; targets made on the '
               'GPU machine by scripts/captures/make_targets.py (scripts/device_effect_data.sh)'),
          open(os.path.join(dst, 'manifest.json'), 'w'), indent=1)
print(len(inputs), 'inputs,', len(pairs), 'pairs')
PY
du -sh $DST
