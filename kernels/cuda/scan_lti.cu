// The LTI layer's scan, forward and backward (scan_lti.cuh says what each pass computes).
//
// Layouts: the constants ā, b̄, C are [N][E] (channel fastest, so a warp's loads are
// coalesced); states, chunk starts and carries [..][N][E] per sequence, as the selective
// scan's. Every thread owns one channel e of one sequence b (and one chunk or run of chunks),
// consecutive threads consecutive channels.
#include "kernels/cuda/scan_lti.cuh"

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/scan.cuh"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mw::kernels::cuda {
namespace {

constexpr int kTile = 16;      // forward: steps per register tile
constexpr int kThreads = 128;  // chain and backward kernels
// Threads a GPU needs in flight to be full: about 2048 per multiprocessor. The automatic
// chunking aims at this many (sequence, chunk, channel) tasks.
constexpr int64_t kThreadsPerSm = 2048;

unsigned blocks_for(int64_t threads, int per_block) { return unsigned((threads + per_block - 1) / per_block); }

// The forward keeps each thread's N states in shared memory: N·threads floats, at most 48 KB.
int forward_threads(int N) { return N <= 96 ? 128 : N <= 192 ? 64 : 32; }

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// ā^k, worked out in float64 by squaring: one power per state instead of k steps.
__device__ __forceinline__ float decay_pow(float a, int64_t k) {
    double r = 1.0, base = double(a);
    for (; k > 0; k >>= 1) {
        if (k & 1) r *= base;
        base *= base;
    }
    return float(r);
}

// ---- forward ------------------------------------------------------------------------------

struct FwdParams {
    int B, E, N;
    int64_t L, T, nc;  // steps, steps per chunk, chunks per sequence
    const float* __restrict__ u;  int64_t u_stride;
    const float* __restrict__ z;  int64_t z_stride;
    float* __restrict__ y;        int64_t y_stride;
    const float* __restrict__ decay;  // [N][E]
    const float* __restrict__ bbar;   // [N][E]
    const float* __restrict__ C;      // [N][E]
    const float* __restrict__ D;      // [E]
    float* state;                     // [B][N][E]
    float* chunk;                     // [B][nc][N][E]
};

// TT steps of channel e from row r0: the thread's states (shared column s, stride bs) advance
//   s_n = ā_n·s_n + b̄_n·u_t
// and with OUT the rows' gated output is written: y_t = (Σ_n C_n·s_n + D·u_t)·SiLU(z_t).
// States are the outer loop and steps the inner one, so only TT inputs and TT sums live in
// registers whatever N is.
template <int TT, bool OUT>
__device__ __forceinline__ void lti_steps(const FwdParams& p, int e, int64_t r0, float* s, int bs) {
    float uu[TT], acc[TT];
#pragma unroll
    for (int t = 0; t < TT; ++t) {
        uu[t] = p.u[(r0 + t) * p.u_stride + e];
        acc[t] = 0.0f;
    }
    for (int n = 0; n < p.N; ++n) {
        const int64_t i = int64_t(n) * p.E + e;
        const float a = p.decay[i], bb = p.bbar[i];
        const float c = OUT ? p.C[i] : 0.0f;
        float sn = s[n * bs];
#pragma unroll
        for (int t = 0; t < TT; ++t) {
            sn = fmaf(a, sn, bb * uu[t]);
            if (OUT) acc[t] = fmaf(c, sn, acc[t]);
        }
        s[n * bs] = sn;
    }
    if (OUT) {
        const float d = p.D[e];
#pragma unroll
        for (int t = 0; t < TT; ++t) {
            const float zt = p.z[(r0 + t) * p.z_stride + e];
            p.y[(r0 + t) * p.y_stride + e] = fmaf(d, uu[t], acc[t]) * zt * sigmoid(zt);
        }
    }
}

// One thread per (b, c, e) for chunks c < c_count. Pass 1 (OUT false): from the zero state,
// the end state into the chunk's slot. Pass 3 (OUT true): from the start state in the slot,
// y written; the last chunk's end state replaces the carried state.
template <bool OUT>
__global__ void lti_chunks(const FwdParams p, int64_t c_count) {
    extern __shared__ float smem[];
    const int bs = int(blockDim.x);
    float* const s = smem + threadIdx.x;  // this thread's column: state n at s[n·bs]
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * c_count * p.E) return;  // (no barrier below)
    const int e = int(g % p.E);
    const int64_t bc = g / p.E;
    const int64_t c = bc % c_count;
    const int b = int(bc / c_count);
    const int64_t t0 = c * p.T;
    const int64_t nt = min(p.T, p.L - t0);
    float* const slot = p.chunk + (int64_t(b) * p.nc + c) * p.N * p.E + e;
    for (int n = 0; n < p.N; ++n) s[n * bs] = OUT ? slot[int64_t(n) * p.E] : 0.0f;
    int64_t r = int64_t(b) * p.L + t0, t = 0;
    for (; t + kTile <= nt; t += kTile, r += kTile) lti_steps<kTile, OUT>(p, e, r, s, bs);
    for (; t < nt; ++t, ++r) lti_steps<1, OUT>(p, e, r, s, bs);
    if (!OUT) {
        for (int n = 0; n < p.N; ++n) slot[int64_t(n) * p.E] = s[n * bs];
    } else if (c == p.nc - 1) {
        float* const st = p.state + int64_t(b) * p.N * p.E + e;
        for (int n = 0; n < p.N; ++n) st[int64_t(n) * p.E] = s[n * bs];
    }
}

