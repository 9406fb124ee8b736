// The recurrent step on the GPU (DESIGN.md "step, CUDA"): internal to kernels/cuda/. The
// public API is in mamba_cuda.h (make_stepper, step_continuous, step_tokens, generate_tokens).
//
// One thread block owns G streams (G = 1, 2, 4, 8 or 16, a template parameter) and runs every
// layer, the head and the sampler for them, feed after feed:
//
//   x        = embeddings[token] | stem · in + stem_b                       [D][G]
//   per layer:
//     h      = RMSNorm(x) ⊙ norm_w                                          [D][G]
//     [u, z] = in_projᵀ h                                                   [2E][G]
//     u      = SiLU(conv_b + Σ_k conv_w[k] · (window_k, …, u))  window slides by one
//     [r,B,C]= x_projᵀ u                                                    [R+2N][G]
//     Δ      = softplus(dt_projᵀ r + dt_b)
//     s      = exp2(Δ·A·log2 e) ⊙ s + (Δ·u) ⊗ B ;  y = (s·C + D ⊙ u) ⊙ SiLU(z)
//       (an LTI layer: no x_proj; s = ā ⊙ s + b̄·u, y = (Σ_n C ⊙ s + D ⊙ u) ⊙ SiLU(z) with its
//        constants ā = exp(Δ·A), b̄ = Δ·B and C per channel, scan_lti.cuh)
//     x      = x + out_projᵀ y
//   effect:    y = head_b + head · RMSNorm_f(x) (+ in[0] with skip)
//   generator: logits = lm_headᵀ RMSNorm_f(x); class = sample(logits) -> fed back next step
//
// The projections are block-wide matrix-vector products over the block's G streams: weights
// stored transposed ([in][out]) so a warp's loads are coalesced, each weight loaded once for G
// streams, the vectors in shared memory as [dim][G]. The conv windows and SSM states live in
// global memory (the Forward's layout); the persistent variant copies its streams' states into
// shared memory for the whole launch when they fit (state_in_smem), so a step reads and writes
// them there. The weights sit in shared memory when they fit too.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mw::kernels::cuda::step_detail {

// Offsets (floats from the start of the packed weights) of layer 0's tensors; layer l's are
// these plus l · layer_stride. All tensors start at a multiple of 4 floats.
// Every layer has the same slots, so that one stride finds them all; an LTI layer (lti flag 1)
// has no x_proj or dt_proj, and its constants take their places (E·(R+2N) >= 2·N·E floats).
struct LayerOffsets {
    int norm_w;   // [D]
    int in_T;     // [D][2E]     in_proj transposed
    int conv_T;   // [K][E]      conv1d transposed
    int conv_b;   // [E]
    int x_T;      // [E][R+2N]   x_proj transposed (HF row order r, B, C);
                  //             LTI: b̄ = Δ·B [N][E], then C [N][E]
    int dt_T;     // [R][E]      dt_proj transposed (LTI: zeros)
    int dt_b;     // [E]
    int A2_T;     // [N][E]      A·log2(e), transposed; LTI: the decays ā = exp(Δ·A) [N][E]
    int Dskip;    // [E]
    int out_T;    // [E][D]      out_proj transposed
    int lti;      // [1]         1 for an LTI layer, else 0
};

// One params struct for every launch of the step kernel; checked on the host (step.cu).
struct StepParams {
    int S;                    // streams in all
    int D, E, N, K, R, Mx;    // Mx = R + 2N
    int V, I, n_layers;
    float eps;
    bool tokens;              // generator (else effect)
    bool skip;

    const float* weights;     // packed (step.cu: pack_weights)
    int weight_floats;        // multiple of 4
    LayerOffsets lo;
    int layer_stride;
    int norm_f, embed, lm_T, stem_w, stem_b, head_w, head_b;  // offsets; -1 when absent

