#!/usr/bin/env bash
# Rebuilds the placeholder presets: random weights, marked untrained, so the README's main
# command runs end to end before the trained presets exist. Needs build/bin/mambawave.
set -euo pipefail
cd "$(dirname "$0")/.."
mw=build/bin/mambawave
$mw init --kind effect --out presets/placeholder-effect.safetensors --d-model 16 --layers 4 \
  --control drive:0:1:0.5 --control tone:100:1000:400:Hz:log --skip --seed 1 \
  --description "Untrained placeholder effect (d_model 16 x 4 layers, drive and tone), near the identity"
$mw init --kind generator --out presets/placeholder-generator.safetensors --d-model 32 --layers 4 \
  --seed 2 --description "Untrained placeholder generator (d_model 32 x 4 layers, 8 kHz mu-law)"
ls -la presets/*.safetensors
