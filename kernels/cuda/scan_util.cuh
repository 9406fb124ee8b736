// Device helpers that the scan's forward (scan.cu) and backward (scan_backward.cu) share.
// Internal to kernels/cuda/.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mw::kernels::cuda {

// 2^x on the special-function unit (relative error about 2^-22; results below 2^-126 flush
// to zero, which for a decay is exact enough).
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
constexpr float kLog2e = 1.4426950408889634f;

// One thread of a pass over [B][G][N][E] (the two-level combines of chunk states and carries):
// thread g's sequence, group, state and channel, channel fastest.
struct GroupCell {
    int b, group, n, e;
};
__device__ __forceinline__ GroupCell group_cell(int64_t g, int E, int N, int G) {
    GroupCell c;
    c.e = int(g % E);
    int64_t q = g / E;
    c.n = int(q % N);
    q /= N;
    c.group = int(q % G);
    c.b = int(q / G);
    return c;
}

} // namespace mw::kernels::cuda
