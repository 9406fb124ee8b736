// The recurrent step of S streams on the GPU, with sampling on the device (step.cuh says what
// one block computes; mamba_cuda.h is the API).
//
// Two ways to run many samples, same kernel:
//   persistent: one launch per chunk of samples; each block loops over the samples of its
//               streams (streams are independent, so no block ever waits for another);
//   graph:      the kernel runs one sample, reading its index from a device counter; that
//               launch and a one-thread launch that advances the counter are captured once per
//               chunk in a CUDA Graph and replayed once per sample.
// Both read and write the same state, so they give the same numbers; the benchmark compares
// their speed (NOTES.md).
#include "kernels/cuda/mamba_cuda.h"

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/philox.h"
#include "kernels/cuda/step.cuh"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

namespace mw::kernels::cuda {

namespace step_detail {
namespace {

__device__ __forceinline__ float ex2(float x) {  // 2^x on the special-function unit
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float silu(float x) { return x / (1.0f + __expf(-x)); }
// softplus(x) = log(1 + e^x), = x above 20 (where the rest is below float resolution)
__device__ __forceinline__ float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ int warp_min(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// acc[g] += Σ_{k in [k0, k1)} W[k·M + j] · in[k·G + g]          in: shared, [K][G]
template <int G, class WPtr>
__device__ __forceinline__ void dot_range(float (&acc)[G], WPtr W, int M, int j, int k0, int k1,
                                          const float* in) {
#pragma unroll 8
    for (int k = k0; k < k1; ++k) {
        const float w = W[k * M + j];
        const float* v = in + k * G;
        if constexpr (G % 4 == 0) {
#pragma unroll
            for (int q = 0; q < G / 4; ++q) {
                const float4 x4 = reinterpret_cast<const float4*>(v)[q];
                acc[4 * q + 0] = fmaf(w, x4.x, acc[4 * q + 0]);
                acc[4 * q + 1] = fmaf(w, x4.y, acc[4 * q + 1]);
                acc[4 * q + 2] = fmaf(w, x4.z, acc[4 * q + 2]);
                acc[4 * q + 3] = fmaf(w, x4.w, acc[4 * q + 3]);
            }
        } else {
#pragma unroll
            for (int g = 0; g < G; ++g) acc[g] = fmaf(w, v[g], acc[g]);
        }
    }
}

// dst[0..G) = v (in 16-byte pieces when G is a multiple of 4; dst then 16-byte aligned)
template <int G>
__device__ __forceinline__ void store_g(float* dst, const float (&v)[G]) {
    if constexpr (G % 4 == 0) {
#pragma unroll
        for (int q = 0; q < G / 4; ++q)
            reinterpret_cast<float4*>(dst)[q] = make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
    } else {
#pragma unroll
        for (int g = 0; g < G; ++g) dst[g] = v[g];
    }
}
// v[g] += src[g]
template <int G>
__device__ __forceinline__ void add_g(float (&v)[G], const float* src) {
    if constexpr (G % 4 == 0) {
#pragma unroll
        for (int q = 0; q < G / 4; ++q) {
            const float4 a = reinterpret_cast<const float4*>(src)[q];
            v[4 * q] += a.x, v[4 * q + 1] += a.y, v[4 * q + 2] += a.z, v[4 * q + 3] += a.w;
        }
    } else {
#pragma unroll
        for (int g = 0; g < G; ++g) v[g] += src[g];
    }
}

// out[j][g] (+)= Σ_k W[k][j] · in[k][g]    for j < M, g < G: a matrix-vector product for each
// of the block's G streams. W: [K][M] (a transposed projection), in / out: shared, [·][G].
// With fewer outputs than threads, K is split into P parts (at least 4 steps of k each) whose
// partial sums meet in `red`: more loads in flight, shorter chains. Ends with a block barrier.
template <int G, class WPtr>
__device__ void block_gemv(float* out, WPtr W, int M, int K, const float* in, float* red,
                           bool accumulate) {
    const int T = int(blockDim.x), tid = int(threadIdx.x);
    const int P = M >= T ? 1 : max(1, min(T / M, K / 4));
    for (int j0 = 0; j0 < M; j0 += T) {  // more than one round only when M > T (then P = 1)
        const int j = j0 + tid % M, part = tid / M;
        if (part < P && j < M) {
            float acc[G];
#pragma unroll
            for (int g = 0; g < G; ++g) acc[g] = 0.0f;
            dot_range<G>(acc, W, M, j, K * part / P, K * (part + 1) / P, in);
            if (P == 1) {
                if (accumulate) add_g<G>(acc, out + j * G);
                store_g<G>(out + j * G, acc);
            } else {
                store_g<G>(red + (part * M + j) * G, acc);
            }
        }
    }
    __syncthreads();
    if (P == 1) return;
    if (tid < M) {
        float acc[G];
#pragma unroll
        for (int g = 0; g < G; ++g) acc[g] = accumulate ? out[tid * G + g] : 0.0f;
        for (int q = 0; q < P; ++q) add_g<G>(acc, red + (q * M + tid) * G);
        store_g<G>(out + tid * G, acc);
    }
    __syncthreads();
}

// "a comes before b" in the nucleus order: more probable first, the lower class among equals.
__device__ __forceinline__ bool before(float pa, int ia, float pb, int ib) {
    return pa > pb || (pa == pb && ia < ib);
}

// One warp draws the next class of one stream from logits[v·stride], v < V <= 256
// (mamba_cuda.h, generate_tokens, states the rule). Lane l holds classes 8l..8l+7 (in the
// nucleus order once sorted). sp / si: this warp's [256] scratch. Returns the class in
// every lane.
__device__ int sample_class(const float* logits, int stride, int V, float temperature,
                            float top_p, unsigned long long seed, uint32_t stream, uint64_t index,
                            float* sp, int* si) {
    const int lane = int(threadIdx.x & 31);
    float l[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int v = lane * 8 + i;
        const float x = v < V ? logits[v * stride] : -INFINITY;
        l[i] = x == x ? x : -INFINITY;  // NaN never wins
    }
    // argmax, the lowest class among equal maxima
    float best = l[0];
    int arg = lane * 8;
#pragma unroll
    for (int i = 1; i < 8; ++i)
        if (l[i] > best) best = l[i], arg = lane * 8 + i;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, o);
        const int oa = __shfl_xor_sync(0xffffffffu, arg, o);
        if (ob > best || (ob == best && oa < arg)) best = ob, arg = oa;
    }
    if (!(temperature > 0.0f) || !isfinite(best)) return arg;

    // p_v ∝ exp((logit_v - max) / T)
    const float inv_t = 1.0f / temperature;
    float p[8];
    int cls[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const float e = expf((l[i] - best) * inv_t);
        p[i] = isfinite(e) ? e : 0.0f;
        cls[i] = lane * 8 + i;
    }
    const bool nucleus = top_p < 1.0f;
    if (nucleus) {
        // Bitonic sort of the 256 (p, class) pairs into the nucleus order, in shared memory.
#pragma unroll
        for (int i = 0; i < 8; ++i) sp[lane * 8 + i] = p[i], si[lane * 8 + i] = cls[i];
        __syncwarp();
        for (int k = 2; k <= 256; k <<= 1) {
            for (int j = k >> 1; j > 0; j >>= 1) {
                for (int t = lane; t < 256; t += 32) {
                    const int q = t ^ j;
                    if (q > t) {
                        const float pa = sp[t], pb = sp[q];
                        const int ia = si[t], ib = si[q];
                        const bool ordered = before(pa, ia, pb, ib);
                        // blocks with (t & k) == 0 go in the nucleus order, the others reversed
                        if (((t & k) == 0) != ordered) {
                            sp[t] = pb, sp[q] = pa;
                            si[t] = ib, si[q] = ia;
                        }
                    }
                }
                __syncwarp();
            }
        }
#pragma unroll
        for (int i = 0; i < 8; ++i) p[i] = sp[lane * 8 + i], cls[i] = si[lane * 8 + i];
        __syncwarp();  // the scratch is free again for this warp's next stream
    }
    // c[i]: inclusive running mass up to position 8·lane + i
    float c[8], run = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) run += p[i], c[i] = run;
    float excl = run;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float up = __shfl_up_sync(0xffffffffu, excl, o);
        if (lane >= o) excl += up;
    }
    excl -= run;  // exclusive prefix of the lane totals
#pragma unroll
    for (int i = 0; i < 8; ++i) c[i] += excl;
    const float total = __shfl_sync(0xffffffffu, c[7], 31);

