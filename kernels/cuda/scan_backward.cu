// The selective scan's backward on the GPU, parallel over time like the forward (scan.cuh
// gives the forward; docs/TRAINING_MATH.md the equations). With a_t = exp(Δ_t·A) per state,
//
//   s_t = a_t·s_{t-1} + Δ_t·u_t·B_t          y_t = (C_t·s_t + D·u_t)·SiLU(z_t)
//
// the adjoint of the state, g_t = dLoss/ds_t, runs backward in time:
//
//   g_t = C_t·ȳ_t + a_{t+1}·g_{t+1}           ȳ_t = dLoss/dy_t · SiLU(z_t)
//
// which is the same kind of linear recurrence as the forward, reversed. So it is chunked the
// same way (chunks of T = 8 or 16 steps, kScanBackwardChunk by default):
//   pass 1  every (b, c, e), all states: the chunk's adjoint from a zero carry, run back to the
//           chunk's start and multiplied by a_start: what the chunk hands to the chunk before
//           it, apart from what came in from after it; and ΣΔ (the chunk's decay is exp(A·ΣΔ)).
//   pass 2  the carries, last chunk first: carry into chunk c-1 = local(c) + exp(A·ΣΔ_c)·carry
//           into chunk c (the last chunk's carry is zero: no gradient flows through the state
//           after the last step), in two levels over groups of chunks like the forward's.
//   pass 3  every (b, c, e): the chunk's states again, forward from its start state (kept by
//           the forward scan run with the same chunk length, nothing [L][E][N] is stored), then
//           the adjoint backward from the carry, and every gradient:
//             dB_t = Σ_e g_t·Δ_t·u_t     dC_t = Σ_e ȳ_t·s_t     (summed over the warp's channels)
//             du_t = Σ_n g_t·Δ_t·B_t + ȳ_t·D
//             dΔ_t = Σ_n g_t·(A·a_t·s_{t-1} + B_t·u_t)      d(dt)_t = dΔ_t·sigmoid(dt_t + bias)
//             dA   = Σ_t g_t·Δ_t·a_t·s_{t-1}                dA_log = dA·A
//             dz_t = dLoss/dy_t·(C_t·s_t + D·u_t)·SiLU'(z_t)   dD = Σ_t ȳ_t·u_t
// A warp owns 32 consecutive channels of one chunk; each lane keeps its chunk's values in
// registers (the chunk length is a compile-time constant). The per-step sums over channels
// (dB, dC) leave the warp through a transposing reduction: the 2T values of every lane are
// summed across the 32 lanes in 31 shuffles, each lane ending with one (step, B or C) total.
// Sums over chunks (dA, dD) and over the warps of one step (dB, dC when E > 32) are written
// as partials and added in a fixed order: no atomics, so the result is the same on every run.
//
// Passes 1 and 3 come in two variants (ScanBackwardProblem::variant): 1 reads B_t and C_t from
// global memory inside the loops over states (the first version, kept to compare); 2, the
// default, stages the chunk's B / C rows and each lane's per-state values in shared memory
// first. Both issue every global load of a chunk at once (unconditional loads from clamped
// places), which is most of what made the first version slow. docs/BENCHMARKS.md has the figures.
#include "kernels/cuda/scan.cuh"

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/scan_util.cuh"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace mw::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr float kLn2 = 0.6931471805599453f;