    float* window;            // [n_layers][S][K-1][E]
    float* ssm;               // [n_layers][S][N][E]
    bool state_in_smem;       // the block's states live in shared memory during the launch

    // The feeds (time steps) of this launch: [f_begin, f_begin + f_count), or, when f_dev is
    // set (graph variant), the one feed *f_dev.
    int64_t f_begin, f_count;
    const int64_t* f_dev;
    int64_t chunk_f0;         // the feed of row / column 0 of the chunk buffers below

    // effect
    const float* x;           // [C][S][I]   row f - chunk_f0
    float* y;                 // [C][S]

    // generator: feed f's class is teacher[s·ts + (f - chunk_f0)·tc] while f < n_teacher,
    // else cur_token[s] (the pending class)
    const int32_t* teacher;
    int64_t teacher_ss, teacher_tc;
    int64_t n_teacher;
    int32_t* cur_token;       // [S]
    float* logits_out;        // [C][S][V] or null
    // sampling: feeds f >= first_sample_feed (>= 0) draw a class into out and cur_token
    int64_t first_sample_feed;
    int32_t* out;             // [S][out_pitch]  column f - chunk_f0
    int64_t out_pitch;
    int64_t sample_base;      // the random-number index of feed first_sample_feed
    float temperature, top_p;
    unsigned long long seed;
};

// Shared memory of one block, in floats (every array at a multiple of 4 floats).
struct SmemLayout {
    int w;       // [weight_floats] when the weights sit in shared memory, else empty
    int st;      // [n_layers][G][K-1][E] windows, then [n_layers][G][N][E] SSM states, when
                 // the states sit in shared memory, else empty
    int x;       // [D][G]        residual stream
    int h;       // [D][G]        normed input of in_proj / lm_head
    int uz;      // [2E][G]       in_proj out: u before the conv, z
    int u;       // [E][G]        after conv + SiLU
    int dbc;     // [Mx][G]       x_proj out: r, B, C
    int y;       // [E][G]        SSM out, gated
    int red;     // [T][G]        partial sums of the matrix-vector products
    int logits;  // [V][G]        generator
    int sort;    // [T/32][2][256] per warp: probabilities and classes of the nucleus sort;
                 // the same floats as red (the sampler runs after the last product of a step)
    int total;
};

__host__ __device__ inline int round4(int v) { return (v + 3) & ~3; }

__host__ __device__ inline SmemLayout smem_layout(const StepParams& p, int G, int T,
                                                  bool weights_in_smem, bool state_in_smem) {
    SmemLayout l{};
    int off = 0;
    auto take = [&](int floats) {
        const int at = off;
        off += round4(floats);
        return at;
    };
    l.w = take(weights_in_smem ? p.weight_floats : 0);
    l.st = take(state_in_smem ? p.n_layers * G * (p.K - 1 + p.N) * p.E : 0);
    l.x = take(p.D * G);
    l.h = take(p.D * G);
    l.uz = take(2 * p.E * G);
    l.u = take(p.E * G);
    l.dbc = take(p.Mx * G);
    l.y = take(p.E * G);
    l.red = take(p.tokens ? (T * G > (T / 32) * 512 ? T * G : (T / 32) * 512) : T * G);
    l.sort = l.red;
    l.logits = take(p.tokens ? p.V * G : 0);
    l.total = off;
    return l;
}

constexpr int kMaxThreads = 512;
constexpr int kMaxVocab = 256;  // the sampler holds 8 classes per lane of one warp

// Launches the step kernel for G streams per block (1, 2, 4, 8, 16), T threads, on `stream`.
// The dynamic shared memory limit of the instantiation must be raised first (prepare_kernel).
void launch_step(const StepParams& p, int G, int T, bool weights_in_smem, cudaStream_t stream);
// Raises the instantiation's dynamic shared memory limit to `bytes`.
void prepare_kernel(int G, bool weights_in_smem, int bytes);

} // namespace mw::kernels::cuda::step_detail
