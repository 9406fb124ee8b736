// The selective scan (scan.cuh says what each pass computes): chunked, in two numbered
// variants of passes 1 and 3 (pass 2 is shared), or in one pass over whole sequences
// (variant 3, `scan_sequences` below) where the batch fills the GPU, or in one pass over
// segments of time mended afterwards (variant 4, opt-in); variant 0 chooses (scan_choice).
//
// variant 1 (baseline, kept for comparison): one thread per (sequence b, chunk c, channel e),
//   NT states of that channel in registers (NT = 4, 8, 16 or 32, fixed at compile time so the
//   arrays stay in registers; a d_state above 32 runs in groups of 32 states), every input
//   loaded from global memory in the step that uses it. Consecutive threads are consecutive
//   channels, so a warp's Δ, u, z and y accesses are coalesced and its B_t / C_t reads are
//   broadcasts; but each step waits on its own loads.
// variant 2 (chunked default): one warp per (b, c, slice of 32 channels), same registers per lane.
//   The warp stages tiles of kTileSteps steps (Δ, u, z of its 32 channels; B_t, C_t) into
//   shared memory with cp.async (16-byte pieces where rows are aligned), double-buffered, so
//   the next tile's loads are in flight while this tile computes; B_t / C_t come out as
//   16-byte broadcast reads; full tiles run unrolled. The kernel is bound by instruction issue
//   and the exp unit (five instructions per state per step), not by memory, so the chunk
//   length is chosen to fill whole waves of resident warps (auto_scan_chunk).
//
// Pass 2 runs one thread per (b, [group,] n, e).
//
// Inputs (Δ, u, z, B, C) are fp32 or bf16 (the In template parameter): bf16 tiles are staged
// as bf16 and widened to fp32 where a step reads them; everything else is the same code.
#include "kernels/cuda/scan.cuh"

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/scan_util.cuh"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace mw::kernels::cuda {
namespace {

constexpr int kScanThreads = 128;     // passes 1 and 3
constexpr int kCombineThreads = 256;  // pass 2

// One params struct for every launch of the scan: sizes, strides and restrict pointers,
// checked once on the host (selective_scan). In: the inputs' type, float or __nv_bfloat16.
template <class In>
struct ScanParams {
    int B, E, N;
    int64_t L;
    int T;        // steps per chunk
    int nc;       // chunks per sequence
    int S, G;     // chunks per group, groups per sequence (pass 2)
    int n0;       // first state of this launch's group (pass 3)
    bool first_group, last_group;  // pass 3: y starts at D·u / gets the SiLU(z) gate
    bool vec;     // variant 2: every row 16-byte aligned, E and N multiples of the elements in
                  // 16 bytes (4 floats, 8 bf16): tiles copied in 16-byte pieces

    const In* __restrict__ dt;  int64_t dt_stride;
    const In* __restrict__ u;   int64_t u_stride;
    const In* __restrict__ z;   int64_t z_stride;
    const In* __restrict__ Bm;
    const In* __restrict__ Cm;  int64_t bc_stride;
    float* y;                      int64_t y_stride;   // read too when accumulating groups
    const float* __restrict__ A2;  // [E][N]
    const float* __restrict__ D;   // [E]
    const float* __restrict__ dt_bias;  // [E]
    float* state;                  // [B][N][E]
    float* chunk_state;            // [B][nc][N][E] end from zero (pass 1) -> start (pass 2)
    float* chunk_dt;               // [B][nc][E]    ΣΔ over the chunk
    float* group_state;            // [B][G][N][E]  group end from zero -> group start
    float* group_dt;               // [B][G][N][E]  ΣΔ over the group
    // The one pass (variant 3, 4): each sequence in nseg segments of seg_len steps (nseg 1:
    // whole sequences). With segments, every segment but the first starts from zero and its
    // outputs are mended afterwards (fix_segments).
    int64_t seg_len;
    int nseg;
    float* seg_state;              // [B][nseg][N][E] end from zero -> start (combine_segments)
    float* seg_dt;                 // [B][nseg][E]    ΣΔ over the segment
};

// SiLU(x) = x / (1 + e^-x)   (__fdividef gives 0 once the denominator passes 2^126: the limit)
__device__ __forceinline__ float silu(float x) { return __fdividef(x, 1.0f + ex2(-x * kLog2e)); }

// An input element as fp32, and four consecutive ones (16-byte aligned floats; 8-byte aligned
// bf16) as a float4.
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const __nv_bfloat16* p) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    return make_float4(lo.x, lo.y, hi.x, hi.y);
}

// cp.async: a 4-byte global -> shared copy that completes in the background.
__device__ __forceinline__ void cp_async4(float* smem, const float* gmem) {
    const unsigned dst = unsigned(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(dst), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const unsigned dst = unsigned(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(Pending) : "memory");
}

// Pass 1: chunk c of sequence b from the zero state, states [n0, n0+NT) of channel e.
//   s = exp2(Δ·A2) ⊙ s + (Δ·u)·B_t        chunk_state[b][c][n][e] = s_end, chunk_dt = ΣΔ
template <int NT, class In>
__global__ void __launch_bounds__(kScanThreads) scan_chunks_from_zero(const ScanParams<In> p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.nc * p.E) return;
    const int e = int(g % p.E);
    const int64_t bc = g / p.E;  // b·nc + c
    const int c = int(bc % p.nc);
    const int b = int(bc / p.nc);
    const int n0 = int(blockIdx.y) * NT;
    const int nn = min(NT, p.N - n0);

    float a2[NT], s[NT];
#pragma unroll
    for (int n = 0; n < NT; ++n) {
        a2[n] = n < nn ? p.A2[int64_t(e) * p.N + n0 + n] : 0.0f;
        s[n] = 0.0f;
    }
    const float bias = p.dt_bias[e];
    const int64_t t0 = int64_t(c) * p.T;
    const int64_t r0 = int64_t(b) * p.L + t0;
    const int64_t r1 = int64_t(b) * p.L + min(t0 + p.T, p.L);
    float sum_dt = 0.0f;
    for (int64_t r = r0; r < r1; ++r) {
        // Δ = softplus(dt + bias)
        const float dt = softplus_ex2(to_f(p.dt[r * p.dt_stride + e]) + bias);
        const float du = dt * to_f(p.u[r * p.u_stride + e]);
        const In* Bt = p.Bm + r * p.bc_stride + n0;
        sum_dt += dt;
#pragma unroll
        for (int n = 0; n < NT; ++n)
            if (n < nn) s[n] = fmaf(ex2(dt * a2[n]), s[n], du * to_f(Bt[n]));
    }
    float* out = p.chunk_state + (bc * p.N + n0) * p.E + e;
#pragma unroll
    for (int n = 0; n < NT; ++n)
        if (n < nn) out[int64_t(n) * p.E] = s[n];
    if (blockIdx.y == 0) p.chunk_dt[bc * p.E + e] = sum_dt;
}

// ---- variant 2 of passes 1 and 3: warp tiles through shared memory ----------------------

constexpr int kTileSteps = 8;       // steps per shared-memory tile
constexpr int kTileWarps = 4;       // warps (independent tasks) per block
// Blocks per multiprocessor that the registers must allow: 5 (20 warps) keeps NT <= 16 free of
// spills (6 spilled a little); 32 states need 4.
template <int NT>
constexpr int tile_min_blocks() { return NT >= 32 ? 4 : 5; }

// One warp's shared memory, in input elements: two buffers, each [TT][32] Δ, [TT][32] u,
// ([TT][32] z), [TT][NT] B, ([TT][NT] C). NT % 4 == 0, so every B / C row holds whole groups
// of four (16 bytes of floats, 8 of bf16), read by load4.
template <int NT, bool OUTPUT, class In>
struct TileLayout {
    static constexpr int kChanArrays = OUTPUT ? 3 : 2;
    static constexpr int kStateArrays = OUTPUT ? 2 : 1;
    static constexpr int kBufElems = kTileSteps * (32 * kChanArrays + NT * kStateArrays);
    static constexpr int kWarpElems = 2 * kBufElems;
    static constexpr int kBlockBytes = kTileWarps * kWarpElems * int(sizeof(In));
    static constexpr int kPiece = 16 / int(sizeof(In));  // elements in one 16-byte copy
    static_assert(NT % 4 == 0, "B / C rows are read four at a time");
    static_assert(kWarpElems * int(sizeof(In)) % 16 == 0, "warp buffers must stay 16-byte aligned");
    static_assert(kBlockBytes <= 48 * 1024, "more than the default dynamic shared memory");
};