unsigned blocks_for(int64_t threads, int per_block) {
    return unsigned((threads + per_block - 1) / per_block);
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

struct BwdParams {
    int B, E, N, nc, slices;
    int64_t L;
    const float* __restrict__ dt;  int64_t dt_stride;
    const float* __restrict__ u;   int64_t u_stride;
    const float* __restrict__ z;   int64_t z_stride;
    const float* __restrict__ Bm;
    const float* __restrict__ Cm;  int64_t bc_stride;
    const float* __restrict__ dy;  int64_t dy_stride;
    const float* __restrict__ A2;
    const float* __restrict__ D;
    const float* __restrict__ dt_bias;
    const float* __restrict__ chunk_start;  // [B][nc][N][E]
    float* carry;                           // [B][nc][N][E] pass 1: local adjoint; pass 2: carry in
    float* sum_dt;                          // [B][nc][E]
    int S, G;                               // pass 2: chunks per group, groups per sequence
    float* group_carry;                     // [B][G][N][E] pass 2a: fold from zero; 2b: carry in
    float* group_dt;                        // [B][G][N][E] ΣΔ over the group
    float* bc_part;                         // [bc_slices][B·L][2N]: dB (n), dC (N + n)
    int bc_slices;                          // partial sums of dB / dC per row (32 or 64 channels each)
    float* dA_part;                         // [B·nc][N][E]
    float* dD_part;                         // [B·nc][E]
    float* __restrict__ du;  int64_t du_stride;
    float* __restrict__ ddt; int64_t ddt_stride;
    float* __restrict__ dz;  int64_t dz_stride;
};

// Where a warp works: sequence b, chunk c, channel e of its lane, steps [t0, t0 + nt).
struct WarpTask {
    int b, c, e, lane, slice;
    bool on;          // e < E
    int nt;           // valid steps of the chunk (the last chunk may be short)
    int64_t row0;     // row of the chunk's first step
};
template <int T>
__device__ __forceinline__ bool warp_task(const BwdParams& p, WarpTask& w) {
    const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    if (warp >= int64_t(p.B) * p.nc * p.slices) return false;  // the whole warp
    w.lane = int(threadIdx.x & 31);
    w.slice = int(warp % p.slices);
    const int64_t bc = warp / p.slices;
    w.c = int(bc % p.nc);
    w.b = int(bc / p.nc);
    w.e = w.slice * 32 + w.lane;
    w.on = w.e < p.E;
    const int64_t t0 = int64_t(w.c) * T;
    w.nt = int(min(int64_t(T), p.L - t0));
    w.row0 = int64_t(w.b) * p.L + t0;
    return true;
}

// Loads are unconditional, from clamped places (the chunk's last valid step, the last
// channel) and zeroed afterwards where they fall outside: a load inside `if (t < nt)` cannot be
// issued before the previous step's branch, so every step waited for memory in turn (ncu: most
// of the warps' stall cycles).
__device__ __forceinline__ int64_t clamped_row(const WarpTask& w, int t) { return w.row0 + min(t, w.nt - 1); }
__device__ __forceinline__ int clamped_channel(const BwdParams& p, const WarpTask& w) { return min(w.e, p.E - 1); }

// The chunk's raw dt, z and dy of channel e (clamped rows: every load in flight at once).
template <int T>
__device__ __forceinline__ void load_raw(const BwdParams& p, const WarpTask& w, int e, float (&raw_dt)[T],
                                         float (&raw_z)[T], float (&raw_dy)[T]) {
#pragma unroll
    for (int t = 0; t < T; ++t) {
        const int64_t r = clamped_row(w, t);
        raw_dt[t] = p.dt[r * p.dt_stride + e];
        raw_z[t] = p.z[r * p.z_stride + e];
        raw_dy[t] = p.dy[r * p.dy_stride + e];
    }
}

// Δ_t and ȳ_t = dy_t·SiLU(z_t) of the lane's chunk (zero past the end and off the channels).
template <int T>
__device__ __forceinline__ void load_chunk(const BwdParams& p, const WarpTask& w, float (&dl)[T],
                                           float (&dys)[T]) {
    const int e = clamped_channel(p, w);
    const float bias = p.dt_bias[e];
    float raw_dt[T], raw_z[T], raw_dy[T];
    load_raw<T>(p, w, e, raw_dt, raw_z, raw_dy);
#pragma unroll
    for (int t = 0; t < T; ++t) {
        const bool live = w.on && t < w.nt;
        dl[t] = live ? softplus(raw_dt[t] + bias) : 0.0f;
        dys[t] = live ? raw_dy[t] * raw_z[t] * sigmoid(raw_z[t]) : 0.0f;
    }
}

// u_t of the lane's chunk (zero past the end and off the channels).
template <int T>
__device__ __forceinline__ void load_u(const BwdParams& p, const WarpTask& w, float (&uu)[T]) {
    const int e = clamped_channel(p, w);
    float raw[T];
#pragma unroll
    for (int t = 0; t < T; ++t) raw[t] = p.u[clamped_row(w, t) * p.u_stride + e];
#pragma unroll
    for (int t = 0; t < T; ++t) uu[t] = w.on && t < w.nt ? raw[t] : 0.0f;
}

// Pass 3's start (variants 1 and 2): the chunk's Δ, ȳ and u, and the sums over states begun
// with their terms that do not depend on a state: du = ȳ·D, dΔ = 0, y = D·u. Returns dD's part,
// Σ_t ȳ·u.
template <int T>
__device__ __forceinline__ float begin_chunk(const BwdParams& p, const WarpTask& w, float (&dl)[T], float (&dys)[T],
                                             float (&uu)[T], float (&du)[T], float (&dd)[T], float (&ys)[T]) {
    load_chunk<T>(p, w, dl, dys);
    load_u<T>(p, w, uu);
    const float Dv = w.on ? p.D[w.e] : 0.0f;
    float dD = 0.0f;
#pragma unroll
    for (int t = 0; t < T; ++t) {
        du[t] = dys[t] * Dv;
        dd[t] = 0.0f;
        ys[t] = Dv * uu[t];
        dD = fmaf(dys[t], uu[t], dD);
    }
    return dD;
}

// The per-step outputs of pass 3: dz, du and d(dt) (the loads of z, dy and dt first, all at once).
template <int T>
__device__ __forceinline__ void store_chunk(const BwdParams& p, const WarpTask& w, const float (&ys)[T],
                                            const float (&du)[T], const float (&dd)[T]) {
    const int e = clamped_channel(p, w);
    const float bias = p.dt_bias[e];
    float raw_dt[T], raw_z[T], raw_dy[T];
    load_raw<T>(p, w, e, raw_dt, raw_z, raw_dy);
    if (!w.on) return;
#pragma unroll
    for (int t = 0; t < T; ++t) {
        if (t >= w.nt) break;
        const int64_t r = w.row0 + t;
        const float zz = raw_z[t];
        const float sz = sigmoid(zz);
        p.dz[r * p.dz_stride + w.e] = raw_dy[t] * ys[t] * sz * fmaf(zz, 1.0f - sz, 1.0f);
        p.du[r * p.du_stride + w.e] = du[t];
        p.ddt[r * p.ddt_stride + w.e] = dd[t] * sigmoid(raw_dt[t] + bias);
    }
}

// Pass 1: the chunk's adjoint from a zero carry, back to its start, times a_start; and ΣΔ.
// c_at(t, n) is C_t[n], zero past the chunk's end: from global memory or from a staged copy.
template <int T, class CAt>
__device__ __forceinline__ void local_pass(const BwdParams& p, const WarpTask& w, CAt c_at) {
    float dl[T], dys[T];
    load_chunk<T>(p, w, dl, dys);
    if (!w.on) return;  // nothing below talks across lanes
    float sdt = 0.0f;
#pragma unroll
    for (int t = 0; t < T; ++t) sdt += dl[t];
    const int64_t bc = int64_t(w.b) * p.nc + w.c;
    p.sum_dt[bc * p.E + w.e] = sdt;
    for (int n = 0; n < p.N; ++n) {
        const float a2 = p.A2[w.e * p.N + n];
        float g = 0.0f;
#pragma unroll
        for (int t = T - 1; t >= 0; --t) {
            g = fmaf(c_at(t, n), dys[t], g);
            g *= ex2(dl[t] * a2);
        }
        p.carry[(bc * p.N + n) * p.E + w.e] = g;
    }
}

template <int T>
__global__ void __launch_bounds__(kThreads) bwd_local(const BwdParams p) {
    WarpTask w;
    if (!warp_task<T>(p, w)) return;
    local_pass<T>(p, w, [&](int t, int n) { return t < w.nt ? p.Cm[(w.row0 + t) * p.bc_stride + n] : 0.0f; });
}

// Pass 2: the carries, from the last chunk to the first, in two levels like the forward's
// pass 2 (one chain through nc chunks would leave a batch-1 sequence of 2^20 steps with 65536
// dependent steps on B·N·E threads): the chunks are cut into G groups of S.
//   2a  every (b, group, n, e): the group's chunks folded from a zero carry, last first:
//       F = local(c) + exp2(A2·ΣΔ_c)·F, and the group's ΣΔ.
//   2b  every (b, n, e): the groups, last first: the carry into group g's last chunk is
//       X_g = F_{g+1} + exp2(A2·ΣΔ_{g+1})·X_{g+1}, X_{G-1} = 0 (no gradient after the end).
//   2c  every (b, group, n, e): the group's chunks again from X_g: each chunk's slot gets the
//       carry into it, in place of its local adjoint.
// Each chain is fold_chain (scan_util.cuh), which loads four items ahead of its arithmetic.

// 2a and 2c, thread g's (b, group, n, e): the state's A2, the group's chunks [c0, c1), the
// last one's index b·nc + c1 - 1 and the stride between chunk states.
struct GroupChunks {
    int n, e;
    float a2;
    int c0, c1;
    int64_t last, stride;
};
__device__ __forceinline__ GroupChunks group_chunks(const BwdParams& p, int64_t g) {
    const auto [b, gi, n, e] = group_cell(g, p.E, p.N, p.G);
    const int c0 = gi * p.S, c1 = min(c0 + p.S, p.nc);
    return {n, e, p.A2[e * p.N + n], c0, c1, int64_t(b) * p.nc + c1 - 1, int64_t(p.N) * p.E};
}

__global__ void __launch_bounds__(256) bwd_carry_within_groups(const BwdParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.G * p.N * p.E) return;
    const auto [n, e, a2, c0, c1, last, stride] = group_chunks(p, g);
    // the group's chunks, last first: local adjoints c·N·E apart, ΣΔ c·E
    float total_dt = 0.0f;
    p.group_carry[g] = fold_chain<false>(0.0f, c1 - c0, a2, p.carry + (last * p.N + n) * p.E + e, -stride,
                                         p.sum_dt + last * p.E + e, -int64_t(p.E), &total_dt);  // [B][G][N][E]: index g
    p.group_dt[g] = total_dt;
}

