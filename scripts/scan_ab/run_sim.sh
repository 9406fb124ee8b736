#!/usr/bin/env bash
# The one-pass scan kernel (scan_sequences, kernels/cuda/scan.cu) run on the CPU: 32 threads per
# simulated warp, in step at every __syncwarp and shuffle; cp.async as a plain copy; exp2 from
# libm. The checkout's kernel ("old") against the checkout with PATCH applied ("new", every
# experimental switch of it), both against a float64 scan: y, the end states and the chunk
# start states, on shapes with tail tiles, channels past E, states past N, element copies,
# chunk starts inside tiles, every lane count, and segments. Needs no GPU (g++ with C++20).
#   bash scripts/scan_ab/run_sim.sh [PATCH]   (from the repository root)
set -euo pipefail
PATCH=${1:-scripts/scan_ab/scan_v3_fewer_instructions.patch}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/new"
cp -r kernels "$tmp/new/"
(cd "$tmp/new" && (git apply "$OLDPWD/$PATCH" 2>/dev/null || patch -p1 -s < "$OLDPWD/$PATCH"))
python3 "$here/extract.py" kernels/cuda "$tmp/base.inc"
python3 "$here/extract.py" "$tmp/new/kernels/cuda" "$tmp/new.inc"
g++ -std=c++20 -O1 -ffp-contract=off -pthread -I"$tmp" -o "$tmp/warp_sim" "$here/warp_sim.cpp"
"$tmp/warp_sim"
