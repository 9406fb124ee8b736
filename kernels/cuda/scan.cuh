// The selective scan on the GPU, chunked over time (DESIGN.md "scan, CUDA"): internal to
// kernels/cuda/, shared by the model forward and the benchmark.
//
//   s_t = exp(Δ_t·A) ⊙ s_{t-1} + (Δ_t·u_t) ⊗ B_t          s: [E][N] per sequence, fp32
//   y_t = (s_t · C_t + D ⊙ u_t) ⊙ SiLU(z_t)               Δ_t = softplus(dt_t + dt_bias)
//
// Time is cut into chunks of T steps. Pass 1: every (sequence b, chunk c, channel e) runs its
// chunk from the zero state and keeps the end state and ΣΔ (the chunk's decay is
// exp(A·ΣΔ), one scalar per channel). Pass 2: per (b, n, e), the chunks' start states by the
// associative combine (ΣΔ₁, s₁)∘(ΣΔ₂, s₂) = (ΣΔ₁+ΣΔ₂, exp(A·ΣΔ₂)·s₁ + s₂), done in two levels
// (chunks in groups of about √nc, groups in sequence, then chunks within each group) so that
// few channels and many chunks still run in parallel; it starts from the carried state and
// leaves the state after the last step in its place. Pass 3: every (b, c, e) re-runs its
// chunk from its true start state and writes y. Each exp is computed twice (passes 1 and 3).
//
// When B·E alone fills the GPU (training batches), one pass runs whole sequences from the
// carried state instead (variant 3): every exp once, and the chunks' start states written on
// the way, so the workspace holds the same thing afterwards.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace mw::kernels::cuda {

// One scan over B sequences of L steps. Row t of sequence b is row b·L + t of each input;
// *_stride is the distance between rows in floats (so u, z and B/C may live inside wider
// arrays, as they do in the model's layer scratch).
struct ScanProblem {
    int B = 0;          // sequences
    int64_t L = 0;      // steps
    int E = 0;          // channels (d_inner)
    int N = 0;          // state size per channel (d_state)

    const float* dt = nullptr;  int64_t dt_stride = 0;  // [B·L][..] Δ before bias + softplus
    const float* u = nullptr;   int64_t u_stride = 0;   // [B·L][..]
    const float* z = nullptr;   int64_t z_stride = 0;   // [B·L][..] the gate
    const float* Bm = nullptr;                          // [B·L][..] B_t[0..N)
    const float* Cm = nullptr;  int64_t bc_stride = 0;  // [B·L][..] C_t[0..N), same row stride as Bm
    float* y = nullptr;         int64_t y_stride = 0;   // [B·L][..]

    const float* A2 = nullptr;       // [E][N]  A·log2(e) = -exp(A_log)·log2(e)
    const float* D = nullptr;        // [E]
    const float* dt_bias = nullptr;  // [E]
    float* state = nullptr;          // [B][N][E] in: the carried state; out: the state after step L-1

    int variant = 0;  // 0 = chosen: 3 where the batch fills the GPU, else 2 (scan_choice);
                      // 1 = chunked, one thread per channel, direct loads (the baseline);
                      // 2 = chunked, warp tiles staged through shared memory;
                      // 3 = one pass over whole sequences, every exp once (d_state <= 32);
                      // 4 = one pass in segments of time, each mended for its true start
                      //     state until that has decayed (d_state <= 32; only when asked:
                      //     slow-decaying states make the mending as long as the segment) (scan.cu)
    int lanes = 0;    // variant 3: lanes per channel (1, 2 or 4); 0 = chosen
    int64_t segment_steps = 0;  // variant 4 (one pass in segments): steps per segment; 0 = planned
                                // (scan_segment_plan). The workspace must be sized with the same.

    // bf16 inputs: set all five and the float pointers dt, u, z, Bm, Cm are not read (they may
    // be null). Same layouts and strides (in elements). Everything is computed in fp32 from the
    // rounded inputs; the state, A2, D, dt_bias and y stay fp32.
    struct BF16Inputs {
        const __nv_bfloat16* dt = nullptr;
        const __nv_bfloat16* u = nullptr;
        const __nv_bfloat16* z = nullptr;
        const __nv_bfloat16* Bm = nullptr;
        const __nv_bfloat16* Cm = nullptr;
    } bf16;
    bool bf16_inputs() const { return bf16.dt || bf16.u || bf16.z || bf16.Bm || bf16.Cm; }
};

// The scratch one scan needs, in floats, for chunks of T steps.
struct ScanWorkspaceSize {
    int64_t chunks = 0;            // nc = ceil(L / T)
    int64_t groups = 0;            // G: chunks are combined in groups of S = ceil(√nc)
    int64_t chunk_state = 0;       // [B][nc][N][E]
    int64_t chunk_dt = 0;          // [B][nc][E]
    int64_t group_state = 0;       // [B][G][N][E]
    int64_t group_dt = 0;          // [B][G][N][E]
    int64_t seg_state = 0;         // [B][nseg][N][E] (variant 4)
    int64_t seg_dt = 0;            // [B][nseg][E]
    int64_t total() const { return chunk_state + chunk_dt + group_state + group_dt + seg_state + seg_dt; }
};
ScanWorkspaceSize scan_workspace_size(int B, int64_t L, int E, int N, int T, int64_t segment_steps = 0);

