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

// The chain s <- exp2(a2·d_i)·s + v_i through `count` items: item i's value at v[i·v_stride],
// its ΣΔ at d[i·d_stride] (negative strides walk backwards from the last item). With
// WriteStarts each item's value is replaced by the s that went into it (its start state, or
// the carry into it); with sum_dt the items' ΣΔ is added to *sum_dt. The loads run four items
// ahead of the arithmetic, which they do not depend on. Every combine of chunk, group and
// segment states (forward) and of carries (backward) is this chain.
template <bool WriteStarts>
__device__ __forceinline__ float fold_chain(float s, int count, float a2, float* v, int64_t v_stride,
                                            const float* d, int64_t d_stride, float* sum_dt = nullptr) {
    for (int i0 = 0; i0 < count; i0 += 4) {
        float vi[4], di[4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
            if (i0 + i < count) {
                vi[i] = v[(i0 + i) * v_stride];
                di[i] = d[(i0 + i) * d_stride];
            }
#pragma unroll
        for (int i = 0; i < 4; ++i)
            if (i0 + i < count) {
                if constexpr (WriteStarts) v[(i0 + i) * v_stride] = s;
                s = fmaf(ex2(a2 * di[i]), s, vi[i]);
                if (sum_dt) *sum_dt += di[i];
            }
    }
    return s;
}

} // namespace mw::kernels::cuda
