// The training tape: weight re-layout, state in and out, sizing, gradient scatter, and the
// run-time choice between the baseline and AVX2+FMA builds of backward_impl.inc.
#include "kernels/backward.h"

#include "kernels/backward_internal.h"
#include "kernels/fast.h"
#include "kernels/fixed_dt.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mw::kernels {

int64_t tape_state_floats(const Dims& d) {
    return int64_t(d.n_layers) * (int64_t(d.d_conv - 1) + d.d_state) * d.d_inner;
}

TrainTape::TrainTape(int chunk) : d_(std::make_unique<TapeData>()) {
    if (chunk < 1) throw std::invalid_argument("TrainTape: chunk must be >= 1, got " + std::to_string(chunk));
    d_->chunk = chunk;
}
TrainTape::~TrainTape() = default;
TrainTape::TrainTape(TrainTape&&) noexcept = default;
TrainTape& TrainTape::operator=(TrainTape&&) noexcept = default;

int TrainTape::chunk() const { return d_->chunk; }
int64_t TrainTape::length() const { return d_->ready ? d_->L : 0; }

int64_t TrainTape::bytes_held() const {
    const TapeData& d = *d_;
    size_t n = 0;
    for (const AlignedFloats* b :
         {&d.weights, &d.grads, &d.X, &d.RS, &d.UZ, &d.DBC, &d.CK, &d.WIN0, &d.SFIN, &d.XIN, &d.H,
          &d.CPRE, &d.U, &d.DELTA, &d.SIG, &d.G, &d.DG, &d.DUZ, &d.DU, &d.DDT, &d.DDBC, &d.DR,
          &d.DH, &d.DX, &d.DCX, &d.LOGP, &d.SB, &d.DECB, &d.DBV, &d.DCV, &d.DYB, &d.VN,
          &d.carryA, &d.carryDC})
        n += b->size() * sizeof(float);
    n += d.tokens.capacity() * sizeof(int32_t);
    return int64_t(n);
}

