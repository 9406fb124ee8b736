// Private to kernels/: the prepared layout shared by fast.cpp (dispatch, prepare) and the
// per-ISA builds of fast_impl.inc.
//
// Vector dimensions are padded to multiples of 8 floats (one AVX register): Dp, Ep, Mp, Vp.
// Padded weights are zero, which keeps padded activations and states at exactly zero.
#pragma once

#include "kernels/fast.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

namespace mw::kernels {

constexpr int pad8(int n) { return (n + 7) & ~7; }

// 64-byte aligned, zero-initialised elements (floats; IEEE half bit patterns for the step's
// half-precision weights, PreparedLayer::in_h and the like); never reallocates after construction.
template <class T>
class AlignedArray {
public:
    AlignedArray() = default;
    explicit AlignedArray(size_t n) : n_(n) {
        const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
        data_ = static_cast<T*>(std::aligned_alloc(64, bytes ? bytes : 64));
        if (!data_) throw std::bad_alloc();
        for (size_t i = 0; i < n; ++i) data_[i] = T(0);
    }
    ~AlignedArray() { std::free(data_); }
    AlignedArray(AlignedArray&& o) noexcept : data_(o.data_), n_(o.n_) { o.data_ = nullptr; o.n_ = 0; }
    AlignedArray& operator=(AlignedArray&& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(n_, o.n_);
        return *this;
    }
    AlignedArray(const AlignedArray&) = delete;
    AlignedArray& operator=(const AlignedArray&) = delete;
    T* data() const { return data_; }
    size_t size() const { return n_; }

private:
    T* data_ = nullptr;
    size_t n_ = 0;
};
using AlignedFloats = AlignedArray<float>;
using AlignedHalves = AlignedArray<uint16_t>;

struct PreparedLayer {
    const float* in_T;    // [D][2Ep]  in_proj with the RMSNorm weight folded in (row i · norm_w[i]),
                          //           unless in_unfolded; columns 0..Ep-1 give u, Ep..2Ep-1 give z
    const float* conv_T;  // [K][Ep]
    const float* conv_b;  // [Ep]
    const float* xr;      // [R][Ep]   the x_proj rows giving r (zero past E): one dot product each
    const float* xbc_T;   // [E][BCp]  the x_proj rows giving B (N) then C (N), transposed; zero pad
    const float* dt_T;    // [R][Ep]
    const float* dt_b;    // [Ep]
    const float* A2_T;    // [N][Ep]   A·log2(e) = -exp(A_log)·log2(e), so exp(Δ·A) = 2^(Δ·A2)
    const float* dt_max;  // [Ep]      125 / min_n |A2|: past it every decay is < 2^-125, i.e. zero
    const float* Dskip;   // [Ep]
    const float* out_T;   // [E][Dp]
    // A_log rows of the harmonic form (harmonic_decay.h): exp(Δ·A[n]) = exp(Δ·A[0])^(n+1), one
    // exponential per channel and the rest products (only row 0 of A2_T is read then).
    bool harmonic;
    // Δ fixed per channel (fixed_dt.h): delta_c [Ep] = softplus(dt_b) and abar_T [N][Ep] =
    // exp(Δ·A), made once here; the rows then skip r, the softplus and the exponentials.
    bool fixed_dt;
    const float* delta_c;  // [Ep] (fixed_dt only)
    const float* abar_T;   // [N][Ep] (fixed_dt only)
    // An LTI layer (is_lti; fixed_dt too): B and C are constants per channel, so a row needs no
    // x_proj product at all. bbar_T [N][Ep] = Δ·B and C_T [N][Ep] = C, made once here, and
    //   s_t = abar ⊙ s_{t-1} + bbar ⊙ u_t;   y_t = Σ_n C ⊙ s_t + D ⊙ u_t
    bool lti;
    const float* bbar_T;  // [N][Ep] (lti only; zero past E)
    const float* C_T;     // [N][Ep] (lti only; zero past E)
    // A layer whose in_proj is exactly in halves (a model stored as F16), d_model over 32 (not
    // the register step's shapes) and Ep >= Dp: in_T is in_proj as it is, the norm weight left
    // unfolded, and every path multiplies x by in_norm before the product (in_row, in_rows), so
    // that in_T's halves are exact too. Decided by the weights alone, so the halves' presence
    // (PrepareOptions) does not change a float.
    bool in_unfolded = false;
    // [Ep] 125 / max_n |A2|: up to it no Δ·A2 falls under -125, so a block of channels whose Δ
    // are all under it takes its exponentials without the clamp (Decays::safe)
    const float* dt_safe = nullptr;
    const float* in_norm = nullptr;   // [Dp]     the layer's RMSNorm weight
    // Half-precision copies of the large products, which the single-sample step reads in their
    // place (the scan keeps the floats): made by prepare_model only where every weight of the
    // matrix is exactly an IEEE half, and null otherwise. Widened to float they are the float
    // matrices bit for bit, so the step's floats do not change; a step that streams its weights
    // from L2 or L3 moves half the bytes. in_h only where in_unfolded.
    const uint16_t* in_h = nullptr;   // [D][2Ep]
    const uint16_t* xbc_h = nullptr;  // [E][BCp]
    const uint16_t* out_h = nullptr;  // [E][Dp]
};

// Which decays a layer's SSM computes (fast_impl.inc's Decays): one exponential per state,
// one per channel (harmonic), or none (a fixed Δ's table; an LTI layer's table, with its B and
// C per channel instead of per row).
enum class DecayForm : int { free = 0, harmonic = 1, table = 2, lti = 3 };
inline DecayForm decay_form(const PreparedLayer& w) {
    return w.lti ? DecayForm::lti
           : w.fixed_dt ? DecayForm::table
           : w.harmonic ? DecayForm::harmonic
                        : DecayForm::free;
}
// Whether the decays come from the table abar_T (made once) rather than from exponentials.
constexpr bool decays_from_table(DecayForm f) { return f == DecayForm::table || f == DecayForm::lti; }

struct PreparedModel {
    ModelView view;
    int D, Dp, E, Ep, N, K, R, M, V, Vp, I, n_layers;
    int BCp;  // pad8(2N): B and C of one row
    int Mp;   // pad8(BCp + R): a row of [B, C, pad, r] (the step's and the scan's dbc)
    float eps;
    AlignedFloats storage;
    std::vector<PreparedLayer> layers;
    const float* norm_f;  // [Dp]
    const float* embed;   // [V][Dp]
    const float* lm_T;    // [D][Vp]   lm_head with norm_f folded in (row i · norm_f[i])
    const float* stem_T;  // [I][Dp]
    const float* stem_b;  // [Dp]
    const float* head_w;  // [Dp]
    float head_b;
    bool skip;
    // lm_head as PreparedLayer's in_proj: lm_unfolded, lm_T is lm_head itself and x is multiplied
    // by norm_f first; lm_h its halves (only where lm_unfolded).
    bool lm_unfolded = false;
    const uint16_t* lm_h = nullptr;   // [D][Vp]
    AlignedHalves halves;             // the storage of every *_h above

