// The training pass on the CPU: a forward over one sequence that keeps what the backward
// needs (the "tape"), then the backward, which accumulates dLoss/dθ for every weight.
// docs/TRAINING_MATH.md gives the equations and the memory plan; in short:
//
//   kept per layer:  the layer input x [L][D], its 1/rms [L], the in_proj output u|z [L][2E],
//                    x_proj's output r|B|C [L][R+2N] (selective layers only: an LTI layer's
//                    Δ, B and C are constants of the layer), and the SSM state at the start of every
//                    chunk of `chunk` samples [L/chunk][N][E]. No [L][E][N] states are kept.
//   backward:        chunk by chunk from the end, every layer top-down; the conv output, Δ and
//                    the chunk's SSM states are recomputed from what was kept, then the adjoint
//                    runs back through the chunk. The SSM adjoint and the conv's look-ahead
//                    carry from one chunk to the one before it.
//
// Both fast instruction-set builds exist (baseline and AVX2+FMA, fast.h's active_isa() picks).
// Single-threaded: a trainer runs one tape per thread.
#pragma once

#include "kernels/model_view.h"

#include <cstdint>
#include <memory>

namespace mw::kernels {

// Where the backward adds (+=) its gradients: the ModelView's shapes (HF layout), writable.
struct LayerGrad {
    float* norm_w = nullptr;     // [D]
    float* in_proj_w = nullptr;  // [2E][D]
    float* conv_w = nullptr;     // [E][K]
    float* conv_b = nullptr;     // [E]  null: the model has no conv bias (nothing to train)
    float* x_proj_w = nullptr;   // [R+2N][E]
    float* dt_proj_w = nullptr;  // [E][R]
    float* dt_proj_b = nullptr;  // [E]
    float* A_log = nullptr;      // [E][N]
    float* D = nullptr;          // [E]
    float* out_proj_w = nullptr; // [D][E]
    float* lti_B = nullptr;      // [E][N]  LTI layers only (x_proj_w, dt_proj_w null then)
    float* lti_C = nullptr;      // [E][N]
};

struct ModelGrad {
    const LayerGrad* layers = nullptr;  // [n_layers]
    float* norm_f_w = nullptr;          // [D]
    // tokens
    float* embed_w = nullptr;           // [V][D]
    float* lm_head_w = nullptr;         // [V][D]; equal to embed_w when tied (both uses add there)
    // continuous
    float* stem_w = nullptr;            // [D][I]
    float* stem_b = nullptr;            // [D]
    float* head_w = nullptr;            // [D]
    float* head_b = nullptr;            // [1]
};

// Recurrent state of one stream as the tape takes and gives it, per layer one after the other:
// the conv window [K-1][E] (pre-conv inputs, oldest first), then the SSM state [N][E]:
// [n_layers][(K-1)·E + N·E] floats in all. For d_inner a multiple of 8 (every shipped size)
// this is exactly kernels::stream_state's layout, so inference and training can hand a stream's
// state to each other.
int64_t tape_state_floats(const Dims& dims);

struct TapeData;

class TrainTape {
public:
    // chunk: samples between SSM checkpoints (and rows per pass); 64 is a good size.
    explicit TrainTape(int chunk = 64);
    ~TrainTape();
    TrainTape(TrainTape&&) noexcept;
    TrainTape& operator=(TrainTape&&) noexcept;

    // Forward over L samples from state_in (null: zero), keeping the tape. out: y [L] or
    // logits [L][V]; state_out (null: not wanted) gets the state after the last sample and may
    // be the same buffer as state_in. The weights are copied: m may change afterwards.
    void forward_continuous(const ModelView& m, const float* x, int64_t L, const float* state_in,
                            float* y, float* state_out);
    void forward_tokens(const ModelView& m, const int32_t* tokens, int64_t L,
                        const float* state_in, float* logits, float* state_out);
    // Rows of the residual stream in, x [L][D] (the embedding or stem unused): a stack of layers
    // alone (HeadKind::hidden) gives the stream after its last layer, y [L][D] (no norm_f); a
    // generator (HeadKind::tokens) its logits [L][V]. Pooled models join such stacks.
    void forward_hidden(const ModelView& m, const float* x, int64_t L, const float* state_in,
                        float* y, float* state_out);
    // dLoss/dout of the last forward (dy [L], dlogits [L][V], or dy [L][D] for a stack) -> adds
    // dLoss/dθ into g (a stack's g has no norm_f or head: those pointers are ignored). d_in
    // (after forward_hidden only; may be null): gets dLoss/dx [L][D], overwritten. No gradient
    // flows into state_in. Throws std::logic_error without a forward before it.
    void backward(const float* d_out, const ModelGrad& g, float* d_in = nullptr);

    int chunk() const;
    int64_t length() const;       // L of the last forward (0 before any)
    int64_t bytes_held() const;   // memory the tape holds now (activations, scratch, weights)

private:
    std::unique_ptr<TapeData> d_;
};

// The tape's dense products on the active instruction-set build, for layers that code outside
// the tape puts around its stacks (the pooled models' projections). M % 8 == 0; row strides os,
// as, ws, gs, bs in floats; rows need no alignment.
//   rows_times: out[t][0..M) = (or += when accumulate) Σ_{k<K} a[t][k] · W[k][0..M)   t < T
//   outer_sum:  G[k][0..M) += Σ_{t<T} a[t][k] · b[t][0..M)                              k < K
// Each sum over k (rows_times) or over t (outer_sum) is taken in registers before it meets out
// or G, so the floats differ in rounding from a loop that adds one term at a time.
void rows_times(float* out, int64_t os, const float* a, int64_t as, const float* W, int64_t ws, int K, int M,
                int64_t T, bool accumulate);
void outer_sum(float* G, int64_t gs, const float* a, int64_t as, int K, const float* b, int64_t bs, int M,
               int64_t T);

} // namespace mw::kernels