namespace {

// Sizes, prepared weights, gradient accumulators and the tape's buffers for model m and L.
void prepare(TapeData& d, const ModelView& m, int64_t L) {
    const Dims& dims = m.dims;
    if (L < 1) throw std::invalid_argument("TrainTape: sequence length must be >= 1");
    if (dims.n_layers < 1 || dims.d_model < 1 || dims.d_inner < 1 || dims.d_state < 1 ||
        dims.d_conv < 1 || dims.dt_rank < 1)
        throw std::invalid_argument("TrainTape: model sizes must be positive");
    if (dims.d_conv > 64) throw std::invalid_argument("TrainTape: d_conv > 64 is not supported");
    d.D = dims.d_model; d.Dp = pad8(d.D);
    d.E = dims.d_inner; d.Ep = pad8(d.E);
    d.N = dims.d_state; d.K = dims.d_conv;
    d.R = dims.dt_rank; d.Rp = pad8(d.R);
    d.M = d.R + 2 * d.N; d.Mp = pad8(d.M);
    d.head = m.head;
    d.V = m.head == HeadKind::tokens ? m.vocab : 0; d.Vp = pad8(d.V);
    d.I = m.head == HeadKind::continuous ? m.n_in : 0;
    d.n_layers = dims.n_layers;
    d.eps = dims.norm_eps;
    d.skip = m.head == HeadKind::continuous && m.skip;
    d.L = L;
    d.n_chunks = (L + d.chunk - 1) / d.chunk;
    const int D = d.D, Dp = d.Dp, E = d.E, Ep = d.Ep, N = d.N, K = d.K, R = d.R, Rp = d.Rp,
              M = d.M, Mp = d.Mp, V = d.V, Vp = d.Vp, I = d.I, nl = d.n_layers;
    const int64_t T = d.chunk;

    // Selective layers have x_proj and dt_proj, LTI layers B, C and their constants instead.
    d.dbc_slot.assign(size_t(nl), -1);
    int n_sel = 0;
    for (int l = 0; l < nl; ++l)
        if (!is_lti(m.layers[l])) d.dbc_slot[size_t(l)] = n_sel++;
    const int n_lti = nl - n_sel;

    // ---- weights, re-laid-out (padding zero) ----
    const int64_t per_layer = Dp + int64_t(D) * 2 * Ep + int64_t(2) * Ep * Dp + int64_t(K) * Ep + Ep +
                              Ep + 2 * int64_t(N) * Ep + Ep + Ep + int64_t(E) * Dp + int64_t(D) * Ep;
    const int64_t per_sel = int64_t(E) * Mp + int64_t(M) * Ep + int64_t(R) * Ep + int64_t(Ep) * Rp;
    const int64_t per_lti = 3 * int64_t(N) * Ep + 2 * int64_t(Ep);
    const int64_t heads = Dp + int64_t(V) * Dp + int64_t(D) * Vp + int64_t(V) * Dp + int64_t(I) * Dp + Dp + Dp;
    const size_t n_weights = size_t(per_layer * nl + per_sel * n_sel + per_lti * n_lti + heads);
    grow(d.weights, n_weights);
    std::memset(d.weights.data(), 0, n_weights * sizeof(float));
    float* cursor = d.weights.data();
    auto take = [&](int64_t n) { float* p = cursor; cursor += n; return p; };
    const double log2e = 1.4426950408889634;
    d.layers.clear();
    for (int l = 0; l < nl; ++l) {
        const LayerView& w = m.layers[l];
        const bool lti = is_lti(w);
        float* norm_w = take(Dp);
        float* in_T = take(int64_t(D) * 2 * Ep);
        float* in_W = take(int64_t(2) * Ep * Dp);
        float* conv_T = take(int64_t(K) * Ep);
        float* conv_b = take(Ep);
        float* x_T = lti ? nullptr : take(int64_t(E) * Mp);
        float* x_W = lti ? nullptr : take(int64_t(M) * Ep);
        float* dt_T = lti ? nullptr : take(int64_t(R) * Ep);
        float* dt_W = lti ? nullptr : take(int64_t(Ep) * Rp);
        float* B = lti ? take(int64_t(N) * Ep) : nullptr;
        float* C = lti ? take(int64_t(N) * Ep) : nullptr;
        float* dt_c = lti ? take(Ep) : nullptr;
        float* sig_c = lti ? take(Ep) : nullptr;
        float* dec_c = lti ? take(int64_t(N) * Ep) : nullptr;
        float* dt_b = take(Ep);
        float* A = take(int64_t(N) * Ep);
        float* A2 = take(int64_t(N) * Ep);
        float* dt_max = take(Ep);
        float* Dskip = take(Ep);
        float* out_T = take(int64_t(E) * Dp);
        float* out_W = take(int64_t(D) * Ep);
        for (int i = 0; i < D; ++i) norm_w[i] = w.norm_w[i];
        for (int o = 0; o < 2 * E; ++o) {
            const int op = o < E ? o : Ep + o - E;
            for (int i = 0; i < D; ++i) {
                in_T[int64_t(i) * 2 * Ep + op] = w.in_proj_w[int64_t(o) * D + i];
                in_W[int64_t(op) * Dp + i] = w.in_proj_w[int64_t(o) * D + i];
            }
        }
        for (int e = 0; e < E; ++e) {
            for (int k = 0; k < K; ++k) conv_T[int64_t(k) * Ep + e] = w.conv_w[int64_t(e) * K + k];
            conv_b[e] = w.conv_b ? w.conv_b[e] : 0.0f;
            if (!lti) {
                for (int o = 0; o < M; ++o) {
                    x_T[int64_t(e) * Mp + o] = w.x_proj_w[int64_t(o) * E + e];
                    x_W[int64_t(o) * Ep + e] = w.x_proj_w[int64_t(o) * E + e];
                }
                for (int r = 0; r < R; ++r) {
                    dt_T[int64_t(r) * Ep + e] = w.dt_proj_w[int64_t(e) * R + r];
                    dt_W[int64_t(e) * Rp + r] = w.dt_proj_w[int64_t(e) * R + r];
                }
            }
            dt_b[e] = w.dt_proj_b[e];
            for (int n = 0; n < N; ++n) {
                const double a = -std::exp(double(w.A_log[int64_t(e) * N + n]));
                A[int64_t(n) * Ep + e] = float(a);
                A2[int64_t(n) * Ep + e] = float(a * log2e);
            }
            dt_max[e] = decays_vanish_dt(w.A_log + int64_t(e) * N, N);  // as kernels/fast.cpp
            if (lti) {
                // Δ = softplus(b) and σ(b) in float64; the decay 2^(min(Δ, dt_max)·A2) as the
                // fast kernels' table has it (past dt_max every decay is below 2^-125 anyway)
                const double x = double(dt_b[e]);
                const double ex = std::exp(-std::fabs(x));
                dt_c[e] = float(fixed_delta(x));
                sig_c[e] = float(x >= 0.0 ? 1.0 / (1.0 + ex) : ex / (1.0 + ex));
                const double dtc = double(std::min(dt_c[e], dt_max[e]));
                for (int n = 0; n < N; ++n) {
                    B[int64_t(n) * Ep + e] = w.lti_B[int64_t(e) * N + n];
                    C[int64_t(n) * Ep + e] = w.lti_C[int64_t(e) * N + n];
                    dec_c[int64_t(n) * Ep + e] = float(std::exp2(dtc * double(A2[int64_t(n) * Ep + e])));
                }
            }
            Dskip[e] = w.D[e];
            for (int o = 0; o < D; ++o) {
                out_T[int64_t(e) * Dp + o] = w.out_proj_w[int64_t(o) * E + e];
                out_W[int64_t(o) * Ep + e] = w.out_proj_w[int64_t(o) * E + e];
            }
        }
        for (int e = E; e < Ep; ++e) dt_max[e] = 3.0e38f;  // padding channels: A = 0
        d.layers.push_back({norm_w, in_T, in_W, conv_T, conv_b, x_T, x_W, dt_T, dt_W, dt_b, B, C, dt_c,
                            sig_c, dec_c, A, A2, dt_max, Dskip, out_T, out_W, lti});
    }
    float* norm_f = take(Dp);
    float* embed = take(int64_t(V) * Dp);
    float* lm_T = take(int64_t(D) * Vp);
    float* lm_W = take(int64_t(V) * Dp);
    float* stem_T = take(int64_t(I) * Dp);
    float* stem_b = take(Dp);
    float* head_w = take(Dp);
    for (int i = 0; i < D && m.norm_f_w; ++i) norm_f[i] = m.norm_f_w[i];  // a stack alone has none
    if (m.head == HeadKind::tokens) {
        for (int v = 0; v < V; ++v)
            for (int i = 0; i < D; ++i) {
                embed[int64_t(v) * Dp + i] = m.embed_w[int64_t(v) * D + i];
                lm_T[int64_t(i) * Vp + v] = m.lm_head_w[int64_t(v) * D + i];
                lm_W[int64_t(v) * Dp + i] = m.lm_head_w[int64_t(v) * D + i];
            }
    } else if (m.head == HeadKind::continuous) {
        for (int i = 0; i < D; ++i) {
            for (int j = 0; j < I; ++j) stem_T[int64_t(j) * Dp + i] = m.stem_w[int64_t(i) * I + j];
            stem_b[i] = m.stem_b[i];
            head_w[i] = m.head_w[i];
        }
        d.head_b = m.head_b[0];
    }
    if (cursor != d.weights.data() + n_weights) throw std::logic_error("TrainTape: weight plan out of step");
    d.norm_f = norm_f; d.embed = embed; d.lm_T = lm_T; d.lm_W = lm_W;
    d.stem_T = stem_T; d.stem_b = stem_b; d.head_w = head_w;

    // ---- gradient accumulators (carved now, zeroed by each backward) ----
    const int64_t g_layer = Dp + int64_t(D) * 2 * Ep + int64_t(K) * Ep + Ep + Ep + int64_t(N) * Ep + Ep +
                            int64_t(E) * Dp;
    const int64_t g_sel = int64_t(E) * Mp + int64_t(R) * Ep;
    const int64_t g_lti = 2 * int64_t(N) * Ep;
    const int64_t g_heads = Dp + int64_t(V) * Dp + int64_t(D) * Vp + int64_t(I) * Dp + Dp + Dp;
    grow(d.grads, size_t(g_layer * nl + g_sel * n_sel + g_lti * n_lti + g_heads));
    cursor = d.grads.data();
    d.glayers.clear();
    for (int l = 0; l < nl; ++l) {
        const bool lti = d.layers[size_t(l)].lti;
        TapeLayerGrad g;
        g.norm_w = take(Dp);
        g.in_T = take(int64_t(D) * 2 * Ep);
        g.conv_T = take(int64_t(K) * Ep);
        g.conv_b = take(Ep);
        g.x_T = lti ? nullptr : take(int64_t(E) * Mp);
        g.dt_T = lti ? nullptr : take(int64_t(R) * Ep);
        g.B = lti ? take(int64_t(N) * Ep) : nullptr;
        g.C = lti ? take(int64_t(N) * Ep) : nullptr;
        g.dt_b = take(Ep);
        g.A_log = take(int64_t(N) * Ep);
        g.D = take(Ep);
        g.out_T = take(int64_t(E) * Dp);
        d.glayers.push_back(g);
    }
    d.g_norm_f = take(Dp);
    d.g_embed = take(int64_t(V) * Dp);
    d.g_lm_T = take(int64_t(D) * Vp);
    d.g_stem_T = take(int64_t(I) * Dp);
    d.g_stem_b = take(Dp);
    d.g_head_w = take(Dp);
    if (cursor != d.grads.data() + (g_layer * nl + g_sel * n_sel + g_lti * n_lti + g_heads))
        throw std::logic_error("TrainTape: gradient plan out of step");

    // ---- the tape ----
    grow(d.X, size_t(int64_t(nl + 1) * L * Dp));
    grow(d.RS, size_t(int64_t(nl + 1) * L));
    grow(d.UZ, size_t(int64_t(nl) * L * 2 * Ep));
    grow(d.DBC, size_t(std::max<int64_t>(1, int64_t(n_sel) * L * Mp)));
    grow(d.CK, size_t(int64_t(nl) * d.n_chunks * N * Ep));
    grow(d.WIN0, size_t(std::max<int64_t>(1, int64_t(nl) * (K - 1) * Ep)));
    grow(d.SFIN, size_t(int64_t(nl) * N * Ep));
    if (m.head == HeadKind::continuous) grow(d.XIN, size_t(L * I));
    else if (m.head == HeadKind::tokens) d.tokens.resize(size_t(L));

    // ---- scratch for one chunk ----
    grow(d.H, size_t(T * Dp));
    for (AlignedFloats* b : {&d.CPRE, &d.U, &d.DELTA, &d.SIG, &d.G, &d.DG, &d.DU, &d.DDT})
        grow(*b, size_t(T * Ep));
    grow(d.DUZ, size_t(T * 2 * Ep));
    if (n_sel > 0) {  // x_proj's and dt_proj's backward
        grow(d.DDBC, size_t(T * Mp));
        grow(d.DR, size_t(T * Rp));
        for (AlignedFloats* b : {&d.DBV, &d.DCV}) grow(*b, size_t(T * N * 8));
    }
    grow(d.DH, size_t(T * Dp));
    grow(d.DX, size_t(T * Dp));
    grow(d.DCX, size_t((T + K - 1) * Ep));
    grow(d.LOGP, size_t(std::max<int64_t>(8, T * Vp)));
    grow(d.SB, size_t(T * N * 8));
    if (n_sel > 0) grow(d.DECB, size_t(T * N * 8));  // LTI layers' decays are constants
    grow(d.DYB, size_t(T * 8));
    grow(d.VN, size_t(4 * N * 8));
    grow(d.carryA, size_t(int64_t(nl) * N * Ep));
    grow(d.carryDC, size_t(std::max<int64_t>(1, int64_t(nl) * (K - 1) * Ep)));
}

// state_in (unpadded, tape_state_floats layout) -> WIN0 and CK[.][0]; null: zero.
void load_state(TapeData& d, const float* state_in) {
    const int E = d.E, Ep = d.Ep, N = d.N, K = d.K;
    const int64_t per_layer = int64_t(K - 1 + N) * E;
    for (int l = 0; l < d.n_layers; ++l) {
        float* win = d.WIN0_at(l);
        float* s = d.CK_at(l, 0);
        std::memset(win, 0, sizeof(float) * size_t(int64_t(K - 1) * Ep));
        std::memset(s, 0, sizeof(float) * size_t(int64_t(N) * Ep));
        if (!state_in) continue;
        const float* src = state_in + l * per_layer;
        for (int j = 0; j < K - 1; ++j) std::memcpy(win + int64_t(j) * Ep, src + int64_t(j) * E, sizeof(float) * size_t(E));
        for (int n = 0; n < N; ++n)
            std::memcpy(s + int64_t(n) * Ep, src + int64_t(K - 1 + n) * E, sizeof(float) * size_t(E));
    }
}

// The state after the last sample -> state_out (unpadded).
void store_state(const TapeData& d, float* state_out) {
    const int E = d.E, N = d.N, K = d.K;
    const int64_t per_layer = int64_t(K - 1 + N) * E;
    for (int l = 0; l < d.n_layers; ++l) {
        float* dst = state_out + l * per_layer;
        for (int j = 0; j < K - 1; ++j)  // the last K-1 pre-conv inputs
            std::memcpy(dst + int64_t(j) * E, d.xc_at(l, d.L - (K - 1) + j), sizeof(float) * size_t(E));
        for (int n = 0; n < N; ++n)
            std::memcpy(dst + int64_t(K - 1 + n) * E, d.SFIN_at(l) + int64_t(n) * d.Ep, sizeof(float) * size_t(E));
    }
}

void run_forward(TapeData& d, float* out) {
    if (active_isa() != Isa::baseline) bwd_avx2::tape_forward(d, out);  // avx2 build serves avx512 too
    else bwd_baseline::tape_forward(d, out);
    d.ready = true;
}

} // namespace

