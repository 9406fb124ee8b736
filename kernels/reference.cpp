// The reference forward: one Mamba block after another over the whole sequence, every value
// in float64, each line the equation it computes (DESIGN.md "The model").
#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mw::kernels {
namespace {

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w            x, out: [L][D]
void rmsnorm(double* out, const double* x, const float* w, int64_t L, int D, double eps) {
    for (int64_t t = 0; t < L; ++t) {
        double ms = 0;
        for (int d = 0; d < D; ++d) ms += x[t * D + d] * x[t * D + d];
        const double scale = 1.0 / std::sqrt(ms / D + eps);
        for (int d = 0; d < D; ++d) out[t * D + d] = x[t * D + d] * scale * w[d];
    }
}

// out[t][m] = sum_k x[t][k] * W[m][k]                      W: [M][K], x: [L][K], out: [L][M]
void matmul(double* out, const double* x, const float* W, int64_t L, int K, int M) {
    for (int64_t t = 0; t < L; ++t)
        for (int m = 0; m < M; ++m) {
            double acc = 0;
            for (int k = 0; k < K; ++k) acc += x[t * K + k] * W[int64_t(m) * K + k];
            out[t * M + m] = acc;
        }
}

// One Mamba mixer plus residual: x <- x + mixer(RMSNorm(x)).      x: [L][D]
// state_in / state_out (either may be null: zero / not wanted): this layer's recurrent state,
// the conv window [K-1][E] (oldest sample first), then the SSM state [N][E].
void mamba_block(const LayerView& w, const Dims& dims, double* x, int64_t L,
                 const double* state_in, double* state_out) {
    const int D = dims.d_model, E = dims.d_inner, N = dims.d_state, K = dims.d_conv,
              R = dims.dt_rank;
    std::vector<double> h(L * D);                  // [L][D]
    std::vector<double> uz(L * 2 * E);             // [L][2E]
    std::vector<double> u(L * E);                  // [L][E]
    std::vector<double> rbc(L * (R + 2 * N));      // [L][R+2N]
    std::vector<double> y(L * E);                  // [L][E]
    std::vector<double> out(L * D);                // [L][D]

    // h = RMSNorm(x)
    rmsnorm(h.data(), x, w.norm_w, L, D, dims.norm_eps);
    // [u, z] = h · in_projᵀ
    matmul(uz.data(), h.data(), w.in_proj_w, L, D, 2 * E);
    // u = SiLU(causal depthwise conv1d(u)): tap K-1 meets sample t, tap 0 sample t-K+1
    for (int64_t t = 0; t < L; ++t)
        for (int e = 0; e < E; ++e) {
            double acc = w.conv_b[e];
            for (int k = 0; k < K; ++k) {
                const int64_t src = t - (K - 1) + k;
                if (src >= 0) acc += w.conv_w[e * K + k] * uz[src * 2 * E + e];
                else if (state_in) acc += w.conv_w[e * K + k] * state_in[(src + K - 1) * E + e];
            }
            u[t * E + e] = silu(acc);
        }
    // [r, B, C] = u · x_projᵀ (a selective layer; an LTI layer's B and C are its own, per channel)
    const bool lti = is_lti(w);
    if (!lti) matmul(rbc.data(), u.data(), w.x_proj_w, L, E, R + 2 * N);
    // s_t = exp(Δ_t·A) ⊙ s_{t-1} + (Δ_t·u_t) ⊗ B_t;   y_t = s_t · C_t + D ⊙ u_t
    std::vector<double> s(size_t(E) * N, 0.0);     // [E][N]
    if (state_in)
        for (int e = 0; e < E; ++e)
            for (int n = 0; n < N; ++n) s[size_t(e) * N + n] = state_in[(K - 1) * E + n * E + e];
    for (int64_t t = 0; t < L; ++t) {
        const double* r = &rbc[t * (R + 2 * N)];
        const double* B = r + R;
        const double* C = B + N;
        for (int e = 0; e < E; ++e) {
            // Δ = softplus(r · dt_projᵀ + dt_bias); an LTI layer: softplus(dt_bias)
            double dt = w.dt_proj_b[e];
            if (!lti)
                for (int q = 0; q < R; ++q) dt += r[q] * w.dt_proj_w[e * R + q];
            dt = softplus(dt);
            const double ue = u[t * E + e];
            double acc = 0;
            for (int n = 0; n < N; ++n) {
                const double A = -std::exp(double(w.A_log[e * N + n]));
                const double Bn = lti ? double(w.lti_B[e * N + n]) : B[n];
                const double Cn = lti ? double(w.lti_C[e * N + n]) : C[n];
                double& sn = s[size_t(e) * N + n];
                sn = std::exp(dt * A) * sn + dt * ue * Bn;
                acc += sn * Cn;
            }
            y[t * E + e] = acc + w.D[e] * ue;
        }
    }
    if (state_out) {
        // the window for what follows: the last K-1 pre-conv inputs, then the SSM state
        for (int j = 0; j < K - 1; ++j) {
            const int64_t src = L - (K - 1) + j;
            for (int e = 0; e < E; ++e)
                state_out[j * E + e] = src >= 0 ? uz[src * 2 * E + e]
                                       : state_in ? state_in[(src + K - 1) * E + e] : 0.0;
        }
        for (int e = 0; e < E; ++e)
            for (int n = 0; n < N; ++n) state_out[(K - 1) * E + n * E + e] = s[size_t(e) * N + n];
    }
    // out = (y ⊙ SiLU(z)) · out_projᵀ
    for (int64_t t = 0; t < L; ++t)
        for (int e = 0; e < E; ++e) y[t * E + e] *= silu(uz[t * 2 * E + E + e]);
    matmul(out.data(), y.data(), w.out_proj_w, L, E, D);
    // x = x + out
    for (int64_t i = 0; i < L * D; ++i) x[i] += out[i];
}

// Floats of recurrent state per layer: conv window [K-1][E], then SSM state [N][E].
int64_t layer_state_size(const Dims& d) { return int64_t(d.d_conv - 1 + d.d_state) * d.d_inner; }

// x <- every layer in turn.      x: [L][D]
void layers(const ModelView& m, double* x, int64_t L, const double* state_in, double* state_out) {
    const int64_t per_layer = layer_state_size(m.dims);
    for (int i = 0; i < m.dims.n_layers; ++i)
        mamba_block(m.layers[i], m.dims, x, L, state_in ? state_in + i * per_layer : nullptr,
                    state_out ? state_out + i * per_layer : nullptr);
}

void backbone(const ModelView& m, const double* in, int64_t L, const double* state_in,
              double* out, double* state_out) {
    const int D = m.dims.d_model;
    std::vector<double> x(in, in + L * D);
    layers(m, x.data(), L, state_in, state_out);
    rmsnorm(out, x.data(), m.norm_f_w, L, D, m.dims.norm_eps);
}

} // namespace