__global__ void __launch_bounds__(256) bwd_carry_groups_in_sequence(const BwdParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.N * p.E) return;
    const int e = int(g % p.E);
    const int n = int((g / p.E) % p.N);
    const int b = int(g / (int64_t(p.E) * p.N));
    const float a2 = p.A2[e * p.N + n];
    const int64_t stride = int64_t(p.N) * p.E;  // from one group to the next
    // the groups, last first, from a zero carry; each slot gets the carry into its group's last chunk
    const int64_t last = ((int64_t(b) * p.G + p.G - 1) * p.N + n) * p.E + e;
    fold_chain<true>(0.0f, p.G, a2, p.group_carry + last, -stride, p.group_dt + last, -stride);
}

__global__ void __launch_bounds__(256) bwd_carry_chunks_in_groups(const BwdParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.G * p.N * p.E) return;
    const auto [n, e, a2, c0, c1, last, stride] = group_chunks(p, g);
    // the group's chunks again, last first, from the carry into the group
    fold_chain<true>(p.group_carry[g], c1 - c0, a2, p.carry + (last * p.N + n) * p.E + e, -stride,
                     p.sum_dt + last * p.E + e, -int64_t(p.E));
}

// Sums v[q] over the 32 lanes for each of the Q values; lane l ends with the total of value
// l mod Q (in v[0]). Rounds of width >= Q add whole arrays; below, each lane keeps one half
// (the upper one when its bit of that round is set) and adds its partner's copy of it. The
// rounds are a compile-time recursion, so every index is a constant and v stays in registers
// (a run-time loop over K put v in local memory).
template <int Q, int K = 16>
__device__ __forceinline__ float transpose_reduce(float (&v)[Q], int lane) {
    if constexpr (K >= Q) {
#pragma unroll
        for (int j = 0; j < Q; ++j) v[j] += __shfl_xor_sync(0xffffffffu, v[j], K);
    } else {
        const bool up = (lane & K) != 0;
#pragma unroll
        for (int j = 0; j < K; ++j) {
            const float send = up ? v[j] : v[j + K];
            const float keep = up ? v[j + K] : v[j];
            v[j] = keep + __shfl_xor_sync(0xffffffffu, send, K);
        }
    }
    if constexpr (K > 1) return transpose_reduce<Q, K / 2>(v, lane);
    else return v[0];
}

// Pass 3: states forward from the chunk's start, the adjoint backward from its carry, and
// every gradient (the file comment lists them).
template <int T>
__global__ void __launch_bounds__(kThreads) bwd_chunks(const BwdParams p) {
    static_assert(T == 8 || T == 16, "the transposing reduction takes 16 or 32 values per lane");
    WarpTask w;
    if (!warp_task<T>(p, w)) return;
    float dl[T], dys[T], uu[T], du[T], dd[T], ys[T];
    const float dD = begin_chunk<T>(p, w, dl, dys, uu, du, dd, ys);
    const int64_t bc = int64_t(w.b) * p.nc + w.c;
    const int64_t rows = int64_t(p.B) * p.L;
    for (int n = 0; n < p.N; ++n) {
        const float a2 = w.on ? p.A2[w.e * p.N + n] : 0.0f;
        const float A = a2 * kLn2;
        const int64_t slot = (bc * p.N + n) * p.E + w.e;
        float h = w.on ? p.chunk_start[slot] : 0.0f;
        float hp[T], aa[T], red[2 * T];
#pragma unroll
        for (int t = 0; t < T; ++t) {
            const int64_t r = (w.row0 + t) * p.bc_stride + n;
            const float bt = t < w.nt ? p.Bm[r] : 0.0f;
            const float ct = t < w.nt ? p.Cm[r] : 0.0f;
            aa[t] = ex2(dl[t] * a2);
            hp[t] = h;
            h = fmaf(aa[t], h, dl[t] * uu[t] * bt);
            ys[t] = fmaf(ct, h, ys[t]);
            red[T + t] = dys[t] * h;  // dC_t, this channel's share
        }
        float g = w.on ? p.carry[slot] : 0.0f;
        float dA = 0.0f;
#pragma unroll
        for (int t = T - 1; t >= 0; --t) {
            const int64_t r = (w.row0 + t) * p.bc_stride + n;
            const float bt = t < w.nt ? p.Bm[r] : 0.0f;
            const float ct = t < w.nt ? p.Cm[r] : 0.0f;
            g = fmaf(ct, dys[t], g);
            const float gdl = g * dl[t];
            red[t] = gdl * uu[t];  // dB_t, this channel's share
            du[t] = fmaf(gdl, bt, du[t]);
            const float gah = g * aa[t] * hp[t];
            dd[t] = fmaf(A, gah, fmaf(g * bt, uu[t], dd[t]));
            dA = fmaf(gah, dl[t], dA);
            g *= aa[t];
        }
        if (w.on) p.dA_part[slot] = dA;
        const float total = transpose_reduce<2 * T>(red, w.lane);
        const int q = w.lane & (2 * T - 1);
        const int t = q < T ? q : q - T;
        if (w.lane < 2 * T && t < w.nt)
            p.bc_part[(int64_t(w.slice) * rows + w.row0 + t) * 2 * p.N + (q < T ? 0 : p.N) + n] = total;
    }
    if (w.on) p.dD_part[bc * p.E + w.e] = dD;
    store_chunk<T>(p, w, ys, du, dd);
}

// ---- variant 2: B_t / C_t staged in shared memory ------------------------------------------
//
// The same passes 1 and 3 with the chunk's B and C rows copied once into the warp's shared
// memory (coalesced), so the loops over states read them as broadcasts instead of as global
// loads in the dependent chain; pass 3 also keeps fewer values per state (the decays are
// recomputed in the backward sweep, dC is formed there), and collects the warp's dB / dC totals
// in shared memory to write them as one contiguous tile of the chunk's rows.

// Floats of shared memory per warp: B and C of the chunk ([T][2N]); pass 3 adds its totals
// ([T][2N]) and each lane's A2, start state and carry of every state ([3][N][32]).
template <int T>
__host__ __device__ constexpr int64_t staged_floats(int N, bool pass3) {
    return int64_t(T) * 2 * N * (pass3 ? 2 : 1) + (pass3 ? 3 * 32 * int64_t(N) : 0);
}

// Copies rows row0 .. row0 + nt - 1 of B and C (states 0..N-1) into bc[t][2N] (B at n, C at
// N + n), zeros past nt. Every lane of the warp takes part.
template <int T>
__device__ __forceinline__ void stage_bc(const BwdParams& p, const WarpTask& w, const int N, float* bc) {
    const int width = 2 * N;
#pragma unroll 8
    for (int i = w.lane; i < T * width; i += 32) {
        const int t = i / width, q = i - t * width;
        const int64_t r = clamped_row(w, t) * p.bc_stride;
        const float v = *(q < N ? p.Bm + r + q : p.Cm + r + q - N);
        bc[i] = t < w.nt ? v : 0.0f;
    }
    __syncwarp();
}

