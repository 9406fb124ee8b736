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

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|), log1p(y) = 2·atanh(y / (2 + y)) by
// its series (y in (0, 1], so s = y/(2+y) <= 1/3 and six terms leave 1.4e-7 relative). The
// forward scan's Δ, and the backward's where it must match it.
__device__ __forceinline__ float softplus_ex2(float x) {
    const float y = ex2(-fabsf(x) * kLog2e);
    const float s = __fdividef(y, 2.0f + y);
    const float s2 = s * s;
    float q = 1.0f / 11.0f;
    q = fmaf(q, s2, 1.0f / 9.0f);
    q = fmaf(q, s2, 1.0f / 7.0f);
    q = fmaf(q, s2, 1.0f / 5.0f);
    q = fmaf(q, s2, 1.0f / 3.0f);
    q = fmaf(q, s2, 1.0f);
    return fmaxf(x, 0.0f) + 2.0f * s * q;
}
// sigmoid(x) = 1 / (1 + e^-x) on the special-function unit (0 once e^-x overflows, 1 once it
// underflows)
__device__ __forceinline__ float sigmoid_ex2(float x) { return __fdividef(1.0f, 1.0f + ex2(-x * kLog2e)); }

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
// the carry into it); with sum_dt the items' ΣΔ is added to *sum_dt. The items are loaded in
// blocks of kFoldBlock, the next block's loads issued before this block's arithmetic and
// stores, so that two blocks are in flight: the chain's arithmetic is a few instructions per
// item and each thread's loads are what it waits for (with WriteStarts and four items loaded
// after each block's stores, ncu showed 0.1 instructions issued per cycle per scheduler). Every
// combine of chunk, group and segment states (forward) and of carries (backward) is this chain.
constexpr int kFoldBlock = 8;
template <bool WriteStarts>
__device__ __forceinline__ float fold_chain(float s, int count, float a2, float* v, int64_t v_stride,
                                            const float* d, int64_t d_stride, float* sum_dt = nullptr) {
    float vi[kFoldBlock], di[kFoldBlock];
    auto load = [&](int i0, float (&vb)[kFoldBlock], float (&db)[kFoldBlock]) {
#pragma unroll
        for (int i = 0; i < kFoldBlock; ++i)
            if (i0 + i < count) {
                vb[i] = v[(i0 + i) * v_stride];
                db[i] = d[(i0 + i) * d_stride];
            }
    };
    load(0, vi, di);
    for (int i0 = 0; i0 < count; i0 += kFoldBlock) {
        float vn[kFoldBlock], dn[kFoldBlock];
        load(i0 + kFoldBlock, vn, dn);
#pragma unroll
        for (int i = 0; i < kFoldBlock; ++i)
            if (i0 + i < count) {
                if constexpr (WriteStarts) v[(i0 + i) * v_stride] = s;
                s = fmaf(ex2(a2 * di[i]), s, vi[i]);
                if (sum_dt) *sum_dt += di[i];
            }
#pragma unroll
        for (int i = 0; i < kFoldBlock; ++i) {
            vi[i] = vn[i];
            di[i] = dn[i];
        }
    }
    return s;
}

} // namespace mw::kernels::cuda