// What one launch of scan_tiles computes.
enum TileMode : int {
    kPass1 = 0,           // chunk from the zero state: end state and ΣΔ
    kPass3 = 1,           // chunk from its start state: y = (s·C + D·u) ⊙ SiLU(z), all states at once
    kPass3Groups = 2,     // the same for one group of 32 states (d_state > 32): y accumulates
};

template <int NT, int MODE, class In>
__global__ void __launch_bounds__(kTileWarps * 32, tile_min_blocks<NT>()) scan_tiles(const ScanParams<In> p) {
    constexpr bool OUTPUT = MODE != kPass1;
    using Lay = TileLayout<NT, OUTPUT, In>;
    constexpr int TT = kTileSteps;
    extern __shared__ float4 smem_f4[];
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) & 31;
    const int slices = (p.E + 31) / 32;
    const int64_t task = int64_t(blockIdx.x) * kTileWarps + warp;
    if (task >= int64_t(p.B) * p.nc * slices) return;  // whole warps only; no block barrier below
    const int slice = int(task % slices);
    const int64_t bc = task / slices;                   // b·nc + c
    const int c = int(bc % p.nc);
    const int b = int(bc / p.nc);
    const int e = slice * 32 + lane;
    const bool active = e < p.E;
    const int n0 = OUTPUT ? p.n0 : int(blockIdx.y) * NT;
    const int nn = min(NT, p.N - n0);

    // Zero both buffers once: slots that no copy fills (lanes past E, states past N) stay 0,
    // so those lanes and states compute harmless zeros without a branch.
    In* const wbuf = reinterpret_cast<In*>(smem_f4) + warp * Lay::kWarpElems;
    for (int i = lane; i < Lay::kWarpElems * int(sizeof(In)) / 16; i += 32)
        reinterpret_cast<float4*>(wbuf)[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    __syncwarp();

    const int64_t t0 = int64_t(c) * p.T;
    const int steps = int(min(int64_t(p.T), p.L - t0));
    const int64_t r0 = int64_t(b) * p.L + t0;
    const int tiles = (steps + TT - 1) / TT;

    // Start the copies of tile k into buffer k % 2. With p.vec (every row 16-byte aligned,
    // E and N multiples of kPiece) in 16-byte pieces of kPiece elements, else element by
    // element (cp.async for floats; bf16 elements, 2 bytes, are loaded and stored directly).
    constexpr int kPiece = Lay::kPiece;
    const int e0 = slice * 32;
    auto issue = [&](int k) {
        In* buf = wbuf + (k & 1) * Lay::kBufElems;
        const int j0 = k * TT;
        const int nj = min(TT, steps - j0);
        const int64_t rk = r0 + j0;  // row of the tile's first step
        In* bcbuf = buf + Lay::kChanArrays * TT * 32;
        bool copied = false;
        if constexpr (NT % kPiece == 0) {
            if (p.vec) {
                // Δ, u (, z): kChanArrays·TT rows of P = 32 / kPiece pieces (32 channels); lane l
                // copies piece l % P of rows l / P + (32 / P)·m, so array and row offset are
                // known at compile time.
                constexpr int P = 32 / kPiece, rows_per_pass = 32 / P, passes_per_array = TT / rows_per_pass;
                static_assert(TT % rows_per_pass == 0, "a tile's rows split into whole passes");
                const int piece = lane % P;
                if (e0 + kPiece * piece < p.E) {
#pragma unroll
                    for (int m = 0; m < Lay::kChanArrays * passes_per_array; ++m) {
                        const int a = m / passes_per_array;
                        const int j = lane / P + rows_per_pass * (m % passes_per_array);
                        const In* base = a == 0 ? p.dt : a == 1 ? p.u : p.z;
                        const int64_t stride = a == 0 ? p.dt_stride : a == 1 ? p.u_stride : p.z_stride;
                        if (j < nj)
                            cp_async16(buf + (a * TT + j) * 32 + kPiece * piece,
                                       base + (rk + j) * stride + e0 + kPiece * piece);
                    }
                }
                // B (, C): TT rows of `pieces` 16-byte pieces; pieces divides 32, so lane l
                // always copies piece l % pieces, of rows l / pieces + (32 / pieces)·m.
                constexpr int pieces = Lay::kStateArrays * NT / kPiece;
                const int q = lane % pieces;
                const int which = q / (NT / kPiece), n = kPiece * (q % (NT / kPiece));
                if (n < nn) {
                    const In* src = (which ? p.Cm : p.Bm) + n0 + n;
                    In* dst = bcbuf + which * TT * NT + n;
#pragma unroll
                    for (int m = 0; m < (TT * pieces + 31) / 32; ++m) {
                        const int j = lane / pieces + (32 / pieces) * m;
                        if (j < nj) cp_async16(dst + j * NT, src + (rk + j) * p.bc_stride);
                    }
                }
                copied = true;
            }
        }
        if (!copied) {
            // One element at a time: cp.async for 4-byte floats, a plain copy for bf16.
            auto put = [](In* dst, const In* src) {
                if constexpr (sizeof(In) == 4) cp_async4(reinterpret_cast<float*>(dst), reinterpret_cast<const float*>(src));
                else *dst = *src;
            };
            if (active)
                for (int j = 0; j < nj; ++j) {
                    const int64_t r = rk + j;
                    put(buf + j * 32 + lane, p.dt + r * p.dt_stride + e);
                    put(buf + (TT + j) * 32 + lane, p.u + r * p.u_stride + e);
                    if (OUTPUT) put(buf + (2 * TT + j) * 32 + lane, p.z + r * p.z_stride + e);
                }
            constexpr int per_step = Lay::kStateArrays * NT;
            for (int i = lane; i < nj * per_step; i += 32) {
                const int j = i / per_step, q = i % per_step;
                const int which = q / NT, n = q % NT;  // which: 0 B, 1 C
                if (n < nn)
                    put(bcbuf + (which * TT + j) * NT + n, (which ? p.Cm : p.Bm) + (rk + j) * p.bc_stride + n0 + n);
            }
        }
        cp_async_commit();
    };

    float a2[NT], s[NT];
    const float* start = p.chunk_state + (bc * p.N + n0) * p.E + e;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
        const bool live = active && n < nn;
        a2[n] = live ? p.A2[int64_t(e) * p.N + n0 + n] : 0.0f;
        s[n] = OUTPUT && live ? start[int64_t(n) * p.E] : 0.0f;
    }
    const float bias = active ? p.dt_bias[e] : 0.0f;
    const float Dv = active ? p.D[e] : 0.0f;
    float sum_dt = 0.0f;
    float* yp = p.y + r0 * p.y_stride + e;  // y of the current step (pass 3)

    // One step from shared memory:
    //   Δ = softplus(dt + bias);  s = exp2(Δ·A2) ⊙ s + (Δ·u)·B_t;  y = (s·C_t + D·u) ⊙ SiLU(z)
    auto step = [&](const In* buf, int j) {
        const float dt = softplus_ex2(to_f(buf[j * 32 + lane]) + bias);
        const float x = to_f(buf[(TT + j) * 32 + lane]);
        const float du = dt * x;
        sum_dt += dt;
        const In* Bv = buf + Lay::kChanArrays * TT * 32 + j * NT;
        const In* Cv = buf + Lay::kChanArrays * TT * 32 + (TT + j) * NT;
        float acc = 0.0f;
#pragma unroll
        for (int q = 0; q < NT / 4; ++q) {
            const float4 bq = load4(Bv + 4 * q);
            s[4 * q + 0] = fmaf(ex2(dt * a2[4 * q + 0]), s[4 * q + 0], du * bq.x);
            s[4 * q + 1] = fmaf(ex2(dt * a2[4 * q + 1]), s[4 * q + 1], du * bq.y);
            s[4 * q + 2] = fmaf(ex2(dt * a2[4 * q + 2]), s[4 * q + 2], du * bq.z);
            s[4 * q + 3] = fmaf(ex2(dt * a2[4 * q + 3]), s[4 * q + 3], du * bq.w);
            if (OUTPUT) {
                const float4 cq = load4(Cv + 4 * q);
                acc = fmaf(s[4 * q + 0], cq.x, acc);
                acc = fmaf(s[4 * q + 1], cq.y, acc);
                acc = fmaf(s[4 * q + 2], cq.z, acc);
                acc = fmaf(s[4 * q + 3], cq.w, acc);
            }
        }
        if (MODE == kPass3) {
            // y = (acc + D·u) ⊙ SiLU(z)
            if (active) *yp = (acc + Dv * x) * silu(to_f(buf[(2 * TT + j) * 32 + lane]));
            yp += p.y_stride;
        } else if (MODE == kPass3Groups) {
            // + D·u (first state group) or + y so far; ⊙ SiLU(z) (last group)
            if (active) {
                acc += p.first_group ? Dv * x : *yp;
                if (p.last_group) acc *= silu(to_f(buf[(2 * TT + j) * 32 + lane]));
                *yp = acc;
            }
            yp += p.y_stride;
        }
    };

    issue(0);
    for (int k = 0; k < tiles; ++k) {
        if (k + 1 < tiles) {
            issue(k + 1);
            cp_async_wait<1>();  // tile k has landed (this lane's copies) ...
        } else {
            cp_async_wait<0>();
        }
        __syncwarp();            // ... and every lane's
        const In* buf = wbuf + (k & 1) * Lay::kBufElems;
        const int nj = min(TT, steps - k * TT);
        if (nj == TT) {
#pragma unroll
            for (int j = 0; j < TT; ++j) step(buf, j);
        } else {
            for (int j = 0; j < nj; ++j) step(buf, j);
        }
        __syncwarp();  // every lane is done with this buffer before tile k+2 is copied into it
    }
    if (!OUTPUT && active) {
        float* out = p.chunk_state + (bc * p.N + n0) * p.E + e;
#pragma unroll
        for (int n = 0; n < NT; ++n)
            if (n < nn) out[int64_t(n) * p.E] = s[n];
        if (blockIdx.y == 0) p.chunk_dt[bc * p.E + e] = sum_dt;
    }
}