// ---- the chain (pass 2 of the forward, and the backward's carries) --------------------------

// A walk over nc items per (b, n, e): carry_{k+1} = ā^steps·carry_k + v_k, carry_0 = init.
// Each item's value v_k is replaced by carry_k (what enters it); the walk's last item has no
// value (it is never read). Forward: items are chunks in time order, v = the end state from
// zero, init = the carried state. Backward: items are runs of chunks, last first, v = the
// adjoint at the run's first step from the run alone, init = zero.
struct ChainParams {
    int B, E, N;
    int64_t nc;       // items per sequence
    int64_t S, G;     // items per group, groups per sequence (scan_group_split)
    bool reverse;     // walk from item nc-1 down to item 0
    int64_t steps;    // steps per item
    const float* __restrict__ decay;  // [N][E]
    float* items;     // [B][nc][N][E]
    float* groups;    // [B][G][N][E]
    const float* init;  // [B][N][E], or null: zero
};

__device__ __forceinline__ int64_t item_at(const ChainParams& p, int b, int64_t k, int n, int e) {
    const int64_t c = p.reverse ? p.nc - 1 - k : k;
    return ((int64_t(b) * p.nc + c) * p.N + n) * p.E + e;
}

// Thread g's (b, group, n, e), channel fastest, over `groups` groups.
struct Cell {
    int b, n, e;
    int64_t grp;
};
__device__ __forceinline__ Cell cell_of(int64_t g, const ChainParams& p, int64_t groups) {
    Cell c;
    c.e = int(g % p.E);
    g /= p.E;
    c.n = int(g % p.N);
    g /= p.N;
    c.grp = g % groups;
    c.b = int(g / groups);
    return c;
}

// Level 1: every group but the walk's last (those are full, and hold no walk's-last item),
// folded from zero: what the group hands on apart from what entered it.
__global__ void chain_groups(const ChainParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * (p.G - 1) * p.N * p.E) return;
    const Cell c = cell_of(g, p, p.G - 1);
    const float a = decay_pow(p.decay[int64_t(c.n) * p.E + c.e], p.steps);
    float acc = 0.0f;
    for (int64_t k = c.grp * p.S; k < (c.grp + 1) * p.S; ++k)
        acc = fmaf(a, acc, p.items[item_at(p, c.b, k, c.n, c.e)]);
    p.groups[((int64_t(c.b) * p.G + c.grp) * p.N + c.n) * p.E + c.e] = acc;
}

// Level 2, per (b, n, e): the groups in walk order from init; each group's value replaced by
// what enters the group.
__global__ void chain_across(const ChainParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.N * p.E) return;
    const int e = int(g % p.E);
    const int n = int((g / p.E) % p.N);
    const int b = int(g / (int64_t(p.N) * p.E));
    const float a = decay_pow(p.decay[int64_t(n) * p.E + e], p.steps * p.S);
    float carry = p.init ? p.init[(int64_t(b) * p.N + n) * p.E + e] : 0.0f;
    const int64_t gs = int64_t(p.N) * p.E;
    float* const grp = p.groups + int64_t(b) * p.G * gs + int64_t(n) * p.E + e;  // group k at grp[k·gs]
    for (int64_t k = 0; k < p.G; ++k) {
        const float v = k + 1 < p.G ? grp[k * gs] : 0.0f;
        grp[k * gs] = carry;
        carry = fmaf(a, carry, v);
    }
}

