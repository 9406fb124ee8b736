// The SSM of an LTI layer on the GPU (config "lti_layers", kernels/model_view.h), forward and
// backward: internal to kernels/cuda/. In such a layer Δ = softplus(dt_proj.bias), B and C are
// constants per channel, so the decay ā = exp(Δ·A) and the input weight b̄ = Δ·B are constants
// too (made once on the host, in float64, as the CPU paths make them: layer.cuh
// upload_weights), and the recurrence needs no exponential per step:
//
//   s_t = ā ⊙ s_{t-1} + b̄ · u_t                      s, ā, b̄, C: [N][E] per sequence
//   y_t = (Σ_n C ⊙ s_t + D ⊙ u_t) · SiLU(z_t)        (the gated output, as the selective scan's)
//
// Kept apart from the selective scan (scan.cu, scan_backward.cu), whose kernels are built
// around per-step Δ_t, B_t and C_t and the exp unit; these are plain and short instead.
//
// Forward (lti_scan), time cut into chunks of T steps (any T >= 1):
//   pass 1  every (sequence b, chunk c < nc-1, channel e): the chunk from the zero state, its
//           end state into the workspace's slot c.
//   pass 2  per (b, n, e) the chain start(c+1) = ā^T·start(c) + end_from_zero(c) from the
//           carried state, in two levels (groups of about √nc chunks, then the chunks inside
//           each group), so that few channels and many chunks still run in parallel. ā^T is
//           worked out once per state (float64 powers), not stepped.
//   pass 3  every (b, c, e): the chunk again from its true start state, writing y; the last
//           chunk leaves the state after step L-1 in place of the carried one.
// A thread runs one channel's chunk, all N states, time in register tiles of 16 steps and the
// states in shared memory (so any d_state up to kLtiMaxState runs, with no template per N).
// When B·E alone fills the GPU the automatic chunk is the whole sequence (nc = 1: no pass 1,
// pass 2 only copies the carried state), so every step is computed once.
//
// Backward (lti_scan_backward): the adjoint λ_t = dLoss/ds_t runs backward in time with the
// same constant decay, λ_t = ā·λ_{t+1} + ȳ_t·C with ȳ_t = dLoss/dy_t·SiLU(z_t), so it is
// chained the same way, over runs of chunks of `chunk` (8 or 16) steps whose start states the
// forward kept (lti_scan with T = chunk): nothing of size L·E·N is stored. The parameters'
// gradients are sums over time and batch, added in a fixed order (per-run partials, then
// column_sums), so a gradient repeats bit for bit:
//   dC = Σ ȳ_t s_t,  db̄ = Σ λ_t u_t,  dā = Σ λ_t s_{t-1},  dD = Σ ȳ_t u_t
//   du_t = Σ_n λ_t b̄ + D ȳ_t,  dz_t = dLoss/dy_t · y_t · SiLU'(z_t)
// and through the constants (docs/TRAINING_MATH.md; the CPU tape's LTI part):
//   dB = Δ·db̄,  dA_log = Δ·ā·dā·A,  dΔ = Σ_n (B·db̄ + A·ā·dā),  d(dt_bias) = σ(dt_bias)·dΔ.
#pragma once

#include "kernels/cuda/mamba_cuda.h"  // kLtiMaxState

#include <cuda_runtime.h>

#include <cstdint>