// ---- variant 3: whole sequences in one pass ------------------------------------------------
//
// When the batch alone has enough (sequence, channel) pairs to fill the GPU, time need not be
// cut at all: a warp runs its channels from the carried state to the end and every exp is
// computed once (the chunked passes compute each twice, and the exp unit is what bounds them:
// NOTES.md). K lanes share a channel, NS states each (NS·K >= N), so that fewer channels still
// make enough warps: a warp holds CW = 32 / K channels; lane l owns channel c = l % CW and
// states [k·NS, k·NS + NS), k = l / CW. Per staged tile of kSeqTile steps:
//   prologue  the tile's (step, channel) cells are shared out: lane (c, k) takes the steps
//             j = k + K·m of its channel. Δ = softplus(dt + bias) and Δ·u go to shared memory
//             (every lane of the channel reads them); D·u and SiLU(z) stay in its registers.
//   steps     s = exp2(Δ·A2) ⊙ s + (Δ·u)·B_t, and the partial y_j = Σ s·C_t over its states.
//   epilogue  the K partials of each step are added across the channel's lanes by shuffles
//             (recursive halving), lane k ending with the sums of its prologue steps, and it
//             writes y = (sum + D·u)·SiLU(z).
// Steps past the end run with Δ = 0 and Δ·u = 0 (exp2(0) = 1: the state stays) and are not
// written, so every tile runs unrolled. The start state of each chunk of T steps is written on
// the way (chunk_state, as the chunked passes leave it; the backward reads it), the end state
// into `state`. Variant 4 runs the same kernel over segments of time instead of whole
// sequences (each from zero but the first) and leaves each segment's end state and ΣΔ in
// seg_state / seg_dt for combine_segments and fix_segments (below).
constexpr int kSeqWarps = 4;   // warps (independent tasks) per block
constexpr int kSeqTile = 16;   // steps per staged tile
constexpr int kSeqStages = 2;  // staged tiles: the copies run one tile ahead of the arithmetic

template <int NS, int K, class In>
struct SeqLayout {
    static constexpr int CW = 32 / K;  // channels per warp
    static constexpr int NT = NS * K;  // states per channel (>= N)
    static constexpr int TT = kSeqTile;
    static constexpr int kStageElems = TT * (3 * CW + 2 * NT);  // Δ, u, z [TT][CW]; B, C [TT][NT]
    static constexpr int kInBytes = kSeqStages * kStageElems * int(sizeof(In));
    static constexpr int kWorkBytes = 2 * TT * CW * 4;          // Δ and Δ·u [TT][CW], float
    static constexpr int kWarpBytes = (kInBytes + kWorkBytes + 15) / 16 * 16;
    static constexpr int kBlockBytes = kSeqWarps * kWarpBytes;
    static constexpr int kPiece = 16 / int(sizeof(In));         // elements in one 16-byte copy
    static constexpr bool kVec = CW % kPiece == 0 && NT % kPiece == 0;
    static_assert(NS % 4 == 0, "B / C are read four at a time");
    static_assert(TT % K == 0, "each lane of a channel takes whole steps of a tile");
    static_assert(kStageElems * int(sizeof(In)) % 16 == 0, "stages stay 16-byte aligned");
};

// One level of recursive halving: of each pair of sums (acc[2i], acc[2i+1]) this lane keeps
// one (the second if `hi`) and sends the other to the lane `mask` away, which keeps the other;
// acc[i] then holds the pair's total over the two lanes.
template <int PAIRS, int TT>
__device__ __forceinline__ void halve(float (&acc)[TT], bool hi, int mask) {
#pragma unroll
    for (int i = 0; i < PAIRS; ++i) {
        const float keep = hi ? acc[2 * i + 1] : acc[2 * i];
        const float send = hi ? acc[2 * i] : acc[2 * i + 1];
        acc[i] = keep + __shfl_xor_sync(0xffffffffu, send, mask);
    }
}

// acc[j] holds this lane's part of step j's sum; afterwards acc[m] holds the whole sum of step
// j = k + K·m over the channel's K lanes (lanes CW apart).
template <int K, int CW, int TT>
__device__ __forceinline__ void channel_reduce(float (&acc)[TT], int k) {
    if constexpr (K >= 2) halve<TT / 2>(acc, k & 1, CW);      // acc[i]: step 2i + (k & 1)
    if constexpr (K >= 4) halve<TT / 4>(acc, k & 2, 2 * CW);  // acc[i]: step 4i + k
    static_assert(K == 1 || K == 2 || K == 4, "one, two or four lanes per channel");
}