    // kept: positions 0..last, the shortest prefix whose mass reaches top_p · total
    int last = V - 1;
    if (nucleus) {
        const float target = fmaxf(top_p, 0.0f) * total;
        int first = INT_MAX;
#pragma unroll
        for (int i = 7; i >= 0; --i)
            if (c[i] >= target) first = lane * 8 + i;
        first = warp_min(first);
        last = min(first, V - 1);
    }
    float mine = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i)
        if (lane * 8 + i == last) mine = c[i];
    const float mass = __shfl_sync(0xffffffffu, mine, last / 8);

    // the first kept position whose running mass exceeds u · mass
    const float r = sampler_uniform(seed, stream, index) * mass;
    int pick = INT_MAX;
#pragma unroll
    for (int i = 7; i >= 0; --i)
        if (lane * 8 + i <= last && c[i] > r) pick = lane * 8 + i;
    pick = min(warp_min(pick), last);
    int out = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i)
        if (lane * 8 + i == pick) out = cls[i];
    return __shfl_sync(0xffffffffu, out, pick / 8);
}

// What the SSM update of one layer reads and writes (step_kernel).
struct SsmArgs {
    const float* W;     // the layer's weights (offsets p.lo)
    float* ssm_s;       // the layer's states in shared memory: [G][N][E] (state_in_smem)
    float* ssm_g;       // the layer's states of the block's first stream in global memory: [·][N][E]
    const float* uzs;   // [2E][G]  u before the conv (unused here), z
    const float* us;    // [E][G]   u
    const float* dbcs;  // [Mx][G]  r, B, C
    float* ys;          // [E][G]   out
    int nact;
};

// For every (channel e, stream g) of the block, channels fastest:
//   Δ = softplus(dt_b + dt_projᵀ r);  s = exp2(Δ·A2) ⊙ s + Δu·B;  y = (s·C + D·u) ⊙ SiLU(z)
// NN: d_state fixed at compile time (16, the shipped models: the row A2[·][e] stays in registers
// while a thread keeps its channel), or 0 for any d_state.
template <int G, int NN>
__device__ __forceinline__ void ssm_items(const StepParams& p, const SsmArgs& a) {
    const int E = p.E, R = p.R, T = int(blockDim.x);
    const int N = NN > 0 ? NN : p.N;
    const float* W = a.W;
    float a2[NN > 0 ? NN : 1];
    int cached = -1;
    for (int it = int(threadIdx.x); it < E * G; it += T) {
        const int e = it % E, g = it / E;
        float val = 0.0f;
        if (g < a.nact) {
            if constexpr (NN > 0) {
                if (e != cached) {
#pragma unroll
                    for (int n = 0; n < NN; ++n) a2[n] = W[p.lo.A2_T + n * E + e];
                    cached = e;
                }
            }
            float dt = W[p.lo.dt_b + e];
            for (int q = 0; q < R; ++q) dt = fmaf(W[p.lo.dt_T + q * E + e], a.dbcs[q * G + g], dt);
            dt = softplus(dt);
            const float uu = a.us[e * G + g];
            const float du = dt * uu;
            float* const st = p.state_in_smem ? a.ssm_s + g * N * E + e : a.ssm_g + int64_t(g) * N * E + e;
            const float* const Bg = a.dbcs + R * G + g;  // B[n] at Bg[n·G], C[n] at Bg[(N + n)·G]
            float acc = W[p.lo.Dskip + e] * uu;
#pragma unroll(NN > 0 ? NN : 8)
            for (int n = 0; n < N; ++n) {
                const float a2n = NN > 0 ? a2[NN > 0 ? n : 0] : W[p.lo.A2_T + n * E + e];
                const float sn = fmaf(ex2(dt * a2n), st[n * E], du * Bg[n * G]);
                st[n * E] = sn;
                acc = fmaf(sn, Bg[(N + n) * G], acc);
            }
            val = acc * silu(a.uzs[(E + e) * G + g]);
        }
        a.ys[e * G + g] = val;
    }
}