    // Per stream and layer: conv window [K-1][Ep], then SSM state [N][Ep].
    int64_t layer_state_floats() const { return int64_t(K - 1) * Ep + int64_t(N) * Ep; }
    int64_t stream_state_floats() const { return layer_state_floats() * n_layers; }
    // Step scratch: h [Dp], uz [2Ep], u [Ep], dbc [Mp], delta [Ep], y [Ep], logits [Vp]; then,
    // from a multiple of 16 floats (64 bytes), B and C of the current sample, each value
    // broadcast to a whole vector: [2N][16].
    int64_t step_bcast_offset() const { return (int64_t(Dp) + 5 * Ep + Mp + Vp + 15) & ~int64_t(15); }
    int64_t step_tmp_floats() const { return step_bcast_offset() + 2 * int64_t(N) * 16; }
    // Scan scratch of one thread: h [Dp], logits [Vp], then (64-byte aligned) B and C of the
    // current row broadcast: [2N][16]. A multiple of 16 floats, so every thread's is aligned.
    int64_t scan_bcast_offset() const { return (int64_t(Dp) + Vp + 15) & ~int64_t(15); }
    int64_t scan_tmp_floats() const { return scan_bcast_offset() + 2 * int64_t(N) * 16; }
};

struct StepState {
    int streams = 0;
    int max_chunk = 0;        // T: scan chunk length
    int max_threads = 1;      // scan threads this scratch has room for
    int64_t per_stream = 0;   // floats of state per stream
    AlignedFloats state;      // [S][n_layers][(K-1)·Ep + N·Ep]
    AlignedFloats hidden;     // [S][Dp]          step: residual stream
    AlignedFloats step_tmp;   // step: [2][step_tmp_floats()] (a pair of streams); scan: [threads][scan_tmp_floats()]
    // scan scratch for one chunk of T rows
    AlignedFloats x;          // [T][Dp]   residual stream
    AlignedFloats uz;         // [T][2Ep]
    AlignedFloats u;          // [T][Ep]
    AlignedFloats dbc;        // [T][Mp]
    AlignedFloats delta;      // [T][Ep]
    AlignedFloats y;          // [T][Ep]
};

// The per-ISA entry points (fast_impl.inc compiled into namespaces baseline, avx2 and avx512).
#define MW_DECLARE_ISA(ns)                                                                    \
    namespace ns {                                                                            \
    void step_tokens(const PreparedModel&, StepState&, const int32_t*, float*);               \
    void step_continuous(const PreparedModel&, StepState&, const float*, float*);             \
    void step_hidden(const PreparedModel&, StepState&, const float*, float*);                 \
    void add_matvec_T(const float*, const float*, int, int, float*);                          \
    void scan(const PreparedModel&, StepState&, int, const int32_t*, const float*, int64_t,   \
              float*, ThreadPool*);                                                            \
    float probe_fma(int64_t);                                                                 \
    float probe_exp(int64_t);                                                                 \
    float probe_l1(int64_t, float*);                                                          \
    float probe_read(int64_t, const float*, int64_t);                                         \
    int probe_lanes();                                                                        \
    }
MW_DECLARE_ISA(baseline)
MW_DECLARE_ISA(avx2)
MW_DECLARE_ISA(avx512)
#undef MW_DECLARE_ISA

} // namespace mw::kernels