template <int NS, int K, class In>
__global__ void __launch_bounds__(kSeqWarps * 32) scan_sequences(const ScanParams<In> p) {
    using Lay = SeqLayout<NS, K, In>;
    constexpr int CW = Lay::CW, NT = Lay::NT, TT = Lay::TT, M = TT / K;
    extern __shared__ float4 smem_f4[];
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) & 31;
    const int slices = (p.E + CW - 1) / CW;
    const int64_t task = int64_t(blockIdx.x) * kSeqWarps + warp;
    if (task >= int64_t(p.B) * p.nseg * slices) return;  // whole warps only; no block barrier below
    const int64_t bs = task / slices;                     // b·nseg + segment
    const int seg = int(bs % p.nseg), b = int(bs / p.nseg);
    const int e0 = int(task % slices) * CW;
    const int64_t tb = seg * p.seg_len;                   // the segment's first step
    const int64_t len = min(p.seg_len, p.L - tb);         // and its length
    const int c = lane % CW, k = lane / CW;
    const int e = e0 + c;
    const bool active = e < p.E;
    const int ec = min(e, p.E - 1);  // for per-channel loads

    char* const wbase = reinterpret_cast<char*>(smem_f4) + warp * Lay::kWarpBytes;
    In* const stages = reinterpret_cast<In*>(wbase);
    float* const delta = reinterpret_cast<float*>(wbase + Lay::kInBytes);  // [TT][CW]
    float* const dus = delta + TT * CW;                                     // [TT][CW]
    // Slots no copy fills (channels past E, states past N) stay zero.
    for (int i = lane; i < Lay::kInBytes / 16; i += 32)
        reinterpret_cast<float4*>(stages)[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    __syncwarp();

    const int64_t r0 = int64_t(b) * p.L + tb;  // row of the segment's first step
    const int64_t tiles = (len + TT - 1) / TT;
    constexpr int kPiece = Lay::kPiece;

    // The 16-byte copies (p.vec), worked out once: this lane's pieces of a tile, each with its
    // source in the next tile to issue, the distance to the one after, its place in a stage and
    // its step in the tile (TT where it falls outside E or N: never copied).
    constexpr int P = Lay::kVec ? CW / kPiece : 1, PB = Lay::kVec ? NT / kPiece : 1;
    constexpr int MC = (3 * TT * P + 31) / 32, MB = (2 * TT * PB + 31) / 32;
    const In* vsrc[MC + MB];
    int64_t vadv[MC + MB];
    int vdst[MC + MB], vrow[MC + MB];
#pragma unroll
    for (int m = 0; m < MC; ++m) {  // Δ, u, z: rows of P pieces
        const int i = lane + 32 * m;
        const int piece = i % P, row = i / P, a = min(row / TT, 2), j = row % TT;
        const int ee = e0 + kPiece * piece;
        const int64_t stride = a == 0 ? p.dt_stride : a == 1 ? p.u_stride : p.z_stride;
        const bool ok = i < 3 * TT * P && ee < p.E;
        vsrc[m] = (a == 0 ? p.dt : a == 1 ? p.u : p.z) + (r0 + j) * stride + (ok ? ee : 0);
        vadv[m] = TT * stride;
        vdst[m] = (a * TT + j) * CW + kPiece * piece;
        vrow[m] = ok ? j : TT;
    }
#pragma unroll
    for (int m = 0; m < MB; ++m) {  // B, C: rows of PB pieces
        const int i = lane + 32 * m;
        const int q = i % PB, row = i / PB, which = min(row / TT, 1), j = row % TT;
        const int n = kPiece * q;
        const bool ok = i < 2 * TT * PB && n < p.N;
        vsrc[MC + m] = (which ? p.Cm : p.Bm) + (r0 + j) * p.bc_stride + (ok ? n : 0);
        vadv[MC + m] = TT * p.bc_stride;
        vdst[MC + m] = 3 * TT * CW + (which * TT + j) * NT + n;
        vrow[MC + m] = ok ? j : TT;
    }

    // Start the copies of tile kt into the next stage (an empty group past the end, so that
    // every iteration waits for the same count). Called for kt = 0, 1, 2, ... in turn.
    int issue_stage = 0;
    auto issue = [&](int64_t kt) {
        if (kt < tiles) {
            In* const buf = stages + issue_stage * Lay::kStageElems;
            issue_stage = issue_stage + 1 == kSeqStages ? 0 : issue_stage + 1;
            const int64_t t0 = kt * TT;
            const int nj = int(min(int64_t(TT), len - t0));
            const int64_t rk = r0 + t0;
            In* const bcbuf = buf + 3 * TT * CW;
            auto base = [&](int a) { return a == 0 ? p.dt : a == 1 ? p.u : p.z; };
            auto stride = [&](int a) { return a == 0 ? p.dt_stride : a == 1 ? p.u_stride : p.z_stride; };
            bool copied = false;
            if constexpr (Lay::kVec) {
                if (p.vec) {
#pragma unroll
                    for (int m = 0; m < MC + MB; ++m) {
                        if (vrow[m] < nj) cp_async16(buf + vdst[m], vsrc[m]);
                        vsrc[m] += vadv[m];
                    }
                    copied = true;
                }
            }
        if (!copied) {
                auto put = [](In* dst, const In* src) {
                    if constexpr (sizeof(In) == 4) cp_async4(reinterpret_cast<float*>(dst), reinterpret_cast<const float*>(src));
                    else *dst = *src;
                };
                for (int i = lane; i < 3 * TT * CW; i += 32) {
                    const int cc = i % CW, row = i / CW, a = row / TT, j = row % TT;
                    if (j < nj && e0 + cc < p.E) put(buf + (a * TT + j) * CW + cc, base(a) + (rk + j) * stride(a) + e0 + cc);
                }
                for (int i = lane; i < 2 * TT * NT; i += 32) {
                    const int n = i % NT, row = i / NT, which = row / TT, j = row % TT;
                    if (j < nj && n < p.N)
                        put(bcbuf + (which * TT + j) * NT + n, (which ? p.Cm : p.Bm) + (rk + j) * p.bc_stride + n);
                }
            }
        }
        cp_async_commit();
    };

    float a2[NS], s[NS];
#pragma unroll
    for (int i = 0; i < NS; ++i) {
        const int n = k * NS + i;
        const bool live = active && n < p.N;
        a2[i] = live ? p.A2[int64_t(e) * p.N + n] : 0.0f;
        s[i] = live && seg == 0 ? p.state[(int64_t(b) * p.N + n) * p.E + e] : 0.0f;
    }
    const float bias = p.dt_bias[ec];
    const float Dv = p.D[ec];
    float sum_dt = 0.0f;  // over this lane's cells
    // The next chunk start at or after the segment's start, as a step of the segment.
    const int64_t first_chunk = (tb + p.T - 1) / p.T;
    int64_t mark = first_chunk * p.T - tb;
    float* chunk_out = p.chunk_state + (int64_t(b) * p.nc + first_chunk) * p.N * p.E + e;

#pragma unroll
    for (int i = 0; i < kSeqStages - 1; ++i) issue(i);
    int stage = 0;
    for (int64_t kt = 0; kt < tiles; ++kt) {
        issue(kt + kSeqStages - 1);
        cp_async_wait<kSeqStages - 1>();  // tile kt has landed (this lane's copies) ...
        __syncwarp();                     // ... and every lane's
        const In* const buf = stages + stage * Lay::kStageElems;
        stage = stage + 1 == kSeqStages ? 0 : stage + 1;
        const int64_t t0 = kt * TT;
        const int nj = int(min(int64_t(TT), len - t0));

        // Prologue: this lane's cells of the tile. Computed for every cell and zeroed past the
        // end by a factor, not a branch (a branch per cell doubled the prologue's instructions);
        // the rows past the end hold finite data of an earlier tile or zeros.
        float gate[M], du_D[M];
#pragma unroll
        for (int m = 0; m < M; ++m) {
            const int j = k + K * m;
            const float keep = j < nj ? 1.0f : 0.0f;
            const float x = to_f(buf[(TT + j) * CW + c]);
            const float d = softplus_ex2(to_f(buf[j * CW + c]) + bias) * keep;
            sum_dt += d;
            delta[j * CW + c] = d;
            dus[j * CW + c] = d * x;
            du_D[m] = Dv * x;
            gate[m] = silu(to_f(buf[(2 * TT + j) * CW + c]));
        }
        __syncwarp();

        // The steps: every state of this lane, a partial y per step (two sums, so that the
        // chain of adds is half as long).
        const In* const Bv = buf + 3 * TT * CW + k * NS;
        const In* const Cv = Bv + TT * NT;
        float acc[TT];
        auto step = [&](int j) {
            const float d = delta[j * CW + c];
            const float x = dus[j * CW + c];
            float part0 = 0.0f, part1 = 0.0f;
#pragma unroll
            for (int q = 0; q < NS / 4; ++q) {
                const float4 bq = load4(Bv + j * NT + 4 * q);
                const float4 cq = load4(Cv + j * NT + 4 * q);
                s[4 * q + 0] = fmaf(ex2(d * a2[4 * q + 0]), s[4 * q + 0], x * bq.x);
                s[4 * q + 1] = fmaf(ex2(d * a2[4 * q + 1]), s[4 * q + 1], x * bq.y);
                s[4 * q + 2] = fmaf(ex2(d * a2[4 * q + 2]), s[4 * q + 2], x * bq.z);
                s[4 * q + 3] = fmaf(ex2(d * a2[4 * q + 3]), s[4 * q + 3], x * bq.w);
                part0 = fmaf(s[4 * q + 0], cq.x, part0);
                part1 = fmaf(s[4 * q + 1], cq.y, part1);
                part0 = fmaf(s[4 * q + 2], cq.z, part0);
                part1 = fmaf(s[4 * q + 3], cq.w, part1);
            }
            acc[j] = part0 + part1;
        };
        // Where a chunk starts, its start state is kept for the backward. The steps of a tile
        // with no chunk start inside run without a branch, so the compiler can overlap them.
        auto keep_start = [&] {
            if (active)
#pragma unroll
                for (int i = 0; i < NS; ++i)
                    if (k * NS + i < p.N) chunk_out[int64_t(k * NS + i) * p.E] = s[i];
            chunk_out += int64_t(p.N) * p.E;
            mark += p.T;
        };
        if (t0 == mark) keep_start();
        if (mark >= t0 + nj) {
#pragma unroll
            for (int j = 0; j < TT; ++j) step(j);
        } else {
#pragma unroll
            for (int j = 0; j < TT; ++j) {
                if (j < nj && t0 + j == mark) keep_start();
                step(j);
            }
        }
        __syncwarp();  // every lane is done with this stage and with Δ / Δ·u

        // Epilogue: whole sums, then y for this lane's cells.
        channel_reduce<K, CW, TT>(acc, k);
        float* const yt = p.y + (r0 + t0) * p.y_stride + e;
#pragma unroll
        for (int m = 0; m < M; ++m) {
            const int j = k + K * m;
            if (active && j < nj) yt[int64_t(j) * p.y_stride] = (acc[m] + du_D[m]) * gate[m];
        }
    }
    if (p.nseg == 1) {
        if (active)
#pragma unroll
            for (int i = 0; i < NS; ++i)
                if (k * NS + i < p.N) p.state[(int64_t(b) * p.N + k * NS + i) * p.E + e] = s[i];
        return;
    }
    // Segments: the end state (from zero, or from the carried state for the first) and ΣΔ.
    if (K >= 2) sum_dt += __shfl_xor_sync(0xffffffffu, sum_dt, CW);
    if (K >= 4) sum_dt += __shfl_xor_sync(0xffffffffu, sum_dt, 2 * CW);
    if (active) {
#pragma unroll
        for (int i = 0; i < NS; ++i)
            if (k * NS + i < p.N) p.seg_state[(bs * p.N + k * NS + i) * p.E + e] = s[i];
        if (k == 0) p.seg_dt[bs * p.E + e] = sum_dt;
    }
}