// The same for an LTI layer (step.cuh, LayerOffsets): its constants per channel,
//   s = ā ⊙ s + b̄·u;  y = (Σ_n C ⊙ s + D·u) ⊙ SiLU(z)
template <int G>
__device__ __forceinline__ void ssm_items_lti(const StepParams& p, const SsmArgs& a) {
    const int E = p.E, N = p.N, T = int(blockDim.x);
    const float* const W = a.W;
    const float* const decay = W + p.lo.A2_T;  // [N][E]
    const float* const bbar = W + p.lo.x_T;    // [N][E]
    const float* const C = bbar + N * E;       // [N][E]
    for (int it = int(threadIdx.x); it < E * G; it += T) {
        const int e = it % E, g = it / E;
        float val = 0.0f;
        if (g < a.nact) {
            const float uu = a.us[e * G + g];
            float* const st = p.state_in_smem ? a.ssm_s + g * N * E + e : a.ssm_g + int64_t(g) * N * E + e;
            float acc = W[p.lo.Dskip + e] * uu;
            for (int n = 0; n < N; ++n) {
                const float sn = fmaf(decay[n * E + e], st[n * E], bbar[n * E + e] * uu);
                st[n * E] = sn;
                acc = fmaf(sn, C[n * E + e], acc);
            }
            val = acc * silu(a.uzs[(E + e) * G + g]);
        }
        a.ys[e * G + g] = val;
    }
}

// The step of G streams per block, feed after feed (step.cuh). SW: the weights are copied to
// shared memory at the start and read from there.
template <int G, bool SW>
__global__ void __launch_bounds__(kMaxThreads) step_kernel(const StepParams p) {
    extern __shared__ float4 smem4[];
    float* const sm = reinterpret_cast<float*>(smem4);
    const int T = int(blockDim.x), tid = int(threadIdx.x);
    const int lane = tid & 31, warp = tid >> 5, warps = T >> 5;
    const SmemLayout lay = smem_layout(p, G, T, SW, p.state_in_smem);
    const int s0 = int(blockIdx.x) * G;
    const int nact = min(G, p.S - s0);  // streams of this block that exist
    const int D = p.D, E = p.E, N = p.N, K = p.K, Mx = p.Mx;

    // The states: window (layer, stream s) [K-1][E] at window + (layer·S + s)·(K-1)·E, SSM
    // [N][E] likewise; the shared copy (state_in_smem) holds the block's streams the same way,
    // [layer][G][K-1][E] and [layer][G][N][E]. Loops over (channel e, stream g) run channels
    // fastest: coalesced in global memory, conflict-free in shared memory.
    const bool rs = p.state_in_smem;
    const int wfl = (K - 1) * E, sfl = N * E;  // floats per (layer, stream)
    float* const win_s = sm + lay.st;
    float* const ssm_s = win_s + p.n_layers * G * wfl;
    if (rs) {
        for (int layer = 0; layer < p.n_layers; ++layer) {
            for (int i = tid; i < nact * wfl; i += T)
                win_s[layer * G * wfl + i] = p.window[(int64_t(layer) * p.S + s0) * wfl + i];
            for (int i = tid; i < nact * sfl; i += T)
                ssm_s[layer * G * sfl + i] = p.ssm[(int64_t(layer) * p.S + s0) * sfl + i];
        }
    }

    const float* __restrict__ W = p.weights;
    if constexpr (SW) {
        const float4* src = reinterpret_cast<const float4*>(p.weights);
        float4* dst = reinterpret_cast<float4*>(sm + lay.w);
        for (int i = tid; i < p.weight_floats / 4; i += T) dst[i] = src[i];
        W = sm + lay.w;
        __syncthreads();
    }
    float* const xs = sm + lay.x;
    float* const hs = sm + lay.h;
    float* const uzs = sm + lay.uz;
    float* const us = sm + lay.u;
    float* const dbcs = sm + lay.dbc;
    float* const ys = sm + lay.y;
    float* const red = sm + lay.red;
    float* const lgs = sm + lay.logits;

    const int64_t f_first = p.f_dev ? *p.f_dev : p.f_begin;
    const int64_t f_end = f_first + (p.f_dev ? 1 : p.f_count);
    for (int64_t f = f_first; f < f_end; ++f) {
        const int64_t col = f - p.chunk_f0;
        // x = embeddings[token]   |   x = stem · in + stem_b
        for (int i = tid; i < D * G; i += T) {
            const int d = i / G, g = i % G;
            float v = 0.0f;
            if (g < nact) {
                const int s = s0 + g;
                if (p.tokens) {
                    const int32_t tok = f < p.n_teacher
                                            ? p.teacher[int64_t(s) * p.teacher_ss + col * p.teacher_tc]
                                            : p.cur_token[s];
                    v = W[p.embed + int64_t(tok) * D + d];
                } else {
                    const float* in = p.x + (col * p.S + s) * p.I;
                    v = W[p.stem_b + d];
                    for (int q = 0; q < p.I; ++q) v = fmaf(W[p.stem_w + d * p.I + q], in[q], v);
                }
            }
            xs[i] = v;
        }
        __syncthreads();

        for (int layer = 0; layer < p.n_layers; ++layer) {
            const int lo = layer * p.layer_stride;
            // h = RMSNorm(x) ⊙ norm_w
            for (int g = warp; g < G; g += warps) {
                float ss = 0.0f;
                for (int d = lane; d < D; d += 32) ss = fmaf(xs[d * G + g], xs[d * G + g], ss);
                const float scale = rsqrtf(warp_sum(ss) / float(D) + p.eps);
                for (int d = lane; d < D; d += 32)
                    hs[d * G + g] = xs[d * G + g] * scale * W[lo + p.lo.norm_w + d];
            }
            __syncthreads();
            // [u, z] = in_projᵀ h
            block_gemv<G>(uzs, W + lo + p.lo.in_T, 2 * E, D, hs, red, false);
            // u = SiLU(conv_b + Σ_k conv_w[k] · tap_k): taps 0..K-2 from the window, K-1 the new u;
            // then the window slides by one
            for (int it = tid; it < E * G; it += T) {
                const int e = it % E, g = it / E;
                float val = 0.0f;
                if (g < nact) {
                    // tap k of the window of (e, g) at w1[k·E]
                    float* const w1 = rs ? win_s + (layer * G + g) * wfl + e
                                         : p.window + (int64_t(layer) * p.S + s0 + g) * wfl + e;
                    const float cur = uzs[e * G + g];
                    float acc = W[lo + p.lo.conv_b + e];
                    for (int k = 0; k < K - 1; ++k)
                        acc = fmaf(W[lo + p.lo.conv_T + k * E + e], w1[k * E], acc);
                    acc = fmaf(W[lo + p.lo.conv_T + (K - 1) * E + e], cur, acc);
                    for (int k = 0; k + 1 < K - 1; ++k) w1[k * E] = w1[(k + 1) * E];
                    if (K > 1) w1[(K - 2) * E] = cur;
                    val = silu(acc);
                }
                us[e * G + g] = val;
            }
            __syncthreads();
            // (the same for every thread of the block: the branches below never split a barrier)
            const bool lti = W[lo + p.lo.lti] != 0.0f;
            // [r, B, C] = x_projᵀ u   (an LTI layer has none)
            if (!lti) block_gemv<G>(dbcs, W + lo + p.lo.x_T, Mx, E, us, red, false);
            // Δ = softplus(dt_projᵀ r + dt_b);  s = exp2(Δ·A2) ⊙ s + Δu·B;  y = (s·C + D·u) ⊙ SiLU(z)
            // (LTI: s = ā ⊙ s + b̄·u;  y = (s·C + D·u) ⊙ SiLU(z))
            {
                const SsmArgs a{W + lo, ssm_s + layer * G * sfl,
                                p.ssm + int64_t(layer) * p.S * sfl + int64_t(s0) * sfl, uzs, us, dbcs, ys, nact};
                if (lti)
                    ssm_items_lti<G>(p, a);
                else if (N == 16)
                    ssm_items<G, 16>(p, a);
                else
                    ssm_items<G, 0>(p, a);
            }
            __syncthreads();
            // x = x + out_projᵀ y
            block_gemv<G>(xs, W + lo + p.lo.out_T, D, E, ys, red, true);
        }

        if (!p.tokens) {
            // y = head_b + head · RMSNorm_f(x) (+ in[0])
            for (int g = warp; g < nact; g += warps) {
                float ss = 0.0f, dot = 0.0f;
                for (int d = lane; d < D; d += 32) {
                    const float v = xs[d * G + g];
                    ss = fmaf(v, v, ss);
                    dot = fmaf(v, W[p.norm_f + d] * W[p.head_w + d], dot);
                }
                ss = warp_sum(ss);
                dot = warp_sum(dot);
                if (lane == 0) {
                    const int s = s0 + g;
                    float out = W[p.head_b] + dot * rsqrtf(ss / float(D) + p.eps);
                    if (p.skip) out += p.x[(col * p.S + s) * p.I];
                    p.y[col * p.S + s] = out;
                }
            }
            __syncthreads();  // xs is rewritten by the next feed
            continue;
        }

        // logits = lm_headᵀ RMSNorm_f(x)
        for (int g = warp; g < G; g += warps) {
            float ss = 0.0f;
            for (int d = lane; d < D; d += 32) ss = fmaf(xs[d * G + g], xs[d * G + g], ss);
            const float scale = rsqrtf(warp_sum(ss) / float(D) + p.eps);
            for (int d = lane; d < D; d += 32) hs[d * G + g] = xs[d * G + g] * scale * W[p.norm_f + d];
        }
        __syncthreads();
        block_gemv<G>(lgs, W + p.lm_T, p.V, D, hs, red, false);
        if (p.logits_out) {
            for (int i = tid; i < p.V * G; i += T) {
                const int v = i / G, g = i % G;
                if (g < nact) p.logits_out[(col * p.S + s0 + g) * p.V + v] = lgs[i];
            }
        }
        if (p.first_sample_feed >= 0 && f >= p.first_sample_feed) {
            float* sp = sm + lay.sort + warp * 512;
            int* si = reinterpret_cast<int*>(sp + 256);
            for (int g = warp; g < nact; g += warps) {
                const int s = s0 + g;
                const int cls = sample_class(lgs + g, G, p.V, p.temperature, p.top_p, p.seed, uint32_t(s),
                                             uint64_t(p.sample_base + (f - p.first_sample_feed)), sp, si);
                if (lane == 0) {
                    p.out[int64_t(s) * p.out_pitch + col] = cls;
                    p.cur_token[s] = cls;
                }
            }
        }
        __syncthreads();  // the class is read back (cur_token) and xs rewritten by the next feed
    }

    if (rs) {  // the states back to global memory (the last feed ended in a barrier)
        for (int layer = 0; layer < p.n_layers; ++layer) {
            for (int i = tid; i < nact * wfl; i += T)
                p.window[(int64_t(layer) * p.S + s0) * wfl + i] = win_s[layer * G * wfl + i];
            for (int i = tid; i < nact * sfl; i += T)
                p.ssm[(int64_t(layer) * p.S + s0) * sfl + i] = ssm_s[layer * G * sfl + i];
        }
    }
}

