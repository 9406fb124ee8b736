#!/usr/bin/env bash
# Sets up, builds and runs every test (Catch2 through ctest, plus the CLI end-to-end script
# and a short fuzz run of the model loader).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
