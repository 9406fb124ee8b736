#!/usr/bin/env bash
# Rebuilds presets/demo/guitar_di.flac: a 6-second synthetic plucked-string phrase (sox's
# Karplus-Strong "pluck"), mono 48 kHz 24-bit, peaks about -6 dBFS. Used by scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
for note in E2:0.5 A2:0.5 D3:0.5 G3:0.5 B3:0.5 E4:1.0 E2:0.25 E2:0.25 G2:0.25 A2:1.25 E3:1.0; do
  name=${note%%:*}; dur=${note##*:}
  sox -n -r 48000 -c 1 -b 24 "$tmp/$(printf %02d $i).wav" synth "$dur" pluck "$name" fade 0 "$dur" 0.05
  i=$((i + 1))
done
sox "$tmp"/*.wav -b 24 "$tmp/phrase.wav"
sox "$tmp/phrase.wav" -b 24 presets/demo/guitar_di.flac gain -n -6
soxi presets/demo/guitar_di.flac