// The graph variant's counter: set before the replays, advanced by one node per replay.
__global__ void set_counter(int64_t* counter, int64_t value) { *counter = value; }
__global__ void advance_counter(int64_t* counter) { *counter += 1; }

using StepKernel = void (*)(StepParams);

StepKernel kernel_for(int G, bool sw) {
    switch (G) {
    case 1: return sw ? step_kernel<1, true> : step_kernel<1, false>;
    case 2: return sw ? step_kernel<2, true> : step_kernel<2, false>;
    case 4: return sw ? step_kernel<4, true> : step_kernel<4, false>;
    case 8: return sw ? step_kernel<8, true> : step_kernel<8, false>;
    case 16: return sw ? step_kernel<16, true> : step_kernel<16, false>;
    }
    throw std::invalid_argument("step kernel: group " + std::to_string(G) + " is not 1, 2, 4, 8 or 16");
}

} // namespace

void prepare_kernel(int G, bool weights_in_smem, int bytes) {
    MW_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel_for(G, weights_in_smem)),
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

void launch_step(const StepParams& p, int G, int T, bool weights_in_smem, cudaStream_t stream) {
    const SmemLayout lay = smem_layout(p, G, T, weights_in_smem, p.state_in_smem);
    const unsigned blocks = unsigned((p.S + G - 1) / G);
    kernel_for(G, weights_in_smem)<<<blocks, unsigned(T), size_t(lay.total) * sizeof(float), stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
}

} // namespace step_detail

// ---- the Stepper ------------------------------------------------------------------------------

using namespace step_detail;
using detail::add_elapsed;
using detail::DevPtr;
using detail::device_alloc;

struct Stepper {
    StepParams base{};          // sizes, weight offsets, state pointers; per call the rest
    HeadKind head = HeadKind::tokens;
    int S = 0;
    int sm_count = 1;
    int smem_optin = 48 * 1024;