template <int T>
__global__ void __launch_bounds__(kThreads) bwd_local_staged(const BwdParams p) {
    extern __shared__ float smem[];
    WarpTask w;
    if (!warp_task<T>(p, w)) return;
    const int N = p.N;
    float* bc = smem + int64_t(threadIdx.x >> 5) * staged_floats<T>(N, false);
    stage_bc<T>(p, w, N, bc);
    const int width = 2 * N;
    local_pass<T>(p, w, [=](int t, int n) { return bc[t * width + N + n]; });
}

// Blocks per multiprocessor the registers must allow: chunk 8 fits four in 128 registers
// without spilling; chunk 16 needs about 215, so two.
template <int T>
constexpr int staged_min_blocks() { return T == 8 ? 4 : 2; }

template <int T>
__global__ void __launch_bounds__(kThreads, staged_min_blocks<T>()) bwd_chunks_staged(const BwdParams p) {
    static_assert(T == 8 || T == 16, "the transposing reduction takes 16 or 32 values per lane");
    extern __shared__ float smem[];
    WarpTask w;
    if (!warp_task<T>(p, w)) return;
    const int N = p.N;
    const int width = 2 * N;
    float* bc = smem + int64_t(threadIdx.x >> 5) * staged_floats<T>(N, true);
    float* totals = bc + T * width;  // [T][2N]: dB_t (n), dC_t (N + n) of the warp's channels
    stage_bc<T>(p, w, N, bc);
    float dl[T], dys[T], uu[T], du[T], dd[T], ys[T];
    const float dD = begin_chunk<T>(p, w, dl, dys, uu, du, dd, ys);
    const int64_t bc_i = int64_t(w.b) * p.nc + w.c;
    // Every state's A2, start state and carry for this lane, loaded at once into the warp's
    // shared memory ([3][N][32]) before the loop over states: loaded inside the loop, each
    // state waited for memory first (the chunk arrays are far larger than L2), which left the
    // warps stalled on loads most of the time (ncu: 55–57% of the stall cycles).
    float* mine = totals + T * width;
    const int64_t slot0 = bc_i * N * p.E + w.e;
    if (w.on) {
#pragma unroll 4
        for (int n = 0; n < N; ++n) {
            mine[n * 32 + w.lane] = p.A2[w.e * N + n];
            mine[(N + n) * 32 + w.lane] = p.chunk_start[slot0 + int64_t(n) * p.E];
            mine[(2 * N + n) * 32 + w.lane] = p.carry[slot0 + int64_t(n) * p.E];
        }
    }
    for (int n = 0; n < N; ++n) {
        const float a2 = w.on ? mine[n * 32 + w.lane] : 0.0f;
        const float A = a2 * kLn2;
        const int64_t slot = slot0 + int64_t(n) * p.E;
        float h = w.on ? mine[(N + n) * 32 + w.lane] : 0.0f;
        float g = w.on ? mine[(2 * N + n) * 32 + w.lane] : 0.0f;
        float hp[T], red[2 * T];
#pragma unroll
        for (int t = 0; t < T; ++t) {
            hp[t] = h;
            h = fmaf(ex2(dl[t] * a2), h, dl[t] * uu[t] * bc[t * width + n]);
            ys[t] = fmaf(bc[t * width + N + n], h, ys[t]);
        }
        float dA = 0.0f;
#pragma unroll
        for (int t = T - 1; t >= 0; --t) {
            const float bt = bc[t * width + n];
            red[T + t] = dys[t] * h;  // dC_t, this channel's share (h is the state after step t)
            g = fmaf(bc[t * width + N + n], dys[t], g);
            const float at = ex2(dl[t] * a2);
            const float gdl = g * dl[t];
            red[t] = gdl * uu[t];  // dB_t, this channel's share
            du[t] = fmaf(gdl, bt, du[t]);
            const float gah = g * at * hp[t];
            dd[t] = fmaf(A, gah, fmaf(g * bt, uu[t], dd[t]));
            dA = fmaf(gah, dl[t], dA);
            g *= at;
            h = hp[t];
        }
        if (w.on) p.dA_part[slot] = dA;
        const float total = transpose_reduce<2 * T>(red, w.lane);
        const int q = w.lane & (2 * T - 1);
        if (w.lane < 2 * T) totals[(q < T ? q : q - T) * width + (q < T ? 0 : N) + n] = total;
    }
    __syncwarp();
    // The warp's totals: rows row0 .. row0 + nt - 1 of this slice's part, contiguous.
    float* part = p.bc_part + (int64_t(w.slice) * p.B * p.L + w.row0) * width;
    for (int i = w.lane; i < w.nt * width; i += 32) part[i] = totals[i];
    if (w.on) p.dD_part[bc_i * p.E + w.e] = dD;
    store_chunk<T>(p, w, ys, du, dd);
}

// ---- variant 3: the chunk's steps outside, the states inside ---------------------------------
//
// Variants 1 and 2 run a lane's chunk once per state: a forward chain of T steps, a backward
// chain of T steps and a 31-shuffle reduction, one state after the other, so a warp has one
// dependent chain at a time to issue from (ncu on variant 2: 0.3 instructions per cycle per
// scheduler, two warps per scheduler). Here two lanes share a channel, each owning NS of its
// states (16 channels per warp), and the chunk is swept once forward and once backward with all
// NS states in every step: NS independent chains per step. The states before each step, which
// the backward sweep needs, wait in the warp's shared memory ([T][NS/4][32] float4: 16 KB for
// chunk 16 and NS 8); the decays are computed in both sweeps (one exp each, as before).
//   forward   s_t = a_t·s_{t-1} + Δ_t·u_t·B_t; y_t = C_t·s_t (+ D·u_t), the two lanes' halves added
//   backward  g_t = C_t·ȳ_t + a_{t+1}·g_{t+1}; per state dA += g·a·s_{t-1}·Δ; over the lane's
//             states S1 = Σ g·B and S2 = Σ A·g·a·s_{t-1} (the two lanes' halves added), so
//             du_t = Δ·S1 + ȳ·D and dΔ_t = u·S1 + S2; the shares of dB_t (g·Δ·u) and dC_t
//             (ȳ·s_t) summed over the warp's 16 channels by a transposing reduction
// A block is kSplitWarps warps on consecutive channels of one chunk: it stages the chunk's B / C
// rows once, and adds its warps' dB / dC totals in shared memory in warp order before writing
// one partial per row (so the sums are the same bits on every run). Per-step values that do
// not depend on the state (Δ, ȳ, u) are worked out by one lane of the channel each (lane k
// takes the steps t = 2m + k, softplus and SiLU as the forward scan computes them) into the
// warp's shared memory, where both sweeps read them; the epilogue (dz, du, dΔ) is split the
// same way. Two warps per block, so that five blocks (ten warps) fit a multiprocessor's shared
// memory at chunk 16 and the registers need not spill.
constexpr int kSplitWarps = 2;
constexpr int kSplitChannels = kSplitWarps * 16;  // channels per block