// Variant 4's segments: lanes per channel (0: d_state above 32), steps per segment, segments
// per sequence. segment_steps 0: about 2048 warps in segments of at least 2048 steps.
struct ScanSegmentPlan {
    int lanes = 0;
    int64_t seg_len = 0;
    int64_t nseg = 0;
};
ScanSegmentPlan scan_segment_plan(int B, int64_t L, int E, int N, int64_t segment_steps = 0);

// What selective_scan runs for a shape and variant on a GPU of sm_count multiprocessors.
struct ScanChoice {
    enum Mode { chunked, whole, segments } mode = chunked;
    int lanes = 0;         // one pass: lanes per channel
    int64_t seg_len = 0;   // one pass: steps per segment (L for whole sequences)
    int64_t nseg = 0;
};
ScanChoice scan_choice(int B, int64_t L, int E, int N, int sm_count, int variant, int lanes = 0,
                       int64_t segment_steps = 0);

// The lanes per channel the one-pass kernel (variant 3) takes for this shape, or 0 where the
// scan runs chunked: variant 0 takes the one pass only when B·E gives at least 1.75 warps per
// scheduler (sm_count multiprocessors); `lanes` != 0 asks for that many (variant 3 only).
int scan_single_pass_lanes(int B, int E, int N, int sm_count, int variant, int lanes = 0);

// Pass 2's groups (forward and backward): S = ceil(√nc) chunks per group, G = ceil(nc / S).
void scan_group_split(int64_t nc, int64_t& S, int64_t& G);

// A chunk length for `variant` that gives the GPU (sm_count multiprocessors) enough
// independent tasks, in whole waves where it can, while keeping the per-chunk overhead small.
int auto_scan_chunk(int B, int64_t L, int E, int N, int sm_count, int variant = 0);

// Runs the three passes on `stream`. workspace: scan_workspace_size(...).total() floats; it
// starts with chunk_state, which holds each chunk's start state [B][nc][N][E] afterwards (the
// backward below reads them).
// Throws std::invalid_argument for bad sizes, CudaError for a failed launch.
void selective_scan(const ScanProblem& p, int T, float* workspace, cudaStream_t stream);

// ---- the backward (scan_backward.cu) -------------------------------------------------------

// Steps per chunk of the backward (8 or 16; 16 is the default). The forward that gives it its
// chunk start states must be run with the same chunk length.
constexpr int kScanBackwardChunk = 16;

// The gradients of one scan. Inputs are the forward's (same layouts and strides); dy is
// dLoss/dy of the gated output. du, ddt, dz, dB and dC are written (ddt is the gradient of dt
// before its bias and softplus, so it is also the bias's per-row gradient); dA_log [E][N] and
// dD [E] are added to (+=). No gradient flows into the carried-in state.
struct ScanBackwardProblem {
    int B = 0;
    int64_t L = 0;
    int E = 0;
    int N = 0;
    int chunk = kScanBackwardChunk;  // 8 or 16
    int variant = 3;  // pass 3: 3 = the chunk's steps outside and the states inside, two lanes per
                      // channel (the default; d_state up to 16, else 2); 2 = one state at a time with
                      // B / C rows staged in shared memory; 1 = read from global memory in the loops
                      // (the first version, kept to compare)
    const float* dt = nullptr;  int64_t dt_stride = 0;
    const float* u = nullptr;   int64_t u_stride = 0;
    const float* z = nullptr;   int64_t z_stride = 0;
    const float* Bm = nullptr;
    const float* Cm = nullptr;  int64_t bc_stride = 0;
    const float* dy = nullptr;  int64_t dy_stride = 0;
    const float* A2 = nullptr;       // [E][N]
    const float* D = nullptr;        // [E]
    const float* dt_bias = nullptr;  // [E]
    const float* chunk_start = nullptr;  // [B][nc][N][E]: the forward's workspace after a
                                         // selective_scan with T = chunk
    float* du = nullptr;   int64_t du_stride = 0;
    float* ddt = nullptr;  int64_t ddt_stride = 0;
    float* dz = nullptr;   int64_t dz_stride = 0;
    float* dB = nullptr;
    float* dC = nullptr;   int64_t dbc_stride = 0;
    float* dA_log = nullptr;  // [E][N] +=
    float* dD = nullptr;      // [E]    +=
};

struct ScanBackwardSize {
    int64_t chunks = 0;
    int64_t carry = 0, sum_dt = 0, group = 0, bc_part = 0, dA_part = 0, dD_part = 0, sums = 0;
    int64_t total() const { return carry + sum_dt + group + bc_part + dA_part + dD_part + sums; }
};
ScanBackwardSize scan_backward_workspace_size(int B, int64_t L, int E, int N, int chunk = kScanBackwardChunk);

// Throws std::invalid_argument for bad sizes or a null pointer, CudaError for a failed launch.
void selective_scan_backward(const ScanBackwardProblem& p, float* workspace, cudaStream_t stream);

// out[c] (+)= Σ_r in[r·ld + c] for c < cols, summed in a fixed order (so results repeat
// exactly). scratch: column_sums_scratch(rows, cols) floats.
int64_t column_sums_scratch(int64_t rows, int cols);
void column_sums(const float* in, int64_t rows, int cols, int64_t ld, float* out, bool accumulate,
                 float* scratch, cudaStream_t stream);

} // namespace mw::kernels::cuda