// Segments, step 2: per (b, n, e), the segments in order. Segment 0 began from the carried
// state, so its end is true; each later one's true end is its end from zero plus the true
// start decayed over it, exp2(A2·ΣΔ)·start. Each segment's slot gets its true start; the
// last true end is the new carried state.
template <class In>
__global__ void __launch_bounds__(256) combine_segments(const ScanParams<In> p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.N * p.E) return;
    const int e = int(g % p.E);
    const int n = int((g / p.E) % p.N);
    const int b = int(g / (int64_t(p.E) * p.N));
    const float a2 = p.A2[int64_t(e) * p.N + n];
    const int64_t stride = int64_t(p.N) * p.E;
    float* ss = p.seg_state + (int64_t(b) * p.nseg * p.N + n) * p.E + e;
    const float* sd = p.seg_dt + int64_t(b) * p.nseg * p.E + e;
    // the first segment ran from the carried state; each later one's start replaces its end
    // from zero
    p.state[(int64_t(b) * p.N + n) * p.E + e] =
        fold_chain<true>(ss[0], p.nseg - 1, a2, ss + stride, stride, sd + p.E, p.E);
}

// Segments, step 3: every segment after the first ran from zero; its true state is that plus
// P_t ⊙ h, h its true start and P_t = Π exp2(Δ·A2) over its steps so far. So each output gets
// (C_t·(P_t ⊙ h))·SiLU(z_t) added, and each chunk start state inside it P ⊙ h, until P ⊙ h has
// decayed below 2^-24 of h's largest state in every lane of the warp (float rounding of the
// state it is added to): from there on the term cannot change a float. Δ > 0 and A < 0, so P
// only falls. Lanes as in scan_sequences (K per channel, NS states each); groups of kFixSteps
// steps load first (from clamped rows, so all loads are in flight at once), then compute.
constexpr int kFixSteps = 8;
template <int NS, int K, class In>
__global__ void __launch_bounds__(kSeqWarps * 32) fix_segments(const ScanParams<In> p) {
    constexpr int CW = 32 / K, G = NS >= 16 ? kFixSteps / 2 : kFixSteps;  // (C of 16 states: registers)
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) & 31;
    const int slices = (p.E + CW - 1) / CW;
    const int64_t task = int64_t(blockIdx.x) * kSeqWarps + warp;
    if (task >= int64_t(p.B) * (p.nseg - 1) * slices) return;
    const int64_t q = task / slices;
    const int seg = 1 + int(q % (p.nseg - 1)), b = int(q / (p.nseg - 1));
    const int64_t bs = int64_t(b) * p.nseg + seg;
    const int c = lane % CW, k = lane / CW;
    const int e = int(task % slices) * CW + c;
    const bool active = e < p.E;
    const int ec = min(e, p.E - 1);
    const int64_t tb = seg * p.seg_len, len = min(p.seg_len, p.L - tb);
    const int64_t r0 = int64_t(b) * p.L + tb;

    float h[NS], P[NS], a2[NS];
    float hmax = 0.0f;
#pragma unroll
    for (int i = 0; i < NS; ++i) {
        const int n = k * NS + i;
        const bool live = active && n < p.N;
        h[i] = live ? p.seg_state[(bs * p.N + n) * p.E + e] : 0.0f;
        a2[i] = live ? p.A2[int64_t(e) * p.N + n] : 0.0f;
        P[i] = live ? 1.0f : 0.0f;
        hmax = fmaxf(hmax, fabsf(h[i]));
    }
    const float tol = hmax * 0x1p-24f;
    const float bias = p.dt_bias[ec];
    const int64_t first_chunk = (tb + p.T - 1) / p.T;
    int64_t mark = first_chunk * p.T - tb;
    float* chunk_out = p.chunk_state + (int64_t(b) * p.nc + first_chunk) * p.N * p.E + e;

    for (int64_t t0 = 0; t0 < len; t0 += G) {
        float dtv[G], zv[G], yv[G], cv[G][NS];
#pragma unroll
        for (int g = 0; g < G; ++g) {
            const int64_t r = r0 + min(t0 + g, len - 1);
            dtv[g] = to_f(p.dt[r * p.dt_stride + ec]);
            zv[g] = to_f(p.z[r * p.z_stride + ec]);
            yv[g] = p.y[r * p.y_stride + ec];
#pragma unroll
            for (int i = 0; i < NS; ++i) cv[g][i] = to_f(p.Cm[r * p.bc_stride + min(k * NS + i, p.N - 1)]);
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
            const bool valid = t0 + g < len;
            if (valid && t0 + g == mark) {  // a chunk starts here: its start state gets P ⊙ h
                if (active)
#pragma unroll
                    for (int i = 0; i < NS; ++i)
                        if (k * NS + i < p.N) chunk_out[int64_t(k * NS + i) * p.E] += P[i] * h[i];
                chunk_out += int64_t(p.N) * p.E;
                mark += p.T;
            }
            const float d = valid ? softplus_ex2(dtv[g] + bias) : 0.0f;
            float part = 0.0f;
#pragma unroll
            for (int i = 0; i < NS; ++i) {
                P[i] *= ex2(d * a2[i]);
                part = fmaf(cv[g][i] * P[i], h[i], part);
            }
            if (K >= 2) part += __shfl_xor_sync(0xffffffffu, part, CW);
            if (K >= 4) part += __shfl_xor_sync(0xffffffffu, part, 2 * CW);
            if (valid && active && k == 0)
                p.y[(r0 + t0 + g) * p.y_stride + e] = yv[g] + part * silu(zv[g]);
        }
        bool live = false;
#pragma unroll
        for (int i = 0; i < NS; ++i) live = live || P[i] * fabsf(h[i]) > tol;
        if (!__any_sync(0xffffffffu, live)) break;
    }
}

