#!/usr/bin/env bash
# Sets up, builds, and runs the main job on the shipped defaults: renders the bundled guitar
# clip through the default effect model and generates three one-second clips with the default
# generator (and a digit asked for from the labelled one), writing WAV files to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
mw=build/bin/mambawave
# The default presets: a Tube Screamer (drive, tone) and a spoken-digit generator.
fx=presets/ts9.safetensors
gen=presets/digits.safetensors
mkdir -p out
echo
$mw info "$fx"
echo
$mw render --model "$fx" --in presets/demo/guitar_di.flac --out out/demo_effect.wav --control drive=0.7
# three clips of a second: it says a word-like burst and then, as its training clips did, falls silent
$mw generate --model "$gen" --seconds 1 --count 3 --seed 1 --out out/demo_generated.wav
# ... and the generator told which digit to say, guided at the weight its file declares (docs/DIGITS.md)
said=presets/digits_labelled.safetensors
$mw generate --model "$said" --label 7 --seconds 1.5 --seed 1 --out out/demo_seven.wav
echo
echo "Wrote:"
echo "  out/demo_effect.wav     presets/demo/guitar_di.flac through $fx"
echo "  out/demo_generated_001.wav .. _003.wav  three 1 s clips from $gen"
echo "  out/demo_seven.wav      1.5 s from $said, asked for a 7"
