#!/usr/bin/env bash
# Fills .debs/ with the Debian 12 packages the CLI (and the Catch2 tests) need to build and run
# on the GPU machine,
# which has nvcc, cmake and a compiler but none of our libraries and no network. Run here;
# the device tool carries .debs/ (git-ignored) and
# scripts/device_build.sh unpacks it there.
set -euo pipefail
cd "$(dirname "$0")/.."
# .debs/ is git-ignored (.gitignore); the device tool carries it when asked (carry: [".debs"]).
mkdir -p .debs && cd .debs
apt-get download -q \
  libsndfile1 libsndfile1-dev libsamplerate0 libsamplerate0-dev libcli11-dev nlohmann-json3-dev \
  libflac12 libvorbis0a libvorbisenc2 libogg0 libopus0 libmpg123-0 libmp3lame0 \
  ninja-build pkgconf pkgconf-bin libpkgconf3 catch2 >/dev/null
ls | wc -l