namespace mw::kernels::cuda {

// kLtiMaxState (mamba_cuda.h) is the largest d_state: the forward keeps each thread's N states
// in shared memory (blocks of 128 threads up to N 96, 64 up to 192, 32 up to 384; 48 KB at most).
static_assert(kLtiMaxState * 32 * 4 <= 48 * 1024, "the forward's states must fit the default shared memory");

// One LTI scan over B sequences of L steps. Row t of sequence b is row b·L + t of u, z and y
// (strides in floats between rows, as in ScanProblem).
struct LtiScanProblem {
    int B = 0;
    int64_t L = 0;
    int E = 0;
    int N = 0;
    const float* u = nullptr;  int64_t u_stride = 0;  // [B·L][..]
    const float* z = nullptr;  int64_t z_stride = 0;  // [B·L][..] the gate
    float* y = nullptr;        int64_t y_stride = 0;  // [B·L][..] out
    const float* decay = nullptr;  // [N][E]  ā = exp(Δ·A)
    const float* bbar = nullptr;   // [N][E]  b̄ = Δ·B
    const float* C = nullptr;      // [N][E]
    const float* D = nullptr;      // [E]
    float* state = nullptr;        // [B][N][E] in: the carried state; out: the state after step L-1
};

// The forward's workspace for chunks of T steps, in floats: the chunks' start states
// [B][nc][N][E] first (what the backward reads), then pass 2's groups [B][G][N][E].
struct LtiScanWorkspaceSize {
    int64_t chunks = 0, groups = 0;
    int64_t chunk_state = 0, group_state = 0;
    int64_t total() const { return chunk_state + group_state; }
};
LtiScanWorkspaceSize lti_scan_workspace_size(int B, int64_t L, int E, int N, int64_t T);

// A chunk length that gives about one full GPU of threads (sm_count multiprocessors), in whole
// tiles; L itself (one pass) where B·E already fills it.
int64_t lti_auto_chunk(int B, int64_t L, int E, int sm_count);

// Runs the three passes on `stream`; afterwards the workspace starts with every chunk's start
// state. Throws std::invalid_argument for bad sizes or a null pointer, CudaError from a launch.
void lti_scan(const LtiScanProblem& p, int64_t T, float* workspace, cudaStream_t stream);

// The gradients of one LTI scan. u, z as the forward's; dy is dLoss/dy of the gated output.
// du and dz are written; dB, dC, dA_log [E][N] (the model's layout) and dD, d_bias [E] are
// added to (+=). No gradient flows into the carried-in state.
struct LtiScanBackwardProblem {
    int B = 0;
    int64_t L = 0;
    int E = 0;
    int N = 0;
    int chunk = 16;      // 8 or 16: the forward that gave chunk_start ran with T = chunk
    int sm_count = 1;    // sizes the runs of chunks a thread walks (more chunks per run where
                         // B·E fills more of the GPU); the same value gives the same bits
    int run = 0;         // chunks per run; 0: from sm_count (tests force others)
    const float* u = nullptr;   int64_t u_stride = 0;
    const float* z = nullptr;   int64_t z_stride = 0;
    const float* dy = nullptr;  int64_t dy_stride = 0;
    const float* decay = nullptr;  // [N][E]
    const float* bbar = nullptr;   // [N][E]
    const float* C = nullptr;      // [N][E]
    const float* D = nullptr;      // [E]
    const float* A = nullptr;      // [E][N]  A = -exp(A_log)
    const float* Bw = nullptr;     // [E][N]  the layer's B
    const float* delta = nullptr;  // [E]     Δ = softplus(dt_bias)
    const float* dsig = nullptr;   // [E]     softplus'(dt_bias) = σ(dt_bias)
    const float* chunk_start = nullptr;  // [B][nc][N][E] from lti_scan with T = chunk
    float* du = nullptr;  int64_t du_stride = 0;
    float* dz = nullptr;  int64_t dz_stride = 0;
    float* dB = nullptr;      // [E][N] +=
    float* dC = nullptr;      // [E][N] +=
    float* dA_log = nullptr;  // [E][N] +=
    float* dD = nullptr;      // [E]    +=
    float* d_bias = nullptr;  // [E]    +=
};

struct LtiScanBackwardSize {
    int64_t chunks = 0, run = 0, runs = 0, groups = 0;  // run: chunks per run
    int64_t carry = 0, group = 0, part = 0, part_D = 0, sums = 0, scratch = 0;
    int64_t total() const { return carry + group + part + part_D + sums + scratch; }
};
LtiScanBackwardSize lti_scan_backward_workspace_size(int B, int64_t L, int E, int N, int chunk, int sm_count,
                                                     int run = 0);

// Throws std::invalid_argument for bad sizes or a null pointer, CudaError from a launch.
void lti_scan_backward(const LtiScanBackwardProblem& p, float* workspace, cudaStream_t stream);

} // namespace mw::kernels::cuda