template <int T, int NS>
struct SplitLayout {
    static constexpr int NP = 2 * NS;             // states per channel, padded (N <= NP)
    static constexpr int kBc = T * 2 * NP;        // the chunk's B, C rows [T][2·NP]: B at n, C at NP + n
    static constexpr int kHist = T * NS * 32;     // per warp: the states before each step
    static constexpr int kTot = T * 2 * NP;       // per warp: its dB / dC totals [T][2·NP]
    static constexpr int kStep = 3 * T * 16;      // per warp: Δ, ȳ, u [3][T][16 channels]
    static constexpr int kWarpFloats = kHist + kTot + kStep;
    static constexpr int kFloats = kBc + kSplitWarps * kWarpFloats;
    static constexpr int kMinBlocks = T == 16 && NS == 8 ? 5 : 6;  // what the shared memory allows
    static_assert(NS % 4 == 0, "states are kept four to a float4");
    static_assert(T % 2 == 0, "the two lanes of a channel take alternate steps");
};

// Where a block of the split variant works: sequence b, chunk cidx, channels from e - ch; the
// lane's channel e (clamped: ec), its half k of the states, the chunk's valid steps nt.
struct SplitTask {
    int64_t bcix, row0;  // b·nc + chunk; the row of the chunk's first step
    int grp, nt, ch, k, e, ec;
    bool on;
};
template <int T>
__device__ __forceinline__ SplitTask split_task(const BwdParams& p) {
    SplitTask w;
    const int groups = (p.E + kSplitChannels - 1) / kSplitChannels;
    w.grp = int(blockIdx.x % unsigned(groups));
    w.bcix = int64_t(blockIdx.x / unsigned(groups));
    const int cidx = int(w.bcix % p.nc), b = int(w.bcix / p.nc);
    const int64_t t0 = int64_t(cidx) * T;
    w.nt = int(min(int64_t(T), p.L - t0));
    w.row0 = int64_t(b) * p.L + t0;
    const int lane = int(threadIdx.x) & 31;
    w.ch = lane & 15;
    w.k = lane >> 4;
    w.e = w.grp * kSplitChannels + (int(threadIdx.x) >> 5) * 16 + w.ch;
    w.on = w.e < p.E;
    w.ec = min(w.e, p.E - 1);
    return w;
}

// The chunk's rows of B (if WithB) and C into rows[T][W]: B at n, C at W - NP + n (W = NP with
// C alone, 2·NP with both), from clamped places (every load in flight at once), zero past the
// chunk's end and past N. All threads of the block take part.
template <int T, int NP, bool WithB>
__device__ __forceinline__ void split_stage_rows(const BwdParams& p, const SplitTask& w, float* rows) {
    constexpr int W = WithB ? 2 * NP : NP;
    for (int i = int(threadIdx.x); i < T * W; i += kSplitWarps * 32) {
        const int t = i / W, q = i - t * W;
        const bool is_c = !WithB || q >= NP;
        const int n = is_c ? q - (W - NP) : q;
        const int64_t r = (w.row0 + min(t, w.nt - 1)) * p.bc_stride + min(n, p.N - 1);
        const float v = is_c ? p.Cm[r] : p.Bm[r];
        rows[i] = t < w.nt && n < p.N ? v : 0.0f;
    }
}

// Δ and ȳ = dy·SiLU(z) (and u, if s_u) of the lane's channel into the warp's [T][16] arrays:
// lane k works out the steps t = 2m + k (softplus and SiLU as the forward scan computes them),
// zero past the chunk's end and off the channels.
template <int T>
__device__ __forceinline__ void split_stage_steps(const BwdParams& p, const SplitTask& w, float* s_dl, float* s_dy,
                                                  float* s_u) {
    constexpr int H = T / 2;
    const float bias = p.dt_bias[w.ec];
    float raw_dt[H], raw_z[H], raw_dy[H], raw_u[H];
#pragma unroll
    for (int m = 0; m < H; ++m) {
        const int64_t r = w.row0 + min(2 * m + w.k, w.nt - 1);
        raw_dt[m] = p.dt[r * p.dt_stride + w.ec];
        raw_z[m] = p.z[r * p.z_stride + w.ec];
        raw_dy[m] = p.dy[r * p.dy_stride + w.ec];
        raw_u[m] = s_u ? p.u[r * p.u_stride + w.ec] : 0.0f;
    }
#pragma unroll
    for (int m = 0; m < H; ++m) {
        const int t = 2 * m + w.k;
        const bool live = w.on && t < w.nt;
        s_dl[t * 16 + w.ch] = live ? softplus_ex2(raw_dt[m] + bias) : 0.0f;
        s_dy[t * 16 + w.ch] = live ? raw_dy[m] * raw_z[m] * sigmoid_ex2(raw_z[m]) : 0.0f;
        if (s_u) s_u[t * 16 + w.ch] = live ? raw_u[m] : 0.0f;
    }
}

// Pass 1 of variant 3: the chunk's adjoint from a zero carry, back to its start, times a_start
// (as bwd_local), and ΣΔ; lanes as in bwd_chunks_split, so every step runs NS independent
// chains instead of one state's chain after another.
template <int T, int NS>
__global__ void __launch_bounds__(kSplitWarps * 32) bwd_local_split(const BwdParams p) {
    constexpr int NP = 2 * NS, NQ = NS / 4;
    __shared__ __align__(16) float c_rows[T * NP];
    __shared__ float steps[kSplitWarps][2][T * 16];
    const SplitTask w = split_task<T>(p);
    const int warp = int(threadIdx.x) >> 5;
    float* const s_dl = steps[warp][0];
    float* const s_dy = steps[warp][1];
    split_stage_rows<T, NP, false>(p, w, c_rows);
    split_stage_steps<T>(p, w, s_dl, s_dy, nullptr);
    const int N = p.N;
    float a2[NS], G[NS];
#pragma unroll
    for (int i = 0; i < NS; ++i) {
        const float va = p.A2[int64_t(w.ec) * N + min(w.k * NS + i, N - 1)];
        a2[i] = w.on && w.k * NS + i < N ? va : 0.0f;
        G[i] = 0.0f;
    }
    __syncthreads();
    float sdt = 0.0f;
#pragma unroll
    for (int t = T - 1; t >= 0; --t) {
        const float4* const Cq = reinterpret_cast<const float4*>(c_rows + t * NP + w.k * NS);
        const float d = s_dl[t * 16 + w.ch], cy = s_dy[t * 16 + w.ch];
        sdt += d;
#pragma unroll
        for (int q = 0; q < NQ; ++q) {
            const float4 cq = Cq[q];
            const float cc[4] = {cq.x, cq.y, cq.z, cq.w};
#pragma unroll
            for (int j = 0; j < 4; ++j) G[4 * q + j] = ex2(d * a2[4 * q + j]) * fmaf(cc[j], cy, G[4 * q + j]);
        }
    }
    if (!w.on) return;
    if (w.k == 0) p.sum_dt[w.bcix * p.E + w.e] = sdt;
#pragma unroll
    for (int i = 0; i < NS; ++i)
        if (w.k * NS + i < N) p.carry[(w.bcix * N + w.k * NS + i) * p.E + w.e] = G[i];
}