// Passes 2a and 2c, thread g's (b, group gi, n, e): the state's A2, the group's chunks
// [c0, c1) and bc0 = b·nc + c0.
struct GroupChunks {
    int b, gi, n, e;
    float a2;
    int c0, c1;
    int64_t bc0;
};
template <class In>
__device__ __forceinline__ GroupChunks group_chunks(const ScanParams<In>& p, int64_t g) {
    const auto [b, gi, n, e] = group_cell(g, p.E, p.N, p.G);
    const int c0 = gi * p.S;
    return {b, gi, n, e, p.A2[int64_t(e) * p.N + n], c0, min(c0 + p.S, p.nc), int64_t(b) * p.nc + c0};
}

// Pass 2a: per (b, group, n, e), fold the group's chunks from the zero state.
template <class In>
__global__ void __launch_bounds__(kCombineThreads) combine_within_groups(const ScanParams<In> p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.G * p.N * p.E) return;
    const auto [b, gi, n, e, a2, c0, c1, bc0] = group_chunks(p, g);
    // (ΣΔ₁, s₁)∘(ΣΔ₂, s₂) = (ΣΔ₁+ΣΔ₂, exp2(A2·ΣΔ₂)·s₁ + s₂) over the group's chunks
    float total_dt = 0.0f;
    const float s = fold_chain<false>(0.0f, c1 - c0, a2, p.chunk_state + (bc0 * p.N + n) * p.E + e,
                                      int64_t(p.N) * p.E, p.chunk_dt + bc0 * p.E + e, p.E, &total_dt);
    const int64_t gidx = ((int64_t(b) * p.G + gi) * p.N + n) * p.E + e;
    p.group_state[gidx] = s;
    p.group_dt[gidx] = total_dt;
}

// Pass 2b: per (b, n, e), the groups in sequence from the carried state: each group's start
// state replaces its end-from-zero; the state after the last group is the new carried state.
template <class In>
__global__ void __launch_bounds__(kCombineThreads) combine_groups_in_sequence(const ScanParams<In> p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.N * p.E) return;
    const int e = int(g % p.E);
    const int64_t q = g / p.E;
    const int n = int(q % p.N);
    const int b = int(q / p.N);
    const float a2 = p.A2[int64_t(e) * p.N + n];
    const int64_t stride = int64_t(p.N) * p.E;  // from one group to the next
    const int64_t first = (int64_t(b) * p.G * p.N + n) * p.E + e;
    // state is [B][N][E]: index g
    p.state[g] = fold_chain<true>(p.state[g], p.G, a2, p.group_state + first, stride, p.group_dt + first, stride);
}

// Pass 2c: per (b, group, n, e), the chunks of the group in sequence from the group's start:
// each chunk's start state replaces its end-from-zero.
template <class In>
__global__ void __launch_bounds__(kCombineThreads) combine_chunks_in_groups(const ScanParams<In> p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.G * p.N * p.E) return;
    const auto [b, gi, n, e, a2, c0, c1, bc0] = group_chunks(p, g);
    const int64_t stride = int64_t(p.N) * p.E;  // chunk states: c·N·E apart; ΣΔ: c·E
    fold_chain<true>(p.group_state[((int64_t(b) * p.G + gi) * p.N + n) * p.E + e], c1 - c0, a2,
                     p.chunk_state + (bc0 * p.N + n) * p.E + e, stride, p.chunk_dt + bc0 * p.E + e, p.E);
}

// Pass 3: chunk c of sequence b from its true start state, states [n0, n0+NT):
//   s = exp2(Δ·A2) ⊙ s + (Δ·u)·B_t;   y = s·C_t (+ D·u for the first group, + y so far for
//   later ones);  y ⊙= SiLU(z) for the last group.
template <int NT, class In>
__global__ void __launch_bounds__(kScanThreads) scan_chunks_output(const ScanParams<In> p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.nc * p.E) return;
    const int e = int(g % p.E);
    const int64_t bc = g / p.E;
    const int c = int(bc % p.nc);
    const int b = int(bc / p.nc);
    const int n0 = p.n0;
    const int nn = min(NT, p.N - n0);

    float a2[NT], s[NT];
    const float* start = p.chunk_state + (bc * p.N + n0) * p.E + e;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
        a2[n] = n < nn ? p.A2[int64_t(e) * p.N + n0 + n] : 0.0f;
        s[n] = n < nn ? start[int64_t(n) * p.E] : 0.0f;
    }
    const float bias = p.dt_bias[e];
    const float Dv = p.D[e];
    const int64_t t0 = int64_t(c) * p.T;
    const int64_t r0 = int64_t(b) * p.L + t0;
    const int64_t r1 = int64_t(b) * p.L + min(t0 + p.T, p.L);
    for (int64_t r = r0; r < r1; ++r) {
        const float dt = softplus_ex2(to_f(p.dt[r * p.dt_stride + e]) + bias);
        const float x = to_f(p.u[r * p.u_stride + e]);
        const float du = dt * x;
        const In* Bt = p.Bm + r * p.bc_stride + n0;
        const In* Ct = p.Cm + r * p.bc_stride + n0;
        float acc = 0.0f;
#pragma unroll
        for (int n = 0; n < NT; ++n)
            if (n < nn) {
                s[n] = fmaf(ex2(dt * a2[n]), s[n], du * to_f(Bt[n]));
                acc = fmaf(s[n], to_f(Ct[n]), acc);
            }
        float* yp = p.y + r * p.y_stride + e;
        acc += p.first_group ? Dv * x : *yp;
        if (p.last_group) acc *= silu(to_f(p.z[r * p.z_stride + e]));
        *yp = acc;
    }
}

int64_t blocks_for(int64_t threads, int per_block) { return (threads + per_block - 1) / per_block; }

template <int NT, class In>
void run_passes(ScanParams<In> p, int variant, cudaStream_t stream) {
    const int groups = (p.N + NT - 1) / NT;
    const int64_t chunk_threads = int64_t(p.B) * p.nc * p.E;
    const int64_t warp_tasks = int64_t(p.B) * p.nc * ((p.E + 31) / 32);
    const unsigned tile_blocks = unsigned(blocks_for(warp_tasks, kTileWarps));
    if (variant == 1) {
        const dim3 grid(unsigned(blocks_for(chunk_threads, kScanThreads)), unsigned(groups));
        scan_chunks_from_zero<NT, In><<<grid, kScanThreads, 0, stream>>>(p);
    } else {
        const dim3 grid(tile_blocks, unsigned(groups));
        scan_tiles<NT, kPass1, In><<<grid, kTileWarps * 32, TileLayout<NT, false, In>::kBlockBytes, stream>>>(p);
    }
    MW_CUDA_CHECK_LAUNCH();

    const int64_t group_threads = int64_t(p.B) * p.G * p.N * p.E;
    const int64_t chain_threads = int64_t(p.B) * p.N * p.E;
    combine_within_groups<In><<<unsigned(blocks_for(group_threads, kCombineThreads)), kCombineThreads, 0,
                            stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
    combine_groups_in_sequence<In><<<unsigned(blocks_for(chain_threads, kCombineThreads)),
                                 kCombineThreads, 0, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
    combine_chunks_in_groups<In><<<unsigned(blocks_for(group_threads, kCombineThreads)),
                               kCombineThreads, 0, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();

    // y accumulates over the state groups in order, so these launches follow one another.
    for (int gi = 0; gi < groups; ++gi) {
        p.n0 = gi * NT;
        p.first_group = gi == 0;
        p.last_group = gi == groups - 1;
        if (variant == 1)
            scan_chunks_output<NT, In><<<unsigned(blocks_for(chunk_threads, kScanThreads)), kScanThreads, 0,
                                         stream>>>(p);
        else if (groups == 1)
            scan_tiles<NT, kPass3, In><<<tile_blocks, kTileWarps * 32, TileLayout<NT, true, In>::kBlockBytes,
                                         stream>>>(p);
        else if constexpr (NT == 32)  // more than one group only with groups of 32 states
            scan_tiles<NT, kPass3Groups, In><<<tile_blocks, kTileWarps * 32, TileLayout<NT, true, In>::kBlockBytes,
                                               stream>>>(p);
        MW_CUDA_CHECK_LAUNCH();
    }
}

