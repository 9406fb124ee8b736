#!/usr/bin/env bash
# Fuzz the model-file loaders and the .npy reader with libFuzzer (clang, ASan + UBSan).
#
#   scripts/fuzz.sh [SECONDS] [FUZZER]
#     SECONDS  how long to fuzz (default 60)
#     FUZZER   fuzz_model_loader (default: load_model_from_bytes on arbitrary bytes),
#              fuzz_config_json (config_from_json and hf_config_from_json on arbitrary text) or
#              fuzz_npy (parse_npy on arbitrary bytes: `mambawave run --in`)
#   environment:
#     MW_FUZZ_BUILD_DIR  build tree for the fuzzers (default: <repo>/build-fuzz)
#     MW_FUZZ_CXX        clang++ to build with (default: clang++ or clang++-14 from PATH)
#
# Builds the fuzzers in their own build tree (tests/fuzz is a CMake project of its own, so
# nothing else of the tree needs to compile), writes a seed corpus of valid model files, configs
# and .npy files with make_fuzz_seeds, then fuzzes. New interesting inputs accumulate in BUILD/corpus/FUZZER; a
# crashing input is saved as BUILD/crashes/FUZZER-crash-* and the script exits non-zero.
# Reproduce one with: BUILD/bin/FUZZER BUILD/crashes/FUZZER-crash-...
set -euo pipefail

seconds=${1:-60}
fuzzer=${2:-fuzz_model_loader}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${MW_FUZZ_BUILD_DIR:-$root/build-fuzz}
cxx=${MW_FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}

case "$fuzzer" in
  fuzz_model_loader) dict=$root/tests/fuzz/model_loader.dict ;;
  fuzz_config_json)  dict=$root/tests/fuzz/config_json.dict ;;
  fuzz_npy)          dict=$root/tests/fuzz/npy.dict ;;
  *) echo "fuzz.sh: unknown fuzzer '$fuzzer' (expected fuzz_model_loader, fuzz_config_json or fuzz_npy)" >&2; exit 2 ;;
esac
if [[ -z "$cxx" ]]; then
  echo "fuzz.sh: clang++ not found (libFuzzer needs clang; apt install clang libclang-rt-14-dev)" >&2
  exit 2
fi

generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" \
        -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build" --target "$fuzzer" make_fuzz_seeds -j "$(nproc 2>/dev/null || echo 2)"

# Seeds are rebuilt every run (they follow the current file format); the corpus is kept.
rm -rf "$build/seeds"
"$build/bin/make_fuzz_seeds" "$build/seeds"
mkdir -p "$build/corpus/$fuzzer" "$build/crashes"

echo "fuzz.sh: running $fuzzer for $seconds s"
# -timeout: one input taking over 10 s is a hang worth reporting.
# -rss_limit_mb: a loader that allocates from an unchecked header size shows up here.
"$build/bin/$fuzzer" "$build/corpus/$fuzzer" "$build/seeds/$fuzzer" \
    -dict="$dict" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/crashes/$fuzzer-" -print_final_stats=1