template <int T, int NS>
__global__ void __launch_bounds__(kSplitWarps * 32, SplitLayout<T, NS>::kMinBlocks)
    bwd_chunks_split(const BwdParams p) {
    using Lay = SplitLayout<T, NS>;
    constexpr int NP = Lay::NP, NQ = NS / 4, H = T / 2;
    extern __shared__ float4 split_smem[];
    float* const bc = reinterpret_cast<float*>(split_smem);
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    float* const wbase = bc + Lay::kBc + warp * Lay::kWarpFloats;
    float4* const hist = reinterpret_cast<float4*>(wbase);  // [T][NQ][32]
    float* const tot = wbase + Lay::kHist;                   // [T][2·NP]
    float* const s_dl = tot + Lay::kTot;                     // [T][16]
    float* const s_dy = s_dl + T * 16;                       // [T][16] ȳ = dy·SiLU(z)
    float* const s_u = s_dy + T * 16;                        // [T][16]

    const SplitTask w = split_task<T>(p);
    const int64_t bcix = w.bcix, row0 = w.row0;
    const int grp = w.grp, nt = w.nt, ch = w.ch, k = w.k, e = w.e, ec = w.ec;
    const bool on = w.on;
    const int N = p.N;
    split_stage_rows<T, NP, true>(p, w, bc);
    split_stage_steps<T>(p, w, s_dl, s_dy, s_u);
    const float bias = p.dt_bias[ec];
    const float Dv = on ? p.D[ec] : 0.0f;

    // This lane's states n = k·NS + i: A2, the chunk's start state and the carry into it.
    float a2[NS], h[NS], G[NS], dA[NS];
    const int64_t slot0 = bcix * N * int64_t(p.E) + ec;
#pragma unroll
    for (int i = 0; i < NS; ++i) {
        const int n = min(k * NS + i, N - 1);
        const bool live = on && k * NS + i < N;
        const float va = p.A2[int64_t(ec) * N + n];
        const float vh = p.chunk_start[slot0 + int64_t(n) * p.E];
        const float vg = p.carry[slot0 + int64_t(n) * p.E];
        a2[i] = live ? va : 0.0f;
        h[i] = live ? vh : 0.0f;
        G[i] = live ? vg : 0.0f;
        dA[i] = 0.0f;
    }
    __syncthreads();  // B / C and the per-step values staged

    // Forward: the states of every step, the states before each step kept for the backward.
    float ysh[H];  // y_t = C·s_t + D·u_t of this lane's epilogue steps t = 2m + k
#pragma unroll
    for (int t = 0; t < T; ++t) {
        const float4* const Bq = reinterpret_cast<const float4*>(bc + t * 2 * NP + k * NS);
        const float4* const Cq = reinterpret_cast<const float4*>(bc + t * 2 * NP + NP + k * NS);
        const float d = s_dl[t * 16 + ch], ut = s_u[t * 16 + ch], xu = d * ut;
        float y0 = 0.0f, y1 = 0.0f;
#pragma unroll
        for (int q = 0; q < NQ; ++q) {
            hist[(t * NQ + q) * 32 + lane] = make_float4(h[4 * q], h[4 * q + 1], h[4 * q + 2], h[4 * q + 3]);
            const float4 bq = Bq[q], cq = Cq[q];
            h[4 * q + 0] = fmaf(ex2(d * a2[4 * q + 0]), h[4 * q + 0], xu * bq.x);
            h[4 * q + 1] = fmaf(ex2(d * a2[4 * q + 1]), h[4 * q + 1], xu * bq.y);
            h[4 * q + 2] = fmaf(ex2(d * a2[4 * q + 2]), h[4 * q + 2], xu * bq.z);
            h[4 * q + 3] = fmaf(ex2(d * a2[4 * q + 3]), h[4 * q + 3], xu * bq.w);
            y0 = fmaf(cq.x, h[4 * q + 0], y0);
            y1 = fmaf(cq.y, h[4 * q + 1], y1);
            y0 = fmaf(cq.z, h[4 * q + 2], y0);
            y1 = fmaf(cq.w, h[4 * q + 3], y1);
        }
        float yp = y0 + y1;
        yp += __shfl_xor_sync(0xffffffffu, yp, 16);
        const float yt = fmaf(Dv, ut, yp);
        if ((t & 1) == 0) ysh[t >> 1] = k == 0 ? yt : 0.0f;
        else ysh[t >> 1] = k == 1 ? yt : ysh[t >> 1];
    }
    __syncwarp();  // hist written by every lane

    // Backward: the adjoint from the carry, every gradient.
    float duh[H], ddh[H];
    float dD = 0.0f;
#pragma unroll
    for (int t = T - 1; t >= 0; --t) {
        const float4* const Bq = reinterpret_cast<const float4*>(bc + t * 2 * NP + k * NS);
        const float4* const Cq = reinterpret_cast<const float4*>(bc + t * 2 * NP + NP + k * NS);
        const float d = s_dl[t * 16 + ch], cy = s_dy[t * 16 + ch], ut = s_u[t * 16 + ch], xu = d * ut;
        dD = fmaf(cy, ut, dD);
        float S1a = 0.0f, S1b = 0.0f, S2a = 0.0f, S2b = 0.0f;
        float sh[2 * NS];  // shares of dB_t (i) and dC_t (NS + i) of this lane's states
#pragma unroll
        for (int q = 0; q < NQ; ++q) {
            const float4 hv = hist[(t * NQ + q) * 32 + lane];
            const float hb[4] = {hv.x, hv.y, hv.z, hv.w};
            const float4 bq = Bq[q], cq = Cq[q];
            const float bb[4] = {bq.x, bq.y, bq.z, bq.w};
            const float cc[4] = {cq.x, cq.y, cq.z, cq.w};
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int i = 4 * q + j;
                const float g = fmaf(cc[j], cy, G[i]);
                const float a = ex2(d * a2[i]);
                const float gah = g * (a * hb[j]);
                dA[i] = fmaf(gah, d, dA[i]);
                if (j & 1) {
                    S2b = fmaf(gah, a2[i], S2b);
                    S1b = fmaf(g, bb[j], S1b);
                } else {
                    S2a = fmaf(gah, a2[i], S2a);
                    S1a = fmaf(g, bb[j], S1a);
                }
                sh[i] = g * xu;
                sh[NS + i] = cy * h[i];
                G[i] = a * g;
                h[i] = hb[j];
            }
        }
        // dB_t, dC_t: lane ch of each half ends with share ch summed over the half's 16 channels
        const float total = transpose_reduce<2 * NS, 8>(sh, lane);
        if (ch < 2 * NS) {
            const int n = k * NS + (ch < NS ? ch : ch - NS);
            tot[t * 2 * NP + (ch < NS ? 0 : NP) + n] = total;
        }
        float S1 = S1a + S1b, S2 = S2a + S2b;
        S1 += __shfl_xor_sync(0xffffffffu, S1, 16);
        S2 += __shfl_xor_sync(0xffffffffu, S2, 16);
        const float dut = fmaf(d, S1, cy * Dv);
        const float ddt = fmaf(ut, S1, S2 * kLn2);
        if ((t & 1) == 1) {
            duh[t >> 1] = k == 1 ? dut : 0.0f;
            ddh[t >> 1] = k == 1 ? ddt : 0.0f;
        } else {
            duh[t >> 1] = k == 0 ? dut : duh[t >> 1];
            ddh[t >> 1] = k == 0 ? ddt : ddh[t >> 1];
        }
    }

    // Per state: dA over the chunk; per channel: dD.
    if (on) {
#pragma unroll
        for (int i = 0; i < NS; ++i)
            if (k * NS + i < N) p.dA_part[slot0 + int64_t(k * NS + i) * p.E] = dA[i];
        if (k == 0) p.dD_part[bcix * p.E + e] = dD;
    }

    // Epilogue, lane k for the steps 2m + k: dz, du, d(dt).
    {
        float raw_dt[H], raw_z[H], raw_dy[H];
#pragma unroll
        for (int m = 0; m < H; ++m) {
            const int64_t r = row0 + min(2 * m + k, nt - 1);
            raw_dt[m] = p.dt[r * p.dt_stride + ec];
            raw_z[m] = p.z[r * p.z_stride + ec];
            raw_dy[m] = p.dy[r * p.dy_stride + ec];
        }
        if (on)
#pragma unroll
            for (int m = 0; m < H; ++m) {
                const int t = 2 * m + k;
                if (t < nt) {
                    const int64_t r = row0 + t;
                    const float zz = raw_z[m];
                    const float sz = sigmoid_ex2(zz);
                    p.dz[r * p.dz_stride + e] = raw_dy[m] * ysh[m] * sz * fmaf(zz, 1.0f - sz, 1.0f);
                    p.du[r * p.du_stride + e] = duh[m];
                    p.ddt[r * p.ddt_stride + e] = ddh[m] * sigmoid_ex2(raw_dt[m] + bias);
                }
            }
    }

    // The block's dB / dC: its warps' totals added in warp order, one partial per row.
    __syncthreads();
    const float* const tot0 = bc + Lay::kBc + Lay::kHist;
    float* const part = p.bc_part + (int64_t(grp) * p.B * p.L + row0) * 2 * N;
    for (int i = int(threadIdx.x); i < nt * 2 * N; i += kSplitWarps * 32) {
        const int t = i / (2 * N), j = i - t * (2 * N);
        const int src = t * 2 * NP + (j < N ? j : NP + j - N);
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < kSplitWarps; ++w) s += tot0[w * Lay::kWarpFloats + src];
        part[i] = s;
    }
}

