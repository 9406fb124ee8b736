// Private to kernels/: the tape's data, shared by backward.cpp (weight re-layout, state in and
// out, gradient scatter) and the per-ISA builds of backward_impl.inc (the math).
//
// Padded sizes as in fast_internal.h (multiples of 8 floats): Dp, Ep, Mp, Rp, Vp. Padding of
// every prepared weight is zero, so padded activations and gradients stay exactly zero.
#pragma once

#include "kernels/backward.h"
#include "kernels/fast_internal.h"

#include <cstdint>
#include <vector>

namespace mw::kernels {

// A grow-only buffer: at least n floats (contents undefined after a grow).
inline float* grow(AlignedFloats& b, size_t n) {
    if (b.size() < n) b = AlignedFloats(n);
    return b.data();
}

// One layer's weights, re-laid-out: "_T" [in][out_p] for the forward (rows times W), "_W"
// [out][in_p] for the input gradient of the backward (gradients times W).
// A selective layer has x_T, x_W, dt_T, dt_W (the LTI fields null); an LTI layer
// (kernels/model_view.h) has B, C and its constants Δ, σ, exp(Δ·A) instead (x_T.. null).
struct TapeLayer {
    const float* norm_w;  // [Dp]
    const float* in_T;    // [D][2Ep]  columns 0..Ep-1 give u (pre-conv), Ep.. give z
    const float* in_W;    // [2Ep][Dp] rows as in_T's columns
    const float* conv_T;  // [K][Ep]
    const float* conv_b;  // [Ep]
    const float* x_T;     // [E][Mp]   columns r (R), B (N), C (N), zero pad
    const float* x_W;     // [M][Ep]
    const float* dt_T;    // [R][Ep]
    const float* dt_W;    // [Ep][Rp]
    const float* dt_b;    // [Ep]
    const float* B;       // [N][Ep]   LTI: B per channel
    const float* C;       // [N][Ep]   LTI: C per channel
    const float* dt_c;    // [Ep]      LTI: Δ = softplus(dt_b)
    const float* sig_c;   // [Ep]      LTI: softplus'(dt_b) = σ(dt_b)
    const float* dec_c;   // [N][Ep]   LTI: the decay exp(min(Δ, dt_max)·A), constant
    const float* A;       // [N][Ep]   A = -exp(A_log)
    const float* A2;      // [N][Ep]   A·log2(e): exp(Δ·A) = 2^(Δ·A2)
    const float* dt_max;  // [Ep]      125 / min_n |A2|: beyond it every decay is below 2^-125
    const float* Dskip;   // [Ep]
    const float* out_T;   // [E][Dp]
    const float* out_W;   // [D][Ep]
    bool lti;
};

// Gradient accumulators of one layer, padded, in the layout of the matching forward weight.
struct TapeLayerGrad {
    float* norm_w;  // [Dp]
    float* in_T;    // [D][2Ep]
    float* conv_T;  // [K][Ep]
    float* conv_b;  // [Ep]
    float* x_T;     // [E][Mp]   selective layers (null for LTI)
    float* dt_T;    // [R][Ep]   selective layers
    float* B;       // [N][Ep]   LTI layers (null for selective)
    float* C;       // [N][Ep]   LTI layers
    float* dt_b;    // [Ep]
    float* A_log;   // [N][Ep]
    float* D;       // [Ep]
    float* out_T;   // [E][Dp]
};

struct TapeData {
    int chunk = 64;  // T: rows per pass, samples between SSM checkpoints

    // Sizes of the last forward's model.
    int D = 0, Dp = 0, E = 0, Ep = 0, N = 0, K = 0, R = 0, Rp = 0, M = 0, Mp = 0;
    int V = 0, Vp = 0, I = 0, n_layers = 0;
    float eps = 1e-5f;
    HeadKind head = HeadKind::continuous;
    bool skip = false;
    int64_t L = 0, n_chunks = 0;
    bool ready = false;  // a forward was run

    // Prepared weights.
    AlignedFloats weights;
    std::vector<TapeLayer> layers;
    const float* norm_f = nullptr;  // [Dp]
    const float* embed = nullptr;   // [V][Dp]
    const float* lm_T = nullptr;    // [D][Vp]
    const float* lm_W = nullptr;    // [V][Dp]
    const float* stem_T = nullptr;  // [I][Dp]
    const float* stem_b = nullptr;  // [Dp]
    const float* head_w = nullptr;  // [Dp]
    float head_b = 0.0f;

    // Gradient accumulators (zeroed by each backward, then added into the caller's ModelGrad).
    AlignedFloats grads;
    std::vector<TapeLayerGrad> glayers;
    float* g_norm_f = nullptr;  // [Dp]
    float* g_embed = nullptr;   // [V][Dp]
    float* g_lm_T = nullptr;    // [D][Vp]
    float* g_stem_T = nullptr;  // [I][Dp]
    float* g_stem_b = nullptr;  // [Dp]
    float* g_head_w = nullptr;  // [Dp]
    double g_head_b = 0.0;