    cudaStream_t stream = nullptr;
    cudaEvent_t ev[4] = {};

    DevPtr<float> weights;
    DevPtr<float> state;        // windows [L][S][K-1][E], then SSM [L][S][N][E]
    int64_t state_floats = 0;
    DevPtr<int32_t> cur_token;  // [S] the pending class
    DevPtr<int64_t> counter;    // the graph variant's feed index

    // chunk buffers
    int64_t chunk = 0;          // C: samples per launch (effect, generation)
    int64_t logits_chunk = 0;   // samples per launch of step_tokens
    DevPtr<float> x, y;         // effect: [C][S][I], [C][S]
    DevPtr<int32_t> teacher;    // generator: [S][C] (a prime), [C][S] (step_tokens), [C] (shared)
    DevPtr<int32_t> out;        // generator: [S][C]
    DevPtr<float> logits;       // generator, step_tokens: [logits_chunk][S][V] (made on first use)

    bool pending = true;        // a class is pending in cur_token
    int64_t drawn = 0;          // samples drawn per stream since the reset (random-number index)

    StepTuning requested;       // as set
    StepTuning active;          // resolved
    Timing time;

    ~Stepper() {
        for (cudaEvent_t e : ev)
            if (e) cudaEventDestroy(e);
        if (stream) cudaStreamDestroy(stream);
    }
};

void StepperDeleter::operator()(Stepper* s) const { delete s; }

namespace {

// The step's weights, transposed for coalesced loads (step.cuh, LayerOffsets), 4-float aligned.
void pack_weights(Stepper& st, const ModelView& m) {
    const Dims& d = m.dims;
    const int D = d.d_model, E = d.d_inner, N = d.d_state, K = d.d_conv, R = d.dt_rank;
    const int Mx = R + 2 * N;
    detail::WeightPack pack(4);
    StepParams& p = st.base;
    std::vector<LayerOffsets> offs(size_t(d.n_layers));
    for (int l = 0; l < d.n_layers; ++l) {
        const LayerView& w = m.layers[l];
        LayerOffsets& o = offs[size_t(l)];
        const bool lti = is_lti(w);
        const detail::LtiConstants k = lti ? detail::lti_constants(w, E, N) : detail::LtiConstants{};
        o.norm_w = int(pack.add(w.norm_w, D));
        o.in_T = int(pack.add_fn(int64_t(D) * 2 * E, [&](int64_t i) {
            const int64_t dd = i / (2 * E), j = i % (2 * E);
            return w.in_proj_w[j * D + dd];
        }));
        o.conv_T = int(pack.add_fn(int64_t(K) * E, [&](int64_t i) {
            const int64_t k = i / E, e = i % E;
            return w.conv_w[e * K + k];
        }));
        o.conv_b = int(pack.add_fn(E, [&](int64_t e) { return w.conv_b ? w.conv_b[e] : 0.0f; }));
        o.x_T = int(pack.add_fn(int64_t(E) * Mx, [&](int64_t i) {
            if (lti) {  // b̄ [N][E], then C [N][E], then zeros
                const int64_t ne = int64_t(N) * E;
                return i < ne ? k.bbar[size_t(i)] : i < 2 * ne ? k.C[size_t(i - ne)] : 0.0f;
            }
            const int64_t e = i / Mx, j = i % Mx;
            return w.x_proj_w[j * E + e];
        }));
        o.dt_T = int(pack.add_fn(int64_t(R) * E, [&](int64_t i) {
            const int64_t r = i / E, e = i % E;
            return lti ? 0.0f : w.dt_proj_w[e * R + r];
        }));
        o.dt_b = int(pack.add(w.dt_proj_b, E));
        o.A2_T = int(pack.add_fn(int64_t(N) * E, [&](int64_t i) {
            const int64_t n = i / E, e = i % E;
            return lti ? k.decay[size_t(i)] : detail::a_log2e(w.A_log[e * N + n]);
        }));
        o.Dskip = int(pack.add(w.D, E));
        o.out_T = int(pack.add_fn(int64_t(E) * D, [&](int64_t i) {
            const int64_t e = i / D, dd = i % D;
            return w.out_proj_w[dd * E + e];
        }));
        o.lti = int(pack.add_fn(1, [&](int64_t) { return lti ? 1.0f : 0.0f; }));
    }
    // Every layer has the same sizes, so its tensors sit at layer 0's offsets plus l · stride.
    p.lo = offs[0];
    p.layer_stride = d.n_layers > 1 ? offs[1].norm_w - offs[0].norm_w : 0;
    p.norm_f = int(pack.add(m.norm_f_w, D));
    p.embed = p.lm_T = p.stem_w = p.stem_b = p.head_w = p.head_b = -1;
    if (m.head == HeadKind::tokens) {
        const int V = m.vocab;
        p.embed = int(pack.add(m.embed_w, int64_t(V) * D));
        p.lm_T = int(pack.add_fn(int64_t(D) * V, [&](int64_t i) {
            const int64_t dd = i / V, v = i % V;
            return m.lm_head_w[v * D + dd];
        }));
    } else {
        p.stem_w = int(pack.add(m.stem_w, int64_t(D) * m.n_in));
        p.stem_b = int(pack.add(m.stem_b, D));
        p.head_w = int(pack.add(m.head_w, D));
        p.head_b = int(pack.add(m.head_b, 1));
    }
    st.weights = pack.upload(st.stream);
    p.weights = st.weights.get();
    p.weight_floats = int(pack.floats());
}

int auto_group(int S, int sm_count) {
    int G = 1;
    while (G < 16 && (S + G - 1) / G > 2 * sm_count) G *= 2;
    return G;
}

// Enough threads for the widest product, and about one per (stream, channel) of the block.
int auto_threads(const StepParams& p, int G) {
    const int widest = std::max({2 * p.E, p.D, p.tokens ? p.V : 0});
    int T = int(std::clamp<int64_t>(detail::round_up(std::max(widest, p.E * G), 32), 64, kMaxThreads));
    if (G <= 2 && widest >= 256) T = kMaxThreads;  // few streams: more loads in flight per product
    return T;
}

// Resolves st.requested into st.active and raises the kernel's shared memory limit. At the
// group (the automatic one halves until something fits), in order of preference: weights and
// states in shared memory, the weights alone, the states alone, neither (the states only in
// the persistent variant). Measured on an H100 (NOTES.md): weights in shared memory never
// lose; the states there win at 1..1024 streams and lose where they crowd out the weights.
void resolve_tuning(Stepper& st) {
    const StepTuning& rq = st.requested;
    StepTuning a = rq;
    const bool auto_group_ = rq.group == 0;
    auto bytes = [&](int G, int T, bool sw, bool rs) {
        StepParams q = st.base;
        q.state_in_smem = rs;
        return int64_t(smem_layout(q, G, T, sw, rs).total) * 4;
    };
    const bool allow_rs = rq.variant == StepVariant::persistent && rq.state_in_smem != 0;
    const bool allow_sw = rq.weights_in_smem != 0;
    for (int G = auto_group_ ? auto_group(st.S, st.sm_count) : rq.group;; G /= 2) {
        const int T = rq.threads ? rq.threads : auto_threads(st.base, G);
        const bool options[4][2] = {{true, true}, {true, false}, {false, true}, {false, false}};
        for (const auto& o : options) {
            const bool sw = o[0], rs = o[1];
            if ((sw && !allow_sw) || (rs && !allow_rs) || bytes(G, T, sw, rs) > st.smem_optin) continue;
            a.group = G, a.threads = T, a.weights_in_smem = sw, a.state_in_smem = rs;
            prepare_kernel(G, sw, int(bytes(G, T, sw, rs)));
            st.active = a;
            st.base.state_in_smem = rs;
            return;
        }
        if (!auto_group_ || G == 1)
            throw std::invalid_argument("cuda step: the model needs " + std::to_string(bytes(G, T, false, false)) +
                                        " bytes of shared memory for " + std::to_string(G) +
                                        " streams per block, the GPU allows " + std::to_string(st.smem_optin));
    }
}

// Runs feeds [f0, f0 + count) of the call described by p (chunk buffers already filled), by
// the active variant. Events ev[1] / ev[2] bracket the compute.
void run_feeds(Stepper& st, StepParams p, int64_t f0, int64_t count) {
    const StepTuning& a = st.active;
    const bool sw = a.weights_in_smem == 1;
    MW_CUDA_CHECK(cudaEventRecord(st.ev[1], st.stream));
    if (a.variant == StepVariant::persistent) {
        p.f_begin = f0;
        p.f_count = count;
        p.f_dev = nullptr;
        launch_step(p, a.group, a.threads, sw, st.stream);
    } else {
        // One step (kernel + counter advance) captured once, replayed `count` times.
        p.f_begin = 0;
        p.f_count = 1;
        p.f_dev = st.counter.get();
        set_counter<<<1, 1, 0, st.stream>>>(st.counter.get(), f0);
        MW_CUDA_CHECK_LAUNCH();
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        MW_CUDA_CHECK(cudaStreamBeginCapture(st.stream, cudaStreamCaptureModeThreadLocal));
        try {
            launch_step(p, a.group, a.threads, sw, st.stream);
            advance_counter<<<1, 1, 0, st.stream>>>(st.counter.get());
            MW_CUDA_CHECK_LAUNCH();
        } catch (...) {
            cudaStreamEndCapture(st.stream, &graph);
            if (graph) cudaGraphDestroy(graph);
            throw;
        }
        MW_CUDA_CHECK(cudaStreamEndCapture(st.stream, &graph));
        const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        MW_CUDA_CHECK(inst);
        cudaError_t err = cudaSuccess;
        for (int64_t i = 0; i < count && err == cudaSuccess; ++i) err = cudaGraphLaunch(exec, st.stream);
        cudaGraphExecDestroy(exec);  // deferred by the driver until the launches finish
        MW_CUDA_CHECK(err);
    }
    MW_CUDA_CHECK(cudaEventRecord(st.ev[2], st.stream));
}

// Waits for the chunk and adds its event times.
void finish_chunk(Stepper& st, int64_t samples) {
    MW_CUDA_CHECK(cudaEventRecord(st.ev[3], st.stream));
    MW_CUDA_CHECK(cudaStreamSynchronize(st.stream));
    add_elapsed(st.time.upload_ms, st.ev[0], st.ev[1]);
    add_elapsed(st.time.compute_ms, st.ev[1], st.ev[2]);
    add_elapsed(st.time.download_ms, st.ev[2], st.ev[3]);
    st.time.steps += samples;
}

void check_tokens(const int32_t* tokens, int64_t count, int V, const std::string& who) {
    for (int64_t i = 0; i < count; ++i)
        if (tokens[i] < 0 || tokens[i] >= V)
            throw std::invalid_argument(who + ": token " + std::to_string(tokens[i]) + " at element " +
                                        std::to_string(i) + " is outside 0.." + std::to_string(V - 1));
}

} // namespace

