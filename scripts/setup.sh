#!/usr/bin/env bash
# Installs every Debian package MambaWave needs to build, test and run. Idempotent: quiet
# when everything is present. Debian 12 packages only; nothing is downloaded from elsewhere.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config   # toolchain
  catch2                                         # tests (Catch2 2.x)
  libcli11-dev                                   # command-line parsing
  nlohmann-json3-dev                             # model-file metadata, --json output
  libsndfile1-dev                                # WAV/FLAC/OGG/AIFF
  libsamplerate0-dev                             # resampling to the model's rate
  clang libfuzzer-14-dev libclang-rt-14-dev      # the model-loader fuzzer
  python3 python3-numpy sox                      # CLI end-to-end tests: make and check .npy/.wav
  bsdutils                                       # `script`: a terminal for the progress-bar tests
  python3-matplotlib                             # training curves as PNG
  juce-modules-source                            # the plugin (JUCE 7, VST3 SDK included)
  libasound2-dev libjack-jackd2-dev libfreetype-dev libfontconfig1-dev libx11-dev
  libxrandr-dev libxinerama-dev libxcursor-dev libxext-dev libgl-dev
  libflac-dev libvorbis-dev libogg-dev libpng-dev libjpeg-dev zlib1g-dev
  librtaudio-dev librtmidi-dev                   # the live app
  jackd2 jalv lilv-utils lv2-dev xvfb xauth      # headless host tests (JACK dummy, LV2)
  sordi                                          # sord_validate: the plugin's LV2 TTL against the LV2 schemas
  guitarix-lv2 fluidsynth fluid-soundfont-gm     # effect captures (see data/README)
  pocketsphinx pocketsphinx-en-us                # digits scoring: an off-the-shelf recogniser (scripts/digit_asr.py)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