// The single pass's launch for NS states on each of K lanes per channel.
template <int NS, int K, class In>
void launch_sequences(const ScanParams<In>& p, cudaStream_t stream) {
    using Lay = SeqLayout<NS, K, In>;
    if constexpr (Lay::kBlockBytes > 48 * 1024)
        MW_CUDA_CHECK(cudaFuncSetAttribute(scan_sequences<NS, K, In>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           Lay::kBlockBytes));
    const int64_t slices = (p.E + Lay::CW - 1) / Lay::CW;
    const int64_t warps = int64_t(p.B) * p.nseg * slices;
    scan_sequences<NS, K, In><<<unsigned(blocks_for(warps, kSeqWarps)), kSeqWarps * 32, Lay::kBlockBytes, stream>>>(p);
    MW_CUDA_CHECK_LAUNCH();
    if (p.nseg > 1) {
        combine_segments<In><<<unsigned(blocks_for(int64_t(p.B) * p.N * p.E, 256)), 256, 0, stream>>>(p);
        MW_CUDA_CHECK_LAUNCH();
        const int64_t fix_warps = int64_t(p.B) * (p.nseg - 1) * slices;
        fix_segments<NS, K, In><<<unsigned(blocks_for(fix_warps, kSeqWarps)), kSeqWarps * 32, 0, stream>>>(p);
        MW_CUDA_CHECK_LAUNCH();
    }
}

// States per channel the single pass covers for d_state N (0: more than it holds).
int seq_states(int N) { return N <= 4 ? 4 : N <= 8 ? 8 : N <= 16 ? 16 : N <= 32 ? 32 : 0; }

template <class In>
void run_sequences(const ScanParams<In>& p, int K, cudaStream_t stream) {
    switch (seq_states(p.N) * 8 + K) {
    case 4 * 8 + 1: launch_sequences<4, 1>(p, stream); break;
    case 8 * 8 + 1: launch_sequences<8, 1>(p, stream); break;
    case 8 * 8 + 2: launch_sequences<4, 2>(p, stream); break;
    case 16 * 8 + 1: launch_sequences<16, 1>(p, stream); break;
    case 16 * 8 + 2: launch_sequences<8, 2>(p, stream); break;
    case 16 * 8 + 4: launch_sequences<4, 4>(p, stream); break;
    case 32 * 8 + 2: launch_sequences<16, 2>(p, stream); break;
    case 32 * 8 + 4: launch_sequences<8, 4>(p, stream); break;
    default: throw std::logic_error("selective_scan: no single-pass kernel for N " + std::to_string(p.N) +
                                    " with " + std::to_string(K) + " lanes per channel");
    }
}

// Multiprocessors of the current device (asked once per device).
int device_sm_count() {
    int dev = 0;
    MW_CUDA_CHECK(cudaGetDevice(&dev));
    static std::atomic<int> cache[64] = {};
    if (dev >= 0 && dev < 64 && cache[dev].load(std::memory_order_relaxed) > 0)
        return cache[dev].load(std::memory_order_relaxed);
    int sms = 0;
    MW_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    if (dev >= 0 && dev < 64) cache[dev].store(sms, std::memory_order_relaxed);
    return std::max(sms, 1);
}

} // namespace

int scan_single_pass_lanes(int B, int E, int N, int sm_count, int variant, int lanes) {
    if (B <= 0 || E <= 0 || N <= 0 || (variant != 0 && variant != 3)) return 0;
    const int NT = seq_states(N);
    if (NT == 0) return 0;
    auto allowed = [&](int K) { return (K == 1 || K == 2 || K == 4) && NT / K >= 4 && NT / K <= 16; };
    if (lanes != 0) return variant == 3 && allowed(lanes) ? lanes : 0;
    // Warps spread over the schedulers (four per multiprocessor): at least 1.75 each for the
    // auto choice (measured on an H200: 1.9 per scheduler ran 4% faster than the chunked
    // passes, 1.45 twice as slow: too few warps leave the exp unit idle while each waits), and
    // of the lane counts that reach it, the one that fills the last round of warps best,
    // counting idle lanes (channels past E); fewer lanes on a tie.
    const int64_t schedulers = 4 * int64_t(std::max(sm_count, 1));
    int best = 0;
    double best_score = -1;
    for (int K : {1, 2, 4}) {
        if (!allowed(K)) continue;
        const int CW = 32 / K;
        const int64_t slices = (E + CW - 1) / CW, warps = int64_t(B) * slices;
        if (variant == 0 && 4 * warps < 7 * schedulers) continue;
        const double rounds = double((warps + schedulers - 1) / schedulers);
        const double score = double(warps) / (rounds * double(schedulers)) * double(E) / double(slices * CW);
        if (score > best_score + 0.02) {
            best_score = score;
            best = K;
        }
    }
    return best;
}

ScanSegmentPlan scan_segment_plan(int B, int64_t L, int E, int N, int64_t segment_steps) {
    ScanSegmentPlan plan;
    const int NT = seq_states(N);
    if (B <= 0 || L <= 0 || E <= 0 || NT == 0 || segment_steps < 0) return plan;
    plan.lanes = NT >= 8 ? 2 : 1;  // 2 lanes per channel were best where warps were plenty
    if (segment_steps > 0) {
        plan.seg_len = segment_steps;
    } else {
        // About 2048 warps (three or more per scheduler on an H100 or H200), in segments of
        // at least 2048 steps, so that the mending after each (a few hundred steps where
        // the state decays at the rates trained models have) stays a small part of it.
        const int64_t per_segment = int64_t(B) * ((E + 32 / plan.lanes - 1) / (32 / plan.lanes));
        const int64_t want = std::max<int64_t>(1, (2048 + per_segment - 1) / per_segment);
        plan.seg_len = std::max<int64_t>(2048, ((L + want - 1) / want + 15) / 16 * 16);
    }
    plan.nseg = (L + plan.seg_len - 1) / plan.seg_len;
    return plan;
}

ScanChoice scan_choice(int B, int64_t L, int E, int N, int sm_count, int variant, int lanes, int64_t segment_steps) {
    ScanChoice c;
    c.lanes = scan_single_pass_lanes(B, E, N, sm_count, variant, lanes);
    if (c.lanes > 0) {
        c.mode = ScanChoice::whole;
        c.seg_len = L;
        c.nseg = 1;
        return c;
    }
    // Segments only when asked for (variant 4): their mending runs until the carried-in state
    // has decayed, which for a model's slow states is the whole segment, so they lost to the
    // chunked passes on the renders measured (kernels/cuda/NOTES.md).
    const ScanSegmentPlan plan = scan_segment_plan(B, L, E, N, segment_steps);
    if (variant == 4 && plan.lanes > 0) {
        c.mode = plan.nseg > 1 ? ScanChoice::segments : ScanChoice::whole;
        c.lanes = plan.lanes;
        c.seg_len = plan.seg_len;
        c.nseg = plan.nseg;
        return c;
    }
    c.mode = ScanChoice::chunked;
    return c;
}

void scan_group_split(int64_t nc, int64_t& S, int64_t& G) {
    S = std::max<int64_t>(1, int64_t(std::ceil(std::sqrt(double(nc)))));
    while (S * S < nc) ++S;
    G = (nc + S - 1) / S;
}

ScanWorkspaceSize scan_workspace_size(int B, int64_t L, int E, int N, int T, int64_t segment_steps) {
    ScanWorkspaceSize w;
    if (B <= 0 || L <= 0 || E <= 0 || N <= 0 || T <= 0) return w;
    const ScanSegmentPlan plan = scan_segment_plan(B, L, E, N, segment_steps);
    if (plan.nseg > 1) {
        w.seg_state = int64_t(B) * plan.nseg * N * E;
        w.seg_dt = int64_t(B) * plan.nseg * E;
    }
    int64_t S = 1, G = 1;
    w.chunks = (L + T - 1) / T;
    scan_group_split(w.chunks, S, G);
    w.groups = G;
    w.chunk_state = int64_t(B) * w.chunks * N * E;
    w.chunk_dt = int64_t(B) * w.chunks * E;
    w.group_state = int64_t(B) * G * N * E;
    w.group_dt = w.group_state;
    return w;
}

namespace {

// Blocks of the variant-2 kernel that fit on one multiprocessor (from the occupancy API, once).
template <int NT, int MODE>
int tile_blocks_per_sm() {
    static const int blocks = [] {
        int b = 0;
        MW_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &b, scan_tiles<NT, MODE, float>, kTileWarps * 32, TileLayout<NT, MODE != kPass1, float>::kBlockBytes));
        return std::max(b, 1);
    }();
    return blocks;
}