void TrainTape::forward_continuous(const ModelView& m, const float* x, int64_t L,
                                   const float* state_in, float* y, float* state_out) {
    if (m.head != HeadKind::continuous)
        throw std::invalid_argument("TrainTape::forward_continuous: the model is a generator (tokens in)");
    TapeData& d = *d_;
    d.ready = false;
    prepare(d, m, L);
    d.hidden_in = false;
    std::memcpy(d.XIN.data(), x, sizeof(float) * size_t(L * d.I));
    load_state(d, state_in);
    run_forward(d, y);
    if (state_out) store_state(d, state_out);
}

void TrainTape::forward_tokens(const ModelView& m, const int32_t* tokens, int64_t L,
                               const float* state_in, float* logits, float* state_out) {
    if (m.head != HeadKind::tokens)
        throw std::invalid_argument("TrainTape::forward_tokens: the model is an effect (samples in)");
    TapeData& d = *d_;
    d.ready = false;
    prepare(d, m, L);
    d.hidden_in = false;
    for (int64_t t = 0; t < L; ++t) {
        if (tokens[t] < 0 || tokens[t] >= m.vocab)
            throw std::invalid_argument("TrainTape::forward_tokens: token " + std::to_string(tokens[t]) +
                                        " at position " + std::to_string(t) + " is outside 0.." +
                                        std::to_string(m.vocab - 1));
        d.tokens[size_t(t)] = tokens[t];
    }
    load_state(d, state_in);
    run_forward(d, logits);
    if (state_out) store_state(d, state_out);
}