// How passes 1 and 3 run: variant 3 (split), variant 2 (staged) or variant 1, and their grids.
struct ChunkPassPlan {
    bool split, staged;
    unsigned blocks, split_blocks;
    int N;
};

// Pass 1 (Local) or pass 3 of the planned variant, for chunk length T.
template <bool Local, int T>
void launch_chunk_pass(const BwdParams& p, const ChunkPassPlan& plan, cudaStream_t stream) {
    if (plan.split) {
        auto run = [&](auto ns) {
            constexpr int NS = decltype(ns)::value;
            if constexpr (Local) {
                bwd_local_split<T, NS><<<plan.split_blocks, kSplitWarps * 32, 0, stream>>>(p);
            } else {
                constexpr size_t bytes = size_t(SplitLayout<T, NS>::kFloats) * sizeof(float);
                if constexpr (bytes > 48 * 1024)
                    MW_CUDA_CHECK(cudaFuncSetAttribute(bwd_chunks_split<T, NS>,
                                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
                bwd_chunks_split<T, NS><<<plan.split_blocks, kSplitWarps * 32, bytes, stream>>>(p);
            }
        };
        if (plan.N <= 8) run(std::integral_constant<int, 4>{});
        else run(std::integral_constant<int, 8>{});
    } else if (plan.staged) {
        const size_t bytes = size_t(kThreads / 32) * size_t(staged_floats<T>(plan.N, !Local)) * sizeof(float);
        if constexpr (Local) bwd_local_staged<T><<<plan.blocks, kThreads, bytes, stream>>>(p);
        else bwd_chunks_staged<T><<<plan.blocks, kThreads, bytes, stream>>>(p);
    } else {
        if constexpr (Local) bwd_local<T><<<plan.blocks, kThreads, 0, stream>>>(p);
        else bwd_chunks<T><<<plan.blocks, kThreads, 0, stream>>>(p);
    }
    MW_CUDA_CHECK_LAUNCH();
}

template <bool Local>
void launch_chunk_pass(const BwdParams& p, int chunk, const ChunkPassPlan& plan, cudaStream_t stream) {
    if (chunk == 8) launch_chunk_pass<Local, 8>(p, plan, stream);
    else launch_chunk_pass<Local, 16>(p, plan, stream);
}

// dB, dC: the slices' partial sums, in slice order.
__global__ void bwd_bc_sum(const BwdParams p, float* __restrict__ dB, float* __restrict__ dC,
                           int64_t dbc_stride) {
    const int64_t rows = int64_t(p.B) * p.L;
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= rows * 2 * p.N) return;
    const int j = int(g % (2 * p.N));
    const int64_t r = g / (2 * p.N);
    float s = 0.0f;
    for (int k = 0; k < p.bc_slices; ++k) s += p.bc_part[int64_t(k) * rows * 2 * p.N + g];
    if (j < p.N) dB[r * dbc_stride + j] = s;
    else dC[r * dbc_stride + j - p.N] = s;
}

// dA_log[e][n] += (Σ_chunks dA)[n][e] · A[e][n]
__global__ void bwd_dA_log(const float* __restrict__ dA_nE, const float* __restrict__ A2,
                           float* __restrict__ dA_log, int E, int N) {
    const int g = int(blockIdx.x * blockDim.x + threadIdx.x);
    if (g >= E * N) return;
    const int n = g % N, e = g / N;
    dA_log[g] += dA_nE[int64_t(n) * E + e] * A2[g] * kLn2;
}

// Column sums in two fixed-order stages: block (x, y) sums its column tile over rows
// y, y + Y, ... (8 row lanes, then the lanes in order) into part[y]; then part's Y rows.
constexpr int kSumRowLanes = 8;
__global__ void column_sums_stage(const float* __restrict__ in, int64_t rows, int cols, int64_t ld,
                                  float* __restrict__ out, int64_t out_ld, bool accumulate) {
    __shared__ float acc[kSumRowLanes][32];
    const int col = int(blockIdx.x) * 32 + int(threadIdx.x);
    float s = 0.0f;
    if (col < cols)
        for (int64_t r = int64_t(blockIdx.y) * kSumRowLanes + threadIdx.y; r < rows;
             r += int64_t(gridDim.y) * kSumRowLanes)
            s += in[r * ld + col];
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || col >= cols) return;
    float t = 0.0f;
    for (int k = 0; k < kSumRowLanes; ++k) t += acc[k][threadIdx.x];
    float* o = out + int64_t(blockIdx.y) * out_ld + col;
    *o = accumulate ? *o + t : t;
}

} // namespace

int64_t column_sums_scratch(int64_t rows, int cols) {
    const int64_t Y = std::min<int64_t>(128, std::max<int64_t>(1, (rows + 255) / 256));
    return Y * cols;
}

