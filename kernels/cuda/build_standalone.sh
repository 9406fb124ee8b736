# shellcheck shell=bash
# What run_device.sh and run_step_device.sh share, sourced from the repository root after they
# set OUT (the log folder) and B (the build folder): build_standalone logs the GPU and the tools
# to $OUT/env.log and builds the standalone kernels/cuda/ tree (Release) into $B, the build's
# output in $OUT/build.log. A failed build prints the log's end and ends the calling script.
build_standalone() {
  mkdir -p "$OUT"
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
    gcc --version | head -1; cmake --version | head -1; nvcc --version | tail -1
  } 2>&1 | tee "$OUT/env.log"
  local G=Ninja; command -v ninja > /dev/null || G="Unix Makefiles"
  if ! { cmake -S kernels/cuda -B "$B" -G "$G" -DCMAKE_BUILD_TYPE=Release && cmake --build "$B" -j16; } > "$OUT/build.log" 2>&1; then
    tail -60 "$OUT/build.log"; exit 1
  fi
}
