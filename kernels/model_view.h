// The Mamba model as raw arrays: sizes plus read-only pointers into weights that someone
// else owns (model/ does). Everything in kernels/ takes a ModelView; nothing here allocates
// or owns weights.
//
// Dimension letters used across kernels/:
//   L  time steps (samples)          S  streams (independent channels / voices)
//   D  d_model                       E  d_inner (= expand * d_model)
//   N  d_state                       R  dt_rank        K  d_conv
//   V  vocab (256 for mu-law 8-bit)  I  effect inputs per sample (1 + n_cond)
#pragma once

#include <cstdint>

namespace mw::kernels {

struct Dims {
    int d_model = 0;   // D
    int n_layers = 0;
    int d_inner = 0;   // E
    int d_state = 0;   // N
    int d_conv = 0;    // K
    int dt_rank = 0;   // R
    float norm_eps = 1e-5f;
};

// One Mamba block (pre-norm residual). Shapes are the HF transformers tensor shapes.
struct LayerView {
    const float* norm_w = nullptr;     // [D]
    const float* in_proj_w = nullptr;  // [2E][D]   rows 0..E-1 give u, rows E..2E-1 give z
    const float* conv_w = nullptr;     // [E][K]    (HF: [E][1][K]); tap K-1 is the current sample
    const float* conv_b = nullptr;     // [E]
    const float* x_proj_w = nullptr;   // [R+2N][E] rows: r (R), B (N), C (N)
    const float* dt_proj_w = nullptr;  // [E][R]
    const float* dt_proj_b = nullptr;  // [E]
    const float* A_log = nullptr;      // [E][N]    A = -exp(A_log)
    const float* D = nullptr;          // [E]
    const float* out_proj_w = nullptr; // [D][E]
    // An LTI layer (config "lti_layers"; docs/ABLATION.md): B and C are learnt constants per
    // channel and Δ = softplus(dt_proj_b), so x_proj_w and dt_proj_w are null:
    //   s_t = exp(Δ·A) ⊙ s_{t-1} + Δ·u_t·B;   y_t = Σ_n C ⊙ s_t + D ⊙ u_t
    const float* lti_B = nullptr;      // [E][N]  null: a selective layer
    const float* lti_C = nullptr;      // [E][N]
};

inline bool is_lti(const LayerView& w) { return w.lti_C != nullptr; }

enum class HeadKind : int {
    tokens = 0,      // generator: embedding [V][D] in, lm_head [V][D] logits out
    continuous = 1,  // effect: stem [D][I] + bias in, head [1][D] + bias out, optional skip
    hidden = 2,      // a stack of layers alone: the residual stream x [D] in, x after the last
                     // layer out (no stem, no head, no norm_f); model/'s pooled models join
                     // such stacks at several rates (docs/POOLED.md)
};

struct ModelView {
    Dims dims;
    const LayerView* layers = nullptr;  // [n_layers]
    const float* norm_f_w = nullptr;    // [D]
    HeadKind head = HeadKind::tokens;

    // tokens
    int vocab = 0;                      // V
    const float* embed_w = nullptr;     // [V][D]
    const float* lm_head_w = nullptr;   // [V][D] (may equal embed_w when tied)

    // continuous
    int n_in = 0;                       // I = 1 + n_cond (sample first, then controls)
    const float* stem_w = nullptr;      // [D][I]
    const float* stem_b = nullptr;      // [D]
    const float* head_w = nullptr;      // [D]  (HF-style shape [1][D])
    const float* head_b = nullptr;      // [1]
    bool skip = false;                  // y = head(h) + x[0]
};

} // namespace mw::kernels