void column_sums(const float* in, int64_t rows, int cols, int64_t ld, float* out, bool accumulate,
                 float* scratch, cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    const int64_t Y = column_sums_scratch(rows, cols) / cols;
    const dim3 block(32, kSumRowLanes);
    const unsigned tiles = unsigned((cols + 31) / 32);
    if (Y == 1) {
        column_sums_stage<<<dim3(tiles, 1), block, 0, stream>>>(in, rows, cols, ld, out, cols, accumulate);
        MW_CUDA_CHECK_LAUNCH();
        return;
    }
    column_sums_stage<<<dim3(tiles, unsigned(Y)), block, 0, stream>>>(in, rows, cols, ld, scratch, cols, false);
    MW_CUDA_CHECK_LAUNCH();
    column_sums_stage<<<dim3(tiles, 1), block, 0, stream>>>(scratch, Y, cols, cols, out, cols, accumulate);
    MW_CUDA_CHECK_LAUNCH();
}

ScanBackwardSize scan_backward_workspace_size(int B, int64_t L, int E, int N, int T) {
    ScanBackwardSize s;
    if (B <= 0 || L <= 0 || E <= 0 || N <= 0 || T <= 0) return s;
    s.chunks = (L + T - 1) / T;
    int64_t S = 1, G = 1;
    scan_group_split(s.chunks, S, G);
    const int64_t bc = int64_t(B) * s.chunks;
    s.carry = bc * N * E;
    s.sum_dt = bc * E;
    s.group = 2 * int64_t(B) * G * N * E;
    s.bc_part = int64_t((E + 31) / 32) * B * L * 2 * N;
    s.dA_part = bc * N * E;
    s.dD_part = bc * E;
    s.sums = std::max(column_sums_scratch(bc, N * E), column_sums_scratch(bc, E)) + int64_t(N) * E;
    return s;
}

void selective_scan_backward(const ScanBackwardProblem& q, float* workspace, cudaStream_t stream) {
    if (q.B <= 0 || q.L < 0 || q.E <= 0 || q.N <= 0)
        throw std::invalid_argument("selective_scan_backward: sizes must be positive (B " + std::to_string(q.B) +
                                    ", L " + std::to_string(q.L) + ", E " + std::to_string(q.E) + ", N " +
                                    std::to_string(q.N) + ")");
    if (q.L == 0) return;
    if (!q.dt || !q.u || !q.z || !q.Bm || !q.Cm || !q.dy || !q.A2 || !q.D || !q.dt_bias || !q.chunk_start ||
        !q.du || !q.ddt || !q.dz || !q.dB || !q.dC || !q.dA_log || !q.dD || !workspace)
        throw std::invalid_argument("selective_scan_backward: a null pointer");
    if (q.chunk != 8 && q.chunk != 16)
        throw std::invalid_argument("selective_scan_backward: chunk " + std::to_string(q.chunk) + ", expected 8 or 16");
    if (q.variant < 1 || q.variant > 3)
        throw std::invalid_argument("selective_scan_backward: variant " + std::to_string(q.variant) +
                                    ", expected 1, 2 or 3");
    const ScanBackwardSize s = scan_backward_workspace_size(q.B, q.L, q.E, q.N, q.chunk);
    BwdParams p{};
    p.B = q.B;
    p.E = q.E;
    p.N = q.N;
    p.L = q.L;
    p.nc = int(s.chunks);
    p.slices = (q.E + 31) / 32;
    p.bc_slices = p.slices;
    int64_t S = 1, G = 1;
    scan_group_split(s.chunks, S, G);
    p.S = int(S);
    p.G = int(G);
    p.dt = q.dt;  p.dt_stride = q.dt_stride;
    p.u = q.u;    p.u_stride = q.u_stride;
    p.z = q.z;    p.z_stride = q.z_stride;
    p.Bm = q.Bm;
    p.Cm = q.Cm;  p.bc_stride = q.bc_stride;
    p.dy = q.dy;  p.dy_stride = q.dy_stride;
    p.A2 = q.A2;
    p.D = q.D;
    p.dt_bias = q.dt_bias;
    p.chunk_start = q.chunk_start;
    p.carry = workspace;
    p.sum_dt = p.carry + s.carry;
    p.group_carry = p.sum_dt + s.sum_dt;
    p.group_dt = p.group_carry + s.group / 2;
    p.bc_part = p.group_carry + s.group;
    p.dA_part = p.bc_part + s.bc_part;
    p.dD_part = p.dA_part + s.dA_part;
    float* sums = p.dD_part + s.dD_part;     // [N][E] the chunks' dA summed
    float* sums_scratch = sums + int64_t(q.N) * q.E;
    p.du = q.du;   p.du_stride = q.du_stride;
    p.ddt = q.ddt; p.ddt_stride = q.ddt_stride;
    p.dz = q.dz;   p.dz_stride = q.dz_stride;

    // Variant 3 takes d_state up to 16 (two lanes of 8 states per channel); above that it is
    // variant 2. Variant 2 stages each warp's B / C rows and state values in shared memory; past
    // the default 48 KB per block (d_state above 19 at chunk 16, above 24 at chunk 8) variant 1
    // reads them from global memory instead.
    ChunkPassPlan plan;
    plan.N = q.N;
    plan.split = q.variant == 3 && q.N <= 16;
    const int64_t staged_floats_max = q.chunk == 8 ? staged_floats<8>(q.N, true) : staged_floats<16>(q.N, true);
    plan.staged = (q.variant == 2 || (q.variant == 3 && !plan.split)) &&
                  size_t(kThreads / 32) * size_t(staged_floats_max) * sizeof(float) <= 48 * 1024;
    plan.blocks = blocks_for(int64_t(q.B) * p.nc * p.slices * 32, kThreads);
    plan.split_blocks = unsigned(int64_t(q.B) * p.nc * ((q.E + kSplitChannels - 1) / kSplitChannels));
    launch_chunk_pass<true>(p, q.chunk, plan, stream);
    const int64_t group_threads = int64_t(q.B) * p.G * q.N * q.E;
    bwd_carry_within_groups<<<blocks_for(group_threads, 256), 256, 0, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
    bwd_carry_groups_in_sequence<<<blocks_for(int64_t(q.B) * q.N * q.E, 256), 256, 0, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
    bwd_carry_chunks_in_groups<<<blocks_for(group_threads, 256), 256, 0, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
    if (plan.split) p.bc_slices = (q.E + kSplitChannels - 1) / kSplitChannels;
    launch_chunk_pass<false>(p, q.chunk, plan, stream);
    const int64_t rows = int64_t(q.B) * q.L;
    bwd_bc_sum<<<blocks_for(rows * 2 * q.N, 256), 256, 0, stream>>>(p, q.dB, q.dC, q.dbc_stride);
    MW_CUDA_CHECK_LAUNCH();
    const int64_t bcs = int64_t(q.B) * p.nc;
    column_sums(p.dA_part, bcs, q.N * q.E, int64_t(q.N) * q.E, sums, false, sums_scratch, stream);
    bwd_dA_log<<<blocks_for(int64_t(q.E) * q.N, 256), 256, 0, stream>>>(sums, q.A2, q.dA_log, q.E, q.N);
    MW_CUDA_CHECK_LAUNCH();
    column_sums(p.dD_part, bcs, q.E, q.E, q.dD, true, sums_scratch, stream);
}

} // namespace mw::kernels::cuda