    // The tape.
    AlignedFloats X;     // [n_layers+1][L][Dp]  layer inputs; the last is norm_f's input
    AlignedFloats RS;    // [n_layers+1][L]      1/rms of each
    AlignedFloats UZ;    // [n_layers][L][2Ep]   in_proj output: u before the conv, z
    AlignedFloats DBC;   // [selective layers][L][Mp]  x_proj output: r, B, C (none for LTI layers)
    std::vector<int> dbc_slot;  // [n_layers]  the layer's place in DBC; -1: an LTI layer
    AlignedFloats CK;    // [n_layers][n_chunks][N][Ep]  SSM state before each chunk
    AlignedFloats WIN0;  // [n_layers][K-1][Ep]  conv window before the first sample
    AlignedFloats SFIN;  // [n_layers][N][Ep]    SSM state after the last sample
    AlignedFloats XIN;   // [L][I]               continuous input
    bool hidden_in = false; // the forward took rows of the residual stream (forward_hidden)
    float* d_in = nullptr;  // then dLoss/dx [L][D], written by the backward (may be null)
    std::vector<int32_t> tokens;  // [L]

    // Scratch for one chunk of T rows.
    AlignedFloats H;     // [T][Dp]      RMSNorm output
    AlignedFloats CPRE;  // [T][Ep]      conv output before SiLU
    AlignedFloats U;     // [T][Ep]      u = SiLU(conv)
    AlignedFloats DELTA; // [T][Ep]      Δ
    AlignedFloats SIG;   // [T][Ep]      softplus' = sigmoid of Δ's argument
    AlignedFloats G;     // [T][Ep]      y ⊙ SiLU(z), out_proj's input
    AlignedFloats DG;    // [T][Ep]      dLoss/dG
    AlignedFloats DUZ;   // [T][2Ep]     dLoss/d(in_proj output)
    AlignedFloats DU;    // [T][Ep]      dLoss/du
    AlignedFloats DDT;   // [T][Ep]      dLoss/dΔ, then dLoss/d(Δ's argument)
    AlignedFloats DDBC;  // [T][Mp]      dLoss/d(r, B, C) (selective layers)
    AlignedFloats DR;    // [T][Rp]
    AlignedFloats DH;    // [T][Dp]      dLoss/dh (also the head's dLoss/dh_f)
    AlignedFloats DX;    // [T][Dp]      dLoss/d(residual stream) at the current layer
    AlignedFloats DCX;   // [T+K-1][Ep]  dLoss/d(conv output), then the later chunk's first K-1
    AlignedFloats LOGP;  // [T][Vp]      logits / their gradient, padded
    AlignedFloats SB;    // [T][N][8]    one channel block's SSM states in the chunk
    AlignedFloats DECB;  // [T][N][8]    ... and their decays exp(Δ·A)
    AlignedFloats DBV;   // [T][N][8]    dLoss/dB, one lane per channel of a block (summed later;
    AlignedFloats DCV;   // [T][N][8]    dLoss/dC, likewise             selective layers only)
    AlignedFloats DYB;   // [T][8]       dLoss/dy of one channel block
    AlignedFloats VN;    // [4][N][8]    per-block vectors when N is not a compile-time size

    // Carried backwards from chunk to chunk (per layer).
    AlignedFloats carryA;   // [n_layers][N][Ep]    SSM adjoint dLoss/ds at the chunk's start
    AlignedFloats carryDC;  // [n_layers][K-1][Ep]  dLoss/d(conv output) of the later chunk's first K-1 rows

    // Accessors.
    float* X_at(int l, int64_t t) const { return X.data() + (int64_t(l) * L + t) * Dp; }
    float* RS_at(int l, int64_t t) const { return RS.data() + int64_t(l) * L + t; }
    float* UZ_at(int l, int64_t t) const { return UZ.data() + (int64_t(l) * L + t) * 2 * Ep; }
    float* DBC_at(int l, int64_t t) const {  // null for an LTI layer
        const int slot = dbc_slot[size_t(l)];
        return slot < 0 ? nullptr : DBC.data() + (int64_t(slot) * L + t) * Mp;
    }
    float* CK_at(int l, int64_t c) const { return CK.data() + (int64_t(l) * n_chunks + c) * N * Ep; }
    float* WIN0_at(int l) const { return WIN0.data() + int64_t(l) * (K - 1) * Ep; }
    float* SFIN_at(int l) const { return SFIN.data() + int64_t(l) * N * Ep; }
    // The pre-conv input u at time t of layer l (t < 0: from the initial window).
    const float* xc_at(int l, int64_t t) const {
        return t >= 0 ? UZ_at(l, t) : WIN0_at(l) + (t + K - 1) * Ep;
    }
};

// The per-ISA entry points (backward_impl.inc compiled into namespace bwd_baseline and bwd_avx2).
// tape_forward: inputs, WIN0 and CK[.][0] filled by the caller; out y [L] or logits [L][V].
#define MW_DECLARE_BWD_ISA(ns)                                                                \
    namespace ns {                                                                            \
    void tape_forward(TapeData& d, float* out);                                               \
    void tape_backward(TapeData& d, const float* d_out);                                      \
    void rows_times(float* out, int64_t os, const float* a, int64_t as, const float* W,       \
                    int64_t ws, int K, int M, int64_t T, bool accumulate);                    \
    void outer_sum(float* G, int64_t gs, const float* a, int64_t as, int K, const float* b,  \
                   int64_t bs, int M, int64_t T);                                             \
    }
MW_DECLARE_BWD_ISA(bwd_baseline)
MW_DECLARE_BWD_ISA(bwd_avx2)
#undef MW_DECLARE_BWD_ISA

} // namespace mw::kernels