// Level 3, per (b, group, n, e): the group's items in walk order from what enters the group.
__global__ void chain_within(const ChainParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.G * p.N * p.E) return;
    const Cell c = cell_of(g, p, p.G);
    const float a = decay_pow(p.decay[int64_t(c.n) * p.E + c.e], p.steps);
    float carry = p.groups[((int64_t(c.b) * p.G + c.grp) * p.N + c.n) * p.E + c.e];
    const int64_t k1 = min((c.grp + 1) * p.S, p.nc);
    for (int64_t k = c.grp * p.S; k < k1; ++k) {
        const int64_t i = item_at(p, c.b, k, c.n, c.e);
        const float v = k + 1 < p.nc ? p.items[i] : 0.0f;
        p.items[i] = carry;
        carry = fmaf(a, carry, v);
    }
}

void run_chain(ChainParams p, cudaStream_t stream) {
    scan_group_split(p.nc, p.S, p.G);
    const int64_t cells = int64_t(p.B) * p.N * p.E;
    if (p.G > 1) {
        chain_groups<<<blocks_for(cells * (p.G - 1), kThreads), kThreads, 0, stream>>>(p);
        MW_CUDA_CHECK_LAUNCH();
    }
    chain_across<<<blocks_for(cells, kThreads), kThreads, 0, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
    chain_within<<<blocks_for(cells * p.G, kThreads), kThreads, 0, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
}

// ---- backward -----------------------------------------------------------------------------

struct BwdParams {
    int B, E, N;
    int64_t L, nc, run, runs;  // steps, chunks, chunks per run, runs per sequence
    const float* __restrict__ u;   int64_t u_stride;
    const float* __restrict__ z;   int64_t z_stride;
    const float* __restrict__ dy;  int64_t dy_stride;
    const float* __restrict__ decay;  // [N][E]
    const float* __restrict__ bbar;   // [N][E]
    const float* __restrict__ C;      // [N][E]
    const float* __restrict__ D;      // [E]
    const float* __restrict__ chunk_start;  // [B][nc][N][E]
    float* carry;    // [B][runs][N][E] the adjoint entering each run from after it
    float* part;     // [B·runs][3][N][E] per run: Σ ȳ·s (dC), Σ λ·u (db̄), Σ λ·s_prev (dā)
    float* part_D;   // [B·runs][E]       per run: Σ ȳ·u (dD)
    float* __restrict__ du;  int64_t du_stride;
    float* __restrict__ dz;  int64_t dz_stride;
};

// Chunk c of sequence b: its first row and valid steps (only the last chunk is short).
struct ChunkRows {
    int64_t row0;
    int nt;
};
template <int TB>
__device__ __forceinline__ ChunkRows chunk_rows(const BwdParams& p, int b, int64_t c) {
    const int64_t t0 = c * TB;
    return {int64_t(b) * p.L + t0, int(min(int64_t(TB), p.L - t0))};
}

// u_t and ȳ_t = dy_t·SiLU(z_t) of a chunk, zero past its end. Loads come from clamped rows,
// unconditionally, so that the chunk's loads are all in flight at once.
template <int TB>
__device__ __forceinline__ void load_chunk(const BwdParams& p, ChunkRows cr, int e, float (&uu)[TB],
                                           float (&yb)[TB]) {
#pragma unroll
    for (int t = 0; t < TB; ++t) {
        const int64_t r = cr.row0 + min(t, cr.nt - 1);
        const float zt = p.z[r * p.z_stride + e];
        const bool live = t < cr.nt;
        uu[t] = live ? p.u[r * p.u_stride + e] : 0.0f;
        yb[t] = live ? p.dy[r * p.dy_stride + e] * zt * sigmoid(zt) : 0.0f;
    }
}