StepperPtr make_stepper(const ModelView& m, int streams) {
    detail::check_model_view(m, "cuda::make_stepper");
    if (streams < 1 || streams > kMaxStepStreams)
        throw std::invalid_argument("cuda::make_stepper: streams is " + std::to_string(streams) +
                                    ", expected 1.." + std::to_string(kMaxStepStreams));
    if (m.head == HeadKind::tokens && m.vocab > kMaxVocab)
        throw std::invalid_argument("cuda::make_stepper: vocab " + std::to_string(m.vocab) +
                                    " is above the GPU sampler's " + std::to_string(kMaxVocab));
    if (!available()) throw CudaError("cuda::make_stepper: no CUDA device is present or usable");

    StepperPtr st(new Stepper);
    const Dims& d = m.dims;
    StepParams& p = st->base;
    p.S = streams;
    p.D = d.d_model;
    p.E = d.d_inner;
    p.N = d.d_state;
    p.K = d.d_conv;
    p.R = d.dt_rank;
    p.Mx = d.dt_rank + 2 * d.d_state;
    p.n_layers = d.n_layers;
    p.eps = d.norm_eps;
    p.tokens = m.head == HeadKind::tokens;
    p.V = p.tokens ? m.vocab : 0;
    p.I = p.tokens ? 0 : m.n_in;
    p.skip = !p.tokens && m.skip;
    st->head = m.head;
    st->S = streams;

    int dev = 0;
    MW_CUDA_CHECK(cudaGetDevice(&dev));
    MW_CUDA_CHECK(cudaDeviceGetAttribute(&st->sm_count, cudaDevAttrMultiProcessorCount, dev));
    MW_CUDA_CHECK(cudaDeviceGetAttribute(&st->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    MW_CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    for (cudaEvent_t& e : st->ev) MW_CUDA_CHECK(cudaEventCreate(&e));

    pack_weights(*st, m);
    if (int64_t(p.weight_floats) >= INT_MAX / 2)
        throw std::invalid_argument("cuda::make_stepper: the model's weights are too large for the step");

    const int64_t window = int64_t(d.n_layers) * streams * (d.d_conv - 1) * d.d_inner;
    st->state_floats = window + int64_t(d.n_layers) * streams * d.d_state * d.d_inner;
    st->state = device_alloc<float>(st->state_floats);
    p.window = st->state.get();
    p.ssm = st->state.get() + window;
    st->cur_token = device_alloc<int32_t>(streams);
    p.cur_token = st->cur_token.get();
    st->counter = device_alloc<int64_t>(1);

    // About 8 MB of chunk buffers per kind, at least 256 samples per launch.
    st->chunk = std::clamp<int64_t>((int64_t(1) << 21) / streams, 256, 65536);
    if (p.tokens) {
        st->teacher = device_alloc<int32_t>(int64_t(streams) * st->chunk);
        st->out = device_alloc<int32_t>(int64_t(streams) * st->chunk);
        st->logits_chunk = std::clamp<int64_t>((int64_t(1) << 22) / (int64_t(streams) * p.V), 1, st->chunk);
    } else {
        st->x = device_alloc<float>(int64_t(streams) * st->chunk * p.I);
        st->y = device_alloc<float>(int64_t(streams) * st->chunk);
    }
    resolve_tuning(*st);
    reset_stepper(*st);
    return st;
}

HeadKind head_kind(const Stepper& s) { return s.head; }
int streams(const Stepper& s) { return s.S; }

void reset_stepper(Stepper& st) {
    if (st.state_floats > 0)
        MW_CUDA_CHECK(cudaMemsetAsync(st.state.get(), 0, size_t(st.state_floats) * sizeof(float), st.stream));
    if (st.base.tokens) {
        const std::vector<int32_t> silence(size_t(st.S), st.base.V / 2);
        MW_CUDA_CHECK(cudaMemcpyAsync(st.cur_token.get(), silence.data(), silence.size() * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, st.stream));
    }
    MW_CUDA_CHECK(cudaStreamSynchronize(st.stream));
    st.pending = true;
    st.drawn = 0;
}

void step_continuous(Stepper& st, const float* x, float* y, int64_t n_steps) {
    if (st.head != HeadKind::continuous)
        throw std::invalid_argument("cuda::step_continuous: the model is a generator (tokens in); use "
                                    "step_tokens or generate_tokens");
    if (n_steps < 0) throw std::invalid_argument("cuda::step_continuous: n_steps is negative");
    const int64_t S = st.S, I = st.base.I;
    StepParams p = st.base;
    p.x = st.x.get();
    p.y = st.y.get();
    for (int64_t f0 = 0; f0 < n_steps; f0 += st.chunk) {
        const int64_t n = std::min(st.chunk, n_steps - f0);
        p.chunk_f0 = f0;
        MW_CUDA_CHECK(cudaEventRecord(st.ev[0], st.stream));
        MW_CUDA_CHECK(cudaMemcpyAsync(st.x.get(), x + f0 * S * I, size_t(n * S * I) * sizeof(float),
                                      cudaMemcpyHostToDevice, st.stream));
        run_feeds(st, p, f0, n);
        MW_CUDA_CHECK(cudaMemcpyAsync(y + f0 * S, st.y.get(), size_t(n * S) * sizeof(float),
                                      cudaMemcpyDeviceToHost, st.stream));
        finish_chunk(st, n);
    }
}

void step_tokens(Stepper& st, const int32_t* tokens, float* logits, int64_t n_steps) {
    if (st.head != HeadKind::tokens)
        throw std::invalid_argument("cuda::step_tokens: the model is an effect (samples in); use "
                                    "step_continuous");
    if (n_steps < 0) throw std::invalid_argument("cuda::step_tokens: n_steps is negative");
    const int64_t S = st.S, V = st.base.V;
    check_tokens(tokens, n_steps * S, int(V), "cuda::step_tokens");
    if (n_steps == 0) return;
    if (!st.logits) st.logits = device_alloc<float>(st.logits_chunk * S * V);
    StepParams p = st.base;
    p.teacher = st.teacher.get();
    p.teacher_ss = 1;  // [C][S]
    p.teacher_tc = S;
    p.logits_out = st.logits.get();
    p.first_sample_feed = -1;
    p.out = st.out.get();
    p.out_pitch = st.chunk;
    for (int64_t f0 = 0; f0 < n_steps; f0 += st.logits_chunk) {
        const int64_t n = std::min(st.logits_chunk, n_steps - f0);
        p.chunk_f0 = f0;
        p.n_teacher = f0 + n;
        MW_CUDA_CHECK(cudaEventRecord(st.ev[0], st.stream));
        MW_CUDA_CHECK(cudaMemcpyAsync(st.teacher.get(), tokens + f0 * S, size_t(n * S) * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, st.stream));
        run_feeds(st, p, f0, n);
        MW_CUDA_CHECK(cudaMemcpyAsync(logits + f0 * S * V, st.logits.get(), size_t(n * S * V) * sizeof(float),
                                      cudaMemcpyDeviceToHost, st.stream));
        finish_chunk(st, n);
    }
    st.pending = false;
}

void generate_tokens(Stepper& st, const GenerateParams& g, int32_t* out) {
    const std::string who = "cuda::generate_tokens";
    if (st.head != HeadKind::tokens)
        throw std::invalid_argument(who + ": the model is an effect, not a generator");
    if (g.n_steps < 0) throw std::invalid_argument(who + ": n_steps is negative");
    if (g.prime_len < 0) throw std::invalid_argument(who + ": prime_len is negative");
    if (!(g.temperature >= 0.0f) || !std::isfinite(g.temperature))
        throw std::invalid_argument(who + ": temperature " + std::to_string(g.temperature) +
                                    ", expected a finite value >= 0");
    if (!(g.top_p > 0.0f && g.top_p <= 1.0f))
        throw std::invalid_argument(who + ": top_p " + std::to_string(g.top_p) + ", expected 0 < top_p <= 1");
    const int64_t S = st.S, V = st.base.V, C = st.chunk;
    const bool primed = g.prime != nullptr && g.prime_len > 0;
    const int64_t P = primed ? g.prime_len : 0;
    if (primed) check_tokens(g.prime, g.shared_prime ? P : S * P, int(V), who + " (prime)");
    if (!primed && !st.pending && g.n_steps > 0)
        throw std::logic_error(who + ": no class is pending (step_tokens ran last): give a prime");

    // Feeds: the prime (or the pending class), then every drawn class but the last.
    const int64_t P1 = primed ? P : 1;
    const int64_t F = g.n_steps > 0 ? P1 + g.n_steps - 1 : (primed ? P - 1 : 0);
    StepParams p = st.base;
    p.teacher = st.teacher.get();
    p.teacher_ss = g.shared_prime ? 0 : C;  // [S][C] or one shared row
    p.teacher_tc = 1;
    p.n_teacher = P;
    p.logits_out = nullptr;
    p.first_sample_feed = g.n_steps > 0 ? P1 - 1 : -1;
    p.out = st.out.get();
    p.out_pitch = C;
    p.sample_base = st.drawn;
    p.temperature = g.temperature;
    p.top_p = g.top_p;
    p.seed = g.seed;
    for (int64_t f0 = 0; f0 < F; f0 += C) {
        const int64_t f1 = std::min(F, f0 + C);
        p.chunk_f0 = f0;
        MW_CUDA_CHECK(cudaEventRecord(st.ev[0], st.stream));
        if (f0 < P) {  // this chunk's part of the prime
            const int64_t cols = std::min(f1, P) - f0;
            if (g.shared_prime)
                MW_CUDA_CHECK(cudaMemcpyAsync(st.teacher.get(), g.prime + f0, size_t(cols) * sizeof(int32_t),
                                              cudaMemcpyHostToDevice, st.stream));
            else
                MW_CUDA_CHECK(cudaMemcpy2DAsync(st.teacher.get(), size_t(C) * sizeof(int32_t), g.prime + f0,
                                                size_t(P) * sizeof(int32_t), size_t(cols) * sizeof(int32_t),
                                                size_t(S), cudaMemcpyHostToDevice, st.stream));
        }
        run_feeds(st, p, f0, f1 - f0);
        // drawn classes j = f - (P1 - 1) for the feeds of this chunk that draw
        const int64_t fd = std::max(f0, P1 - 1);
        if (g.n_steps > 0 && fd < f1) {
            const int64_t j0 = fd - (P1 - 1);
            MW_CUDA_CHECK(cudaMemcpy2DAsync(out + j0, size_t(g.n_steps) * sizeof(int32_t),
                                            st.out.get() + (fd - f0), size_t(C) * sizeof(int32_t),
                                            size_t(f1 - fd) * sizeof(int32_t), size_t(S),
                                            cudaMemcpyDeviceToHost, st.stream));
        }
        finish_chunk(st, f1 - f0);
    }
    if (g.n_steps == 0 && primed) {
        // The prime's last class is pending (fed by the next call).
        if (g.shared_prime) {
            const std::vector<int32_t> last(size_t(S), g.prime[P - 1]);
            MW_CUDA_CHECK(cudaMemcpyAsync(st.cur_token.get(), last.data(), last.size() * sizeof(int32_t),
                                          cudaMemcpyHostToDevice, st.stream));
        } else {
            MW_CUDA_CHECK(cudaMemcpy2DAsync(st.cur_token.get(), sizeof(int32_t), g.prime + P - 1,
                                            size_t(P) * sizeof(int32_t), sizeof(int32_t), size_t(S),
                                            cudaMemcpyHostToDevice, st.stream));
        }
        MW_CUDA_CHECK(cudaStreamSynchronize(st.stream));
        st.pending = true;
    }
    if (g.n_steps > 0) st.pending = true;
    st.drawn += g.n_steps;
}

void generate_tokens(Stepper& s, const int32_t* prime, int64_t P, int64_t n_steps, float temperature,
                     float top_p, uint64_t seed, int32_t* out) {
    GenerateParams g;
    g.prime = prime;
    g.prime_len = prime ? P : 0;
    g.n_steps = n_steps;
    g.temperature = temperature;
    g.top_p = top_p;
    g.seed = seed;
    generate_tokens(s, g, out);
}

void set_step_tuning(Stepper& st, const StepTuning& t) {
    const std::string who = "cuda::set_step_tuning: ";
    if (t.variant != StepVariant::persistent && t.variant != StepVariant::graph)
        throw std::invalid_argument(who + "unknown variant");
    if (t.group != 0 && t.group != 1 && t.group != 2 && t.group != 4 && t.group != 8 && t.group != 16)
        throw std::invalid_argument(who + "group " + std::to_string(t.group) + ", expected 0, 1, 2, 4, 8 or 16");
    if (t.threads != 0 && (t.threads % 32 != 0 || t.threads < 32 || t.threads > kMaxThreads))
        throw std::invalid_argument(who + "threads " + std::to_string(t.threads) +
                                    ", expected 0 or a multiple of 32 up to " + std::to_string(kMaxThreads));
    if (t.weights_in_smem < -1 || t.weights_in_smem > 1)
        throw std::invalid_argument(who + "weights_in_smem " + std::to_string(t.weights_in_smem) +
                                    ", expected -1, 0 or 1");
    if (t.state_in_smem < -1 || t.state_in_smem > 1)
        throw std::invalid_argument(who + "state_in_smem " + std::to_string(t.state_in_smem) +
                                    ", expected -1, 0 or 1");
    const StepTuning old = st.requested;
    st.requested = t;
    try {
        resolve_tuning(st);
    } catch (...) {
        st.requested = old;
        throw;
    }
}

StepTuning step_tuning(const Stepper& s) { return s.active; }

StepFootprint step_footprint(const Stepper& s) {
    StepFootprint f;
    f.weight_bytes = int64_t(s.base.weight_floats) * 4;
    f.state_bytes_per_stream = s.state_floats / s.S * 4;
    return f;
}

void dirty_device_memory_for_testing(int64_t bytes) {
    if (bytes <= 0) return;
    void* p = nullptr;
    MW_CUDA_CHECK(cudaMalloc(&p, size_t(bytes)));
    const cudaError_t set = cudaMemset(p, 0xff, size_t(bytes));
    const cudaError_t done = cudaDeviceSynchronize();
    cudaFree(p);
    MW_CUDA_CHECK(set);
    MW_CUDA_CHECK(done);
}

Timing timing(const Stepper& s) { return s.time; }
void reset_timing(Stepper& s) { s.time = Timing{}; }

} // namespace mw::kernels::cuda
