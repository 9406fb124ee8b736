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
// chunk from its true start state and writes y.
#pragma once

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

    int variant = 2;  // passes 1 and 3: 1 = one thread per channel, direct loads (baseline);
                      // 2 = warp tiles staged through shared memory (scan.cu)
};

// The scratch one scan needs, in floats, for chunks of T steps.
struct ScanWorkspaceSize {
    int64_t chunks = 0;            // nc = ceil(L / T)
    int64_t groups = 0;            // G: chunks are combined in groups of S = ceil(√nc)
    int64_t chunk_state = 0;       // [B][nc][N][E]
    int64_t chunk_dt = 0;          // [B][nc][E]
    int64_t group_state = 0;       // [B][G][N][E]
    int64_t group_dt = 0;          // [B][G][N][E]
    int64_t total() const { return chunk_state + chunk_dt + group_state + group_dt; }
};
ScanWorkspaceSize scan_workspace_size(int B, int64_t L, int E, int N, int T);

// A chunk length for `variant` that gives the GPU (sm_count multiprocessors) enough
// independent tasks, in whole waves where it can, while keeping the per-chunk overhead small.
int auto_scan_chunk(int B, int64_t L, int E, int N, int sm_count, int variant = 2);

// Runs the three passes on `stream`. workspace: scan_workspace_size(...).total() floats.
// Throws std::invalid_argument for bad sizes, CudaError for a failed launch.
void selective_scan(const ScanProblem& p, int T, float* workspace, cudaStream_t stream);

} // namespace mw::kernels::cuda