// Per (b, run >= 1, e): the adjoint at the run's first step from the run alone (zero from
// after it), λ_t = ā·λ_{t+1} + ȳ_t·C, into the run's carry slot. (Run 0's is never needed.)
template <int TB>
__global__ void lti_bwd_local(const BwdParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * (p.runs - 1) * p.E) return;
    const int e = int(g % p.E);
    const int64_t q = g / p.E;
    const int64_t run = 1 + q % (p.runs - 1);
    const int b = int(q / (p.runs - 1));
    float* const lam = p.carry + (int64_t(b) * p.runs + run) * p.N * p.E + e;  // state n at lam[n·E]
    for (int n = 0; n < p.N; ++n) lam[int64_t(n) * p.E] = 0.0f;
    const int64_t c0 = run * p.run, c1 = min(c0 + p.run, p.nc);
    for (int64_t c = c1 - 1; c >= c0; --c) {
        float uu[TB], yb[TB];
        load_chunk<TB>(p, chunk_rows<TB>(p, b, c), e, uu, yb);
        for (int n = 0; n < p.N; ++n) {
            const int64_t i = int64_t(n) * p.E + e;
            const float a = p.decay[i], cn = p.C[i];
            float l = lam[int64_t(n) * p.E];
#pragma unroll
            for (int t = TB - 1; t >= 0; --t) l = fmaf(a, l, yb[t] * cn);
            lam[int64_t(n) * p.E] = l;
        }
    }
}

// Per (b, run, e): the run's chunks, last first. For each, the states again from the chunk's
// start (kept by the forward), then the adjoint backward from what enters the chunk from
// after it; du, dz of its rows, and the per-run sums of the parameters' gradients. States are
// the outer loop: only arrays of TB live in registers, whatever N is.
template <int TB>
__global__ void __launch_bounds__(kThreads) lti_bwd_chunks(const BwdParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.runs * p.E) return;
    const int e = int(g % p.E);
    const int64_t q = g / p.E;  // b·runs + run
    const int64_t run = q % p.runs;
    const int b = int(q / p.runs);
    const int64_t NE = int64_t(p.N) * p.E;
    float* const lam = p.carry + q * NE + e;
    float* const part = p.part + q * 3 * NE + e;  // [3][N] at stride E
    const float d = p.D[e];
    float dD = 0.0f;
    const int64_t c0 = run * p.run, c1 = min(c0 + p.run, p.nc);
    for (int64_t c = c1 - 1; c >= c0; --c) {
        const ChunkRows cr = chunk_rows<TB>(p, b, c);
        float uu[TB], yb[TB], ys[TB], dus[TB];
        load_chunk<TB>(p, cr, e, uu, yb);
#pragma unroll
        for (int t = 0; t < TB; ++t) ys[t] = dus[t] = 0.0f;
        const float* const s0p = p.chunk_start + (int64_t(b) * p.nc + c) * NE + e;
        for (int n = 0; n < p.N; ++n) {
            const int64_t i = int64_t(n) * p.E + e;
            const float a = p.decay[i], bb = p.bbar[i], cn = p.C[i];
            const float s0 = s0p[int64_t(n) * p.E];
            // s_t = ā·s_{t-1} + b̄·u_t;  y_t's sum;  dC += ȳ_t·s_t
            float sv[TB], s = s0, dC = 0.0f;
#pragma unroll
            for (int t = 0; t < TB; ++t) {
                s = fmaf(a, s, bb * uu[t]);
                sv[t] = s;
                ys[t] = fmaf(cn, s, ys[t]);
                dC = fmaf(yb[t], s, dC);
            }
            // λ_t = ā·λ_{t+1} + ȳ_t·C;  db̄ += λ_t·u_t;  dā += λ_t·s_{t-1};  du_t += λ_t·b̄
            float l = lam[int64_t(n) * p.E], dbb = 0.0f, da = 0.0f;
#pragma unroll
            for (int t = TB - 1; t >= 0; --t) {
                l = fmaf(a, l, yb[t] * cn);
                dbb = fmaf(l, uu[t], dbb);
                da = fmaf(l, t > 0 ? sv[t > 0 ? t - 1 : 0] : s0, da);  // s_{t-1}
                dus[t] = fmaf(l, bb, dus[t]);
            }
            lam[int64_t(n) * p.E] = l;  // what enters the chunk before from after it
            float* const pn = part + int64_t(n) * p.E;
            if (c == c1 - 1) {
                pn[0] = dC;
                pn[NE] = dbb;
                pn[2 * NE] = da;
            } else {
                pn[0] += dC;
                pn[NE] += dbb;
                pn[2 * NE] += da;
            }
        }
        // du_t = Σ_n λ_t·b̄ + D·ȳ_t;  dz_t = dy_t·y_t·SiLU'(z_t), y_t = Σ_n C·s_t + D·u_t;  dD += ȳ_t·u_t
#pragma unroll
        for (int t = 0; t < TB; ++t) {
            dD = fmaf(yb[t], uu[t], dD);
            if (t < cr.nt) {
                const int64_t r = cr.row0 + t;
                const float zt = p.z[r * p.z_stride + e];
                const float sg = sigmoid(zt);
                p.du[r * p.du_stride + e] = fmaf(d, yb[t], dus[t]);
                p.dz[r * p.dz_stride + e] = p.dy[r * p.dy_stride + e] * fmaf(d, uu[t], ys[t]) * sg *
                                            fmaf(zt, 1.0f - sg, 1.0f);
            }
        }
    }
    p.part_D[q * p.E + e] = dD;
}