void reference_stack_f64(const ModelView& m, const double* in, int64_t L, const double* state_in,
                         double* out, double* state_out) {
    if (out != in) std::copy(in, in + L * m.dims.d_model, out);
    layers(m, out, L, state_in, state_out);
}

void reference_backbone(const ModelView& m, const double* in, int64_t L, double* out) {
    backbone(m, in, L, nullptr, out, nullptr);
}

void reference_forward_tokens(const ModelView& m, const int32_t* tokens, int64_t L,
                              float* logits) {
    std::vector<double> out(size_t(L) * size_t(m.vocab));
    reference_forward_tokens_f64(m, tokens, L, nullptr, out.data(), nullptr);
    for (size_t i = 0; i < out.size(); ++i) logits[i] = static_cast<float>(out[i]);
}

void reference_forward_continuous(const ModelView& m, const float* xin, int64_t L, float* y) {
    std::vector<double> out(static_cast<size_t>(L));
    reference_forward_continuous_f64(m, xin, L, nullptr, out.data(), nullptr);
    for (int64_t t = 0; t < L; ++t) y[t] = static_cast<float>(out[size_t(t)]);
}

void reference_forward_tokens_f64(const ModelView& m, const int32_t* tokens, int64_t L,
                                  const double* state_in, double* logits, double* state_out) {
    const int D = m.dims.d_model, V = m.vocab;
    std::vector<double> x(L * D), h(L * D);
    // x_t = embeddings[token_t]
    for (int64_t t = 0; t < L; ++t)
        for (int d = 0; d < D; ++d) x[t * D + d] = m.embed_w[int64_t(tokens[t]) * D + d];
    backbone(m, x.data(), L, state_in, h.data(), state_out);
    // logits_t = h_t · lm_headᵀ
    for (int64_t t = 0; t < L; ++t)
        for (int v = 0; v < V; ++v) {
            double acc = 0;
            for (int d = 0; d < D; ++d) acc += h[t * D + d] * m.lm_head_w[int64_t(v) * D + d];
            logits[t * V + v] = acc;
        }
}

void reference_forward_continuous_f64(const ModelView& m, const float* xin, int64_t L,
                                      const double* state_in, double* y, double* state_out) {
    const int D = m.dims.d_model, I = m.n_in;
    std::vector<double> x(L * D), h(L * D);
    // x_t = stem · in_t + stem_bias
    for (int64_t t = 0; t < L; ++t)
        for (int d = 0; d < D; ++d) {
            double acc = m.stem_b[d];
            for (int i = 0; i < I; ++i) acc += m.stem_w[d * I + i] * double(xin[t * I + i]);
            x[t * D + d] = acc;
        }
    backbone(m, x.data(), L, state_in, h.data(), state_out);
    // y_t = head · h_t + head_bias (+ in_t[0] with skip)
    for (int64_t t = 0; t < L; ++t) {
        double acc = m.head_b[0];
        for (int d = 0; d < D; ++d) acc += m.head_w[d] * h[t * D + d];
        if (m.skip) acc += xin[t * I];
        y[t] = acc;
    }
}

} // namespace mw::kernels