template <int NT>
void resident_warps(int sm_count, int64_t& pass1, int64_t& pass3) {
    pass1 = int64_t(sm_count) * kTileWarps * tile_blocks_per_sm<NT, kPass1>();
    pass3 = int64_t(sm_count) * kTileWarps * tile_blocks_per_sm<NT, kPass3>();
}

} // namespace

int auto_scan_chunk(int B, int64_t L, int E, int N, int sm_count, int variant) {
    if (L <= 0) return 1;
    // The single pass does not cut time: the chunk only spaces the start states it keeps.
    if (scan_choice(B, L, E, N, sm_count, variant).mode == ScanChoice::whole) return int(std::min<int64_t>(L, 1 << 30));
    if (variant == 1) {
        // About 1024 threads per multiprocessor (two or more waves at the passes' occupancy);
        // longer chunks where that still holds (less per-chunk state traffic, 2048 at most).
        const int64_t target = int64_t(std::max(sm_count, 1)) * 1024;
        int T = 2048;
        while (T > 64 && int64_t(B) * E * ((L + T - 1) / T) < target) T /= 2;
        return T;
    }
    // Variant 2: every (b, chunk, 32-channel slice) is one warp's task of about equal length,
    // so the passes take whole waves of resident warps: pick the chunk count whose tasks fill
    // their last wave best, weighed against the per-chunk overhead (about N+1 floats of
    // chunk state per channel, written, combined and read back), chunks of 64..2048 steps.
    int64_t w1 = 1, w3 = 1;
    if (N <= 4) resident_warps<4>(sm_count, w1, w3);
    else if (N <= 8) resident_warps<8>(sm_count, w1, w3);
    else if (N <= 16) resident_warps<16>(sm_count, w1, w3);
    else resident_warps<32>(sm_count, w1, w3);
    const int64_t per_chunk = int64_t(B) * ((E + 31) / 32);
    const int64_t nc_lo = (L + 2047) / 2048, nc_hi = std::max(nc_lo, (L + 63) / 64);
    auto fill = [](int64_t tasks, int64_t w) { return double(tasks) / double((tasks + w - 1) / w * w); };
    int64_t best_T = (L + nc_lo - 1) / nc_lo;
    double best = -1;
    for (int64_t nc = nc_lo; nc <= nc_hi; ++nc) {
        const int64_t T = (L + nc - 1) / nc;
        const int64_t tasks = per_chunk * ((L + T - 1) / T);
        const double score = (0.6 * fill(tasks, w3) + 0.4 * fill(tasks, w1)) * double(T) / double(T + N + 1);
        if (score > best + 1e-9) {
            best = score;
            best_T = T;
        }
    }
    return int(best_T);
}

namespace {

// One scan with inputs of type In (selective_scan has checked the sizes and pointers).
template <class In>
void launch(const ScanProblem& q, const In* dt, const In* u, const In* z, const In* Bm, const In* Cm, int T,
            const ScanWorkspaceSize& w, float* workspace, cudaStream_t stream) {
    ScanParams<In> p{};
    p.B = q.B;
    p.E = q.E;
    p.N = q.N;
    p.L = q.L;
    p.T = T;
    p.nc = int(w.chunks);
    int64_t S = 1, G = 1;
    scan_group_split(w.chunks, S, G);
    p.S = int(S);
    p.G = int(G);
    p.dt = dt;  p.dt_stride = q.dt_stride;
    p.u = u;    p.u_stride = q.u_stride;
    p.z = z;    p.z_stride = q.z_stride;
    p.Bm = Bm;
    p.Cm = Cm;  p.bc_stride = q.bc_stride;
    p.y = q.y;  p.y_stride = q.y_stride;
    p.A2 = q.A2;
    p.D = q.D;
    p.dt_bias = q.dt_bias;
    p.state = q.state;
    auto aligned16 = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; };
    constexpr int piece = 16 / int(sizeof(In));
    p.vec = q.E % piece == 0 && q.N % piece == 0 && q.dt_stride % piece == 0 && q.u_stride % piece == 0 &&
            q.z_stride % piece == 0 && q.bc_stride % piece == 0 && aligned16(dt) && aligned16(u) &&
            aligned16(z) && aligned16(Bm) && aligned16(Cm);
    p.chunk_state = workspace;
    p.chunk_dt = p.chunk_state + w.chunk_state;
    p.group_state = p.chunk_dt + w.chunk_dt;
    p.group_dt = p.group_state + w.group_state;

    p.seg_len = q.L;
    p.nseg = 1;
    p.seg_state = p.group_dt + w.group_dt;
    p.seg_dt = p.seg_state + w.seg_state;
    const ScanChoice how = scan_choice(q.B, q.L, q.E, q.N, device_sm_count(), q.variant, q.lanes, q.segment_steps);
    if (how.mode != ScanChoice::chunked) {
        p.seg_len = how.seg_len;
        p.nseg = int(how.nseg);
        run_sequences(p, how.lanes, stream);
        return;
    }
    const int variant = q.variant == 1 ? 1 : 2;
    if (q.N <= 4) run_passes<4>(p, variant, stream);
    else if (q.N <= 8) run_passes<8>(p, variant, stream);
    else if (q.N <= 16) run_passes<16>(p, variant, stream);
    else run_passes<32>(p, variant, stream);
}

} // namespace

void selective_scan(const ScanProblem& q, int T, float* workspace, cudaStream_t stream) {
    if (q.B <= 0 || q.L < 0 || q.E <= 0 || q.N <= 0 || T <= 0)
        throw std::invalid_argument("selective_scan: sizes must be positive (B " + std::to_string(q.B) +
                                    ", L " + std::to_string(q.L) + ", E " + std::to_string(q.E) +
                                    ", N " + std::to_string(q.N) + ", T " + std::to_string(T) + ")");
    if (q.variant < 0 || q.variant > 4)
        throw std::invalid_argument("selective_scan: variant " + std::to_string(q.variant) +
                                    ", expected 0 (chosen), 1, 2, 3 or 4");
    if (q.segment_steps < 0)
        throw std::invalid_argument("selective_scan: segment_steps is negative");
    if (q.variant == 4 && scan_segment_plan(q.B, q.L, q.E, q.N, q.segment_steps).lanes == 0)
        throw std::invalid_argument("selective_scan: variant 4 (one pass in segments) takes d_state <= 32; got N " +
                                    std::to_string(q.N));
    if (q.variant == 3 && scan_single_pass_lanes(q.B, q.E, q.N, 1, 3, q.lanes) == 0)
        throw std::invalid_argument("selective_scan: variant 3 (one pass) takes d_state <= 32 and 1, 2 or 4 "
                                    "lanes per channel with 4..16 states each; got N " + std::to_string(q.N) +
                                    ", lanes " + std::to_string(q.lanes));
    if (q.L == 0) return;
    const bool bf16 = q.bf16_inputs();
    const bool inputs_set = bf16 ? q.bf16.dt && q.bf16.u && q.bf16.z && q.bf16.Bm && q.bf16.Cm
                                 : q.dt && q.u && q.z && q.Bm && q.Cm;
    if (!inputs_set || !q.y || !q.A2 || !q.D || !q.dt_bias || !q.state || !workspace)
        throw std::invalid_argument(std::string("selective_scan: a null pointer") +
                                    (bf16 && !inputs_set ? " (bf16 inputs: set all five)" : ""));
    const ScanWorkspaceSize w = scan_workspace_size(q.B, q.L, q.E, q.N, T, q.segment_steps);
    if (scan_segment_plan(q.B, q.L, q.E, q.N, q.segment_steps).nseg > INT32_MAX / 2 || w.chunks > INT32_MAX || int64_t(q.B) * w.chunks * q.E / kScanThreads > INT32_MAX)
        throw std::invalid_argument("selective_scan: too many chunks (" + std::to_string(w.chunks) +
                                    "); use a longer chunk");
    if (bf16) launch(q, q.bf16.dt, q.bf16.u, q.bf16.z, q.bf16.Bm, q.bf16.Cm, T, w, workspace, stream);
    else launch(q, q.dt, q.u, q.z, q.Bm, q.Cm, T, w, workspace, stream);
}

} // namespace mw::kernels::cuda