// Per channel e, from the sums over time and batch (sums [3][N][E]: dC, db̄, dā; sum_D [E]):
//   dB = Δ·db̄;  dC;  dA_log = Δ·ā·dā·A;  dΔ = Σ_n (B·db̄ + A·ā·dā);  d(dt_bias) = σ·dΔ;  dD
// (ā = exp(Δ·A): ∂ā/∂A = Δ·ā, ∂ā/∂Δ = A·ā; b̄ = Δ·B; A = -exp(A_log): ∂A/∂A_log = A.)
struct GradParams {
    int E, N;
    const float* __restrict__ sums;   // [3][N][E]
    const float* __restrict__ sum_D;  // [E]
    const float* __restrict__ decay;  // [N][E]
    const float* __restrict__ A;      // [E][N]
    const float* __restrict__ Bw;     // [E][N]
    const float* __restrict__ delta;  // [E]
    const float* __restrict__ dsig;   // [E]
    float *dB, *dC, *dA_log, *dD, *d_bias;
};
__global__ void lti_param_grads(const GradParams p) {
    const int e = int(blockIdx.x * blockDim.x + threadIdx.x);
    if (e >= p.E) return;
    const int64_t NE = int64_t(p.N) * p.E;
    const float dl = p.delta[e];
    float ddelta = 0.0f;
    for (int n = 0; n < p.N; ++n) {
        const int64_t i = int64_t(n) * p.E + e, w = int64_t(e) * p.N + n;
        const float dc = p.sums[i], dbb = p.sums[NE + i], q = p.decay[i] * p.sums[2 * NE + i];
        p.dB[w] += dl * dbb;
        p.dC[w] += dc;
        p.dA_log[w] += dl * q * p.A[w];
        ddelta += p.Bw[w] * dbb + p.A[w] * q;
    }
    p.d_bias[e] += p.dsig[e] * ddelta;
    p.dD[e] += p.sum_D[e];
}

void check_sizes(const char* who, int B, int64_t L, int E, int N) {
    if (B < 1 || L < 0 || E < 1 || N < 1)
        throw std::invalid_argument(std::string(who) + ": sizes must be positive (B " + std::to_string(B) + ", L " +
                                    std::to_string(L) + ", E " + std::to_string(E) + ", N " + std::to_string(N) + ")");
    if (N > kLtiMaxState)
        throw std::invalid_argument(std::string(who) + ": d_state " + std::to_string(N) + " is above the LTI scan's " +
                                    std::to_string(kLtiMaxState));
}

// The fields the forward's and the backward's params share, from either problem.
template <class Params, class Problem>
void set_inputs(Params& p, const Problem& q) {
    p.B = q.B;  p.E = q.E;  p.N = q.N;  p.L = q.L;
    p.u = q.u;  p.u_stride = q.u_stride;
    p.z = q.z;  p.z_stride = q.z_stride;
    p.decay = q.decay;  p.bbar = q.bbar;  p.C = q.C;  p.D = q.D;
}

