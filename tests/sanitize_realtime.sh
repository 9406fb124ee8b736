#!/usr/bin/env bash
# The real-time engine's tests (tests/test_dsp_realtime.cpp, tag [dsp][realtime]) under a
# sanitizer: ThreadSanitizer for the model hand-over between the message and audio threads,
# or AddressSanitizer + UBSan (+ LeakSanitizer) for memory errors and leaked model slots.
#
#   tests/sanitize_realtime.sh [thread|address] [BUILD_DIR]
#     default: thread, BUILD_DIR <repo>/build-rt-<sanitizer>
#   environment: CXX (default c++), JOBS (default 2)
#
# It compiles only what those tests need (kernels, model, dsp sources; no libsndfile) straight
# with the compiler, in its own directory, so nothing else of the tree has to build. The
# allocation trap (tests/alloc_trap.cpp) replaces malloc, which the sanitizers also do, so it
# is replaced by a stub here that counts nothing: in this build the "allocates nothing" checks
# are vacuous; the normal build (ctest) is where they count.
# Time on a shared 2-core machine: thread about 16 minutes (6 of them compiling), address about 8;
# hence a script, not a ctest entry.
set -euo pipefail

san=${1:-thread}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${2:-$root/build-rt-$san}
cxx=${CXX:-c++}
njobs=${JOBS:-2}

case "$san" in
  thread)  flags=(-fsanitize=thread) ;;
  address) flags=(-fsanitize=address,undefined -fno-sanitize-recover=undefined) ;;
  *) echo "sanitize_realtime.sh: unknown sanitizer '$san' (expected thread or address)" >&2; exit 2 ;;
esac

mkdir -p "$build/obj"
cat > "$build/alloc_trap_stub.cpp" <<'EOF'
// The sanitizers own malloc: no allocation trap in this build (see sanitize_realtime.sh).
#include "alloc_trap.h"
namespace mw::test {
void arm_alloc_trap() {}
int64_t disarm_alloc_trap() { return 0; }
} // namespace mw::test
EOF

common=(-std=c++20 -O1 -g -fno-omit-frame-pointer "${flags[@]}" -I"$root" -I"$root/tests"
        -DMW_HAVE_X86=1 -fno-math-errno -ffp-contract=fast -Wno-psabi)
sources=(
  kernels/reference.cpp kernels/fast.cpp kernels/fast_baseline.cpp kernels/fast_avx2.cpp kernels/fast_avx512.cpp
  kernels/thread_pool.cpp
  model/model.cpp model/config_json.cpp model/safetensors.cpp model/model_file.cpp
  model/engine.cpp model/sampling.cpp
  dsp/mulaw.cpp dsp/resampler.cpp dsp/realtime.cpp
  tests/main.cpp tests/test_dsp_realtime.cpp
)

compile() {  # source -> object, only when the source or a header changed since
  local src=$1 obj=$build/obj/$(echo "$1" | tr '/' '_').o extra=()
  [[ $src == kernels/fast_avx2.cpp ]] && extra=(-mavx2 -mfma -mf16c)
  [[ $src == kernels/fast_avx512.cpp ]] && extra=(-mavx2 -mfma -mf16c -mavx512f -mavx512vl -mavx512dq -mavx512bw)
  [[ $src == /* ]] || src=$root/$src
  if [[ ! -f $obj || $src -nt $obj || -n $(find "$root/dsp" "$root/kernels" "$root/model" "$root/tests" \
        -name '*.h' -newer "$obj" -print -quit) ]]; then
    "$cxx" "${common[@]}" "${extra[@]}" -c "$src" -o "$obj"
  fi
  echo "$obj"
}
objects=()
for s in "${sources[@]}" "$build/alloc_trap_stub.cpp"; do
  while (($(jobs -rp | wc -l) >= njobs)); do wait -n; done
  compile "$s" > /dev/null &
done
while (($(jobs -rp | wc -l) > 0)); do wait -n; done  # (plain `wait` would hide a failure)
for s in "${sources[@]}" "$build/alloc_trap_stub.cpp"; do
  objects+=("$build/obj/$(echo "$s" | tr '/' '_').o")
done
"$cxx" "${flags[@]}" -o "$build/mw_rt_tests" "${objects[@]}" -lpthread

echo "sanitize_realtime.sh: running the [dsp][realtime] tests under -fsanitize=$san"
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
"$build/mw_rt_tests" "[dsp][realtime]"