void TrainTape::forward_hidden(const ModelView& m, const float* x, int64_t L, const float* state_in,
                               float* y, float* state_out) {
    if (m.head == HeadKind::continuous)
        throw std::invalid_argument("TrainTape::forward_hidden: an effect takes its stem's inputs");
    TapeData& d = *d_;
    d.ready = false;
    prepare(d, m, L);
    d.hidden_in = true;
    for (int64_t t = 0; t < L; ++t) {  // the input rows, padding zero, straight onto the tape
        float* row = d.X_at(0, t);
        std::memcpy(row, x + t * d.D, sizeof(float) * size_t(d.D));
        std::fill(row + d.D, row + d.Dp, 0.0f);
    }
    load_state(d, state_in);
    run_forward(d, y);
    if (state_out) store_state(d, state_out);
}

void TrainTape::backward(const float* d_out, const ModelGrad& g, float* d_in) {
    TapeData& d = *d_;
    if (!d.ready) throw std::logic_error("TrainTape::backward: no forward to go back through");
    if (d_in && !d.hidden_in)
        throw std::invalid_argument("TrainTape::backward: d_in is for a forward_hidden's input rows");
    d.d_in = d_in;
    const int D = d.D, Dp = d.Dp, E = d.E, Ep = d.Ep, N = d.N, K = d.K, R = d.R, M = d.M,
              Mp = d.Mp, V = d.V, Vp = d.Vp, I = d.I;
    for (int l = 0; l < d.n_layers; ++l) {  // the gradient's layer kinds must be the forward's
        const LayerGrad& o = g.layers[l];
        if (d.layers[size_t(l)].lti ? !o.lti_B || !o.lti_C : !o.x_proj_w || !o.dt_proj_w)
            throw std::invalid_argument("TrainTape::backward: layer " + std::to_string(l) + " was " +
                                        (d.layers[size_t(l)].lti ? "LTI" : "selective") +
                                        " in the forward, but its gradient lacks that kind's tensors");
    }
    std::memset(d.grads.data(), 0, d.grads.size() * sizeof(float));
    d.g_head_b = 0.0;
    if (active_isa() != Isa::baseline) bwd_avx2::tape_backward(d, d_out);
    else bwd_baseline::tape_backward(d, d_out);

    // Scatter the padded accumulators into the caller's tensors (HF layout), adding.
    for (int l = 0; l < d.n_layers; ++l) {
        const TapeLayerGrad& a = d.glayers[size_t(l)];
        const LayerGrad& o = g.layers[l];
        for (int i = 0; i < D; ++i) o.norm_w[i] += a.norm_w[i];
        for (int r = 0; r < 2 * E; ++r) {
            const int rp = r < E ? r : Ep + r - E;
            for (int i = 0; i < D; ++i) o.in_proj_w[int64_t(r) * D + i] += a.in_T[int64_t(i) * 2 * Ep + rp];
        }
        const bool lti = d.layers[size_t(l)].lti;
        for (int e = 0; e < E; ++e) {
            for (int k = 0; k < K; ++k) o.conv_w[int64_t(e) * K + k] += a.conv_T[int64_t(k) * Ep + e];
            if (o.conv_b) o.conv_b[e] += a.conv_b[e];
            if (lti) {
                for (int n = 0; n < N; ++n) {
                    o.lti_B[int64_t(e) * N + n] += a.B[int64_t(n) * Ep + e];
                    o.lti_C[int64_t(e) * N + n] += a.C[int64_t(n) * Ep + e];
                }
            } else {
                for (int r = 0; r < M; ++r) o.x_proj_w[int64_t(r) * E + e] += a.x_T[int64_t(e) * Mp + r];
                for (int r = 0; r < R; ++r) o.dt_proj_w[int64_t(e) * R + r] += a.dt_T[int64_t(r) * Ep + e];
            }
            o.dt_proj_b[e] += a.dt_b[e];
            for (int n = 0; n < N; ++n) o.A_log[int64_t(e) * N + n] += a.A_log[int64_t(n) * Ep + e];
            o.D[e] += a.D[e];
            for (int i = 0; i < D; ++i) o.out_proj_w[int64_t(i) * E + e] += a.out_T[int64_t(e) * Dp + i];
        }
    }
    if (d.head == HeadKind::hidden) return;  // no norm_f, no head
    for (int i = 0; i < D; ++i) g.norm_f_w[i] += d.g_norm_f[i];
    if (d.head == HeadKind::tokens) {
        for (int v = 0; v < V; ++v)
            for (int i = 0; i < D; ++i) {
                g.embed_w[int64_t(v) * D + i] += d.g_embed[int64_t(v) * Dp + i];
                g.lm_head_w[int64_t(v) * D + i] += d.g_lm_T[int64_t(i) * Vp + v];
            }
    } else {
        for (int i = 0; i < D; ++i) {
            for (int j = 0; j < I; ++j) g.stem_w[int64_t(i) * I + j] += d.g_stem_T[int64_t(j) * Dp + i];
            g.stem_b[i] += d.g_stem_b[i];
            g.head_w[i] += d.g_head_w[i];
        }
        g.head_b[0] += float(d.g_head_b);
    }
}

void rows_times(float* out, int64_t os, const float* a, int64_t as, const float* W, int64_t ws, int K, int M,
                int64_t T, bool accumulate) {
    if (M % 8 != 0) throw std::invalid_argument("rows_times: M must be a multiple of 8, got " + std::to_string(M));
    if (active_isa() != Isa::baseline) bwd_avx2::rows_times(out, os, a, as, W, ws, K, M, T, accumulate);
    else bwd_baseline::rows_times(out, os, a, as, W, ws, K, M, T, accumulate);
}

void outer_sum(float* G, int64_t gs, const float* a, int64_t as, int K, const float* b, int64_t bs, int M,
               int64_t T) {
    if (M % 8 != 0) throw std::invalid_argument("outer_sum: M must be a multiple of 8, got " + std::to_string(M));
    if (active_isa() != Isa::baseline) bwd_avx2::outer_sum(G, gs, a, as, K, b, bs, M, T);
    else bwd_baseline::outer_sum(G, gs, a, as, K, b, bs, M, T);
}

} // namespace mw::kernels