// A chain over the problem's (b, n, e): nc items of `steps` steps, forward, from zero; the
// caller sets the items and groups, and the direction and init where they differ.
template <class Problem>
ChainParams chain_over(const Problem& q, int64_t nc, int64_t steps) {
    ChainParams c{};
    c.B = q.B;  c.E = q.E;  c.N = q.N;
    c.nc = nc;
    c.steps = steps;
    c.decay = q.decay;
    return c;
}

} // namespace

LtiScanWorkspaceSize lti_scan_workspace_size(int B, int64_t L, int E, int N, int64_t T) {
    LtiScanWorkspaceSize w;
    if (B <= 0 || L <= 0 || E <= 0 || N <= 0 || T <= 0) return w;
    w.chunks = (L + T - 1) / T;
    int64_t S = 1;
    scan_group_split(w.chunks, S, w.groups);
    w.chunk_state = int64_t(B) * w.chunks * N * E;
    w.group_state = int64_t(B) * w.groups * N * E;
    return w;
}

int64_t lti_auto_chunk(int B, int64_t L, int E, int sm_count) {
    const int64_t target = int64_t(std::max(sm_count, 1)) * kThreadsPerSm, lanes = int64_t(B) * E;
    if (L <= 4 * kTile || lanes >= target) return std::max<int64_t>(L, 1);
    const int64_t nc = (target + lanes - 1) / lanes;
    const int64_t T = (L + nc - 1) / nc;
    return std::max<int64_t>(4 * kTile, (T + kTile - 1) / kTile * kTile);  // whole tiles, not tiny chunks
}

void lti_scan(const LtiScanProblem& q, int64_t T, float* workspace, cudaStream_t stream) {
    check_sizes("lti_scan", q.B, q.L, q.E, q.N);
    if (T < 1) throw std::invalid_argument("lti_scan: chunk " + std::to_string(T) + ", expected >= 1");
    if (q.L == 0) return;
    if (!q.u || !q.z || !q.y || !q.decay || !q.bbar || !q.C || !q.D || !q.state || !workspace)
        throw std::invalid_argument("lti_scan: a null pointer");
    const LtiScanWorkspaceSize w = lti_scan_workspace_size(q.B, q.L, q.E, q.N, T);
    FwdParams p{};
    set_inputs(p, q);
    p.T = T;
    p.nc = w.chunks;
    p.y = q.y;  p.y_stride = q.y_stride;
    p.state = q.state;
    p.chunk = workspace;
    const int threads = forward_threads(q.N);
    const size_t smem = size_t(q.N) * size_t(threads) * sizeof(float);
    const int64_t lanes = int64_t(q.B) * q.E;
    if (w.chunks > 1) {  // pass 1: every chunk but the last, from zero
        lti_chunks<false><<<blocks_for(lanes * (w.chunks - 1), threads), threads, smem, stream>>>(p, w.chunks - 1);
        MW_CUDA_CHECK_LAUNCH();
    }
    // pass 2: the chunks' start states from the carried state
    ChainParams c = chain_over(q, w.chunks, T);
    c.items = workspace;
    c.groups = workspace + w.chunk_state;
    c.init = q.state;
    run_chain(c, stream);
    // pass 3: every chunk from its start, y out, the last state back
    lti_chunks<true><<<blocks_for(lanes * w.chunks, threads), threads, smem, stream>>>(p, w.chunks);
    MW_CUDA_CHECK_LAUNCH();
}

LtiScanBackwardSize lti_scan_backward_workspace_size(int B, int64_t L, int E, int N, int chunk, int sm_count,
                                                     int run) {
    LtiScanBackwardSize s;
    if (B <= 0 || L <= 0 || E <= 0 || N <= 0 || chunk <= 0) return s;
    s.chunks = (L + chunk - 1) / chunk;
    // Runs of chunks per thread: as long as the tasks still fill the GPU. Longer runs mean
    // fewer per-run partial sums (memory) and fewer carries to chain.
    const int64_t target = int64_t(std::max(sm_count, 1)) * kThreadsPerSm, lanes = int64_t(B) * E;
    const int64_t runs_wanted = (target + lanes - 1) / lanes;
    s.run = run > 0 ? std::min<int64_t>(run, s.chunks) : std::max<int64_t>(1, s.chunks / runs_wanted);
    s.runs = (s.chunks + s.run - 1) / s.run;
    int64_t S = 1;
    scan_group_split(s.runs, S, s.groups);
    const int64_t NE = int64_t(N) * E, rows = int64_t(B) * s.runs;
    s.carry = rows * NE;
    s.group = int64_t(B) * s.groups * NE;
    s.part = rows * 3 * NE;
    s.part_D = rows * E;
    s.sums = 3 * NE + E;
    s.scratch = std::max(column_sums_scratch(rows, int(3 * NE)), column_sums_scratch(rows, E));
    return s;
}

namespace {

template <int TB>
void backward_passes(const BwdParams& p, const ChainParams& chain, cudaStream_t stream) {
    const int64_t lanes = int64_t(p.B) * p.E;
    if (p.runs > 1) {
        lti_bwd_local<TB><<<blocks_for(lanes * (p.runs - 1), kThreads), kThreads, 0, stream>>>(p);
        MW_CUDA_CHECK_LAUNCH();
    }
    run_chain(chain, stream);
    lti_bwd_chunks<TB><<<blocks_for(lanes * p.runs, kThreads), kThreads, 0, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
}

} // namespace

void lti_scan_backward(const LtiScanBackwardProblem& q, float* workspace, cudaStream_t stream) {
    check_sizes("lti_scan_backward", q.B, q.L, q.E, q.N);
    if (q.chunk != 8 && q.chunk != 16)
        throw std::invalid_argument("lti_scan_backward: chunk " + std::to_string(q.chunk) + ", expected 8 or 16");
    if (q.L == 0) return;
    if (!q.u || !q.z || !q.dy || !q.decay || !q.bbar || !q.C || !q.D || !q.A || !q.Bw || !q.delta || !q.dsig ||
        !q.chunk_start || !q.du || !q.dz || !q.dB || !q.dC || !q.dA_log || !q.dD || !q.d_bias || !workspace)
        throw std::invalid_argument("lti_scan_backward: a null pointer");
    if (q.run < 0) throw std::invalid_argument("lti_scan_backward: run " + std::to_string(q.run) + ", expected >= 0");
    const LtiScanBackwardSize s = lti_scan_backward_workspace_size(q.B, q.L, q.E, q.N, q.chunk, q.sm_count, q.run);
    float* const carry = workspace;
    float* const group = carry + s.carry;
    float* const part = group + s.group;
    float* const part_D = part + s.part;
    float* const sums = part_D + s.part_D;
    float* const scratch = sums + s.sums;
    const int NE = q.N * q.E;

    BwdParams p{};
    set_inputs(p, q);
    p.nc = s.chunks;
    p.run = s.run;
    p.runs = s.runs;
    p.dy = q.dy;  p.dy_stride = q.dy_stride;
    p.chunk_start = q.chunk_start;
    p.carry = carry;
    p.part = part;
    p.part_D = part_D;
    p.du = q.du;  p.du_stride = q.du_stride;
    p.dz = q.dz;  p.dz_stride = q.dz_stride;

    // The carries between runs: walked from the last run to the first, from zero (no gradient
    // flows through the state after the last step).
    ChainParams c = chain_over(q, s.runs, int64_t(q.chunk) * s.run);
    c.reverse = true;
    c.items = carry;
    c.groups = group;
    if (q.chunk == 16) backward_passes<16>(p, c, stream);
    else backward_passes<8>(p, c, stream);

    // Sums over every run of every sequence, in a fixed order; then the parameters' gradients.
    const int64_t rows = int64_t(q.B) * s.runs;
    column_sums(part, rows, 3 * NE, 3 * int64_t(NE), sums, false, scratch, stream);
    column_sums(part_D, rows, q.E, q.E, sums + 3 * NE, false, scratch, stream);
    const GradParams gp{q.E, q.N, sums, sums + 3 * NE, q.decay, q.A, q.Bw, q.delta, q.dsig,
                        q.dB, q.dC, q.dA_log, q.dD, q.d_bias};
    lti_param_grads<<<blocks_for(q.E, kThreads), kThreads, 0, stream>>>(gp);
    MW_CUDA_CHECK_LAUNCH();
}

} // namespace mw::kernels::cuda
