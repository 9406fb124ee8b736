// Helpers shared by the tests: random models and inputs, and error norms.
#pragma once

#include "kernels/fast.h"
#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

namespace mw::test {

// body(isa) once for each of these kernel builds that this CPU can run, with that build
// selected; the dispatcher's own choice is back afterwards, also when a REQUIRE throws. (The
// builds a CPU lacks are skipped silently here; the test "effect: step and chunked scan match
// the float64 reference" names them.)
template <class Body>
void for_each_isa(std::initializer_list<kernels::Isa> isas, Body&& body) {
    struct Reset {
        ~Reset() { kernels::reset_isa_for_testing(); }
    } reset;
    for (const kernels::Isa isa : isas) {
        if (!kernels::isa_supported(isa)) continue;
        kernels::set_isa_for_testing(isa);
        body(isa);
    }
}
template <class Body>
void for_each_isa(Body&& body) {
    for_each_isa({kernels::Isa::avx512, kernels::Isa::avx2, kernels::Isa::baseline}, body);
}

// A random model whose A_log, D, biases and norm weights are away from their init values.
inline Model random_model(IoKind kind, int d_model, int n_layers, int d_state, uint64_t seed,
                          int n_cond = 0, bool skip = false, int d_conv = 4, bool tie = true) {
    ModelConfig c = make_config(kind, d_model, n_layers, d_state);
    c.d_conv = d_conv;
    c.tie_embeddings = tie;
    c.skip = skip;
    for (int i = 0; i < n_cond; ++i) {
        std::string name = "c";  // (not "c" + to_string: gcc 12 warns -Wrestrict on that)
        name += std::to_string(i);
        c.controls.push_back({name, "", 0.0f, 1.0f, 0.5f, false});
    }
    Model m(c);
    m.init_random(seed, 0.3f);
    if (kind == IoKind::continuous && !skip) {
        // Training starts with a quiet head (output near silence); a test model wants the
        // signal path, not the head's bias, to make the output, so the checks see the SSM.
        float* w = m.tensor("head.weight");
        for (int i = 0; i < d_model; ++i) w[i] *= 200.0f;
    }
    return m;
}

// A random model (jitter 0.3) of a test case's shape: any struct with the fields kind, d_model,
// n_layers, d_state, d_conv, dt_rank (0: the default), n_cond, skip, tie, conv_bias and seed.
template <class Case>
Model case_model(const Case& k) {
    ModelConfig c = make_config(k.kind, k.d_model, k.n_layers, k.d_state);
    c.d_conv = k.d_conv;
    if (k.dt_rank > 0) c.dt_rank = k.dt_rank;
    c.tie_embeddings = k.tie;
    c.conv_bias = k.conv_bias;
    c.skip = k.skip;
    for (int i = 0; i < k.n_cond; ++i) {
        std::string name = "c";
        name += std::to_string(i);
        c.controls.push_back({name, "", 0.0f, 1.0f, 0.5f, false});
    }
    Model m(c);
    m.init_random(k.seed, 0.3f);
    return m;
}

// Channel 0 of layer l given A_log = 89 in every state: its rate exp(A_log)·log2(e) overflows a
// float, so its decays vanish at any step (the float paths hold A·log2(e) = -inf).
inline void overflow_channel(Model& m, int l) {
    float* A_log = m.tensor("backbone.layers." + std::to_string(l) + ".mixer.A_log");
    for (int n = 0; n < m.config().d_state; ++n) A_log[n] = 89.0f;
}

// Every layer of m given large steps beside slow states, as trained models have: A_log spread
// over [-1, 4] across each channel's states (|A| from 0.37 to 55: the fastest decays vanish
// within a step of Δ = 1.6, the slowest keep most of the state) and dt biases in [1.5, 3]
// (Δ = softplus(·) about 1.7 to 3). A path that treats a channel as dead once its fastest state
// is gone loses the slow ones: this is what caught the CPU kernels clamping Δ at 125/max|A·log2 e|.
// harmonic: A_log[e][n] = c_e + log(n+1) instead (kernels/harmonic_decay.h's form), c_e in [-1, 1].
// overflow: also overflow_channel(m, l) in every layer.
inline void make_steps_large(Model& m, uint64_t seed, bool harmonic = false, bool overflow = false) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> jitter(-0.05f, 0.05f), bias(1.5f, 3.0f), centre(-1.0f, 1.0f);
    const ModelConfig& c = m.config();
    const int E = c.d_inner, N = c.d_state;
    for (int l = 0; l < c.n_layers; ++l) {
        const std::string p = "backbone.layers." + std::to_string(l) + ".mixer.";
        float* A_log = m.tensor(p + "A_log");
        float* dt_b = m.tensor(p + "dt_proj.bias");
        for (int e = 0; e < E; ++e) {
            const float ce = centre(rng);
            for (int n = 0; n < N; ++n)
                A_log[e * N + n] = harmonic ? ce + std::log(float(n + 1))
                                            : -1.0f + 5.0f * float(n) / float(std::max(1, N - 1)) + jitter(rng);
            dt_b[e] = bias(rng);
        }
        if (overflow) overflow_channel(m, l);
    }
}

inline std::vector<int32_t> random_tokens(int64_t L, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(L));
    for (auto& v : t) v = int32_t(rng() % 256);
    return t;
}

// [L][I]: a sample in [-0.8, 0.8] (a few bursts and near-silences) and controls in [-1, 1].
inline std::vector<float> random_effect_input(int64_t L, int I, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(L * I));
    for (int64_t t = 0; t < L; ++t) {
        const float env = (t / 97) % 3 == 0 ? 0.05f : 0.8f;
        x[size_t(t * I)] = env * u(rng);
        for (int i = 1; i < I; ++i) x[size_t(t * I + i)] = u(rng);
    }
    return x;
}

// ||a - b|| / ||b||
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += double(a[i] - b[i]) * double(a[i] - b[i]);
        den += double(b[i]) * double(b[i]);
    }
    return std::sqrt(num / (den > 0 ? den : 1));
}

// Central difference of loss() in one float weight w, the step h·max(1, |w|) taken as the floats
// really differ: (loss(w+) - loss(w-)) / (w+ - w-), w restored after.
template <class F>
double central_difference(float* w, F&& loss, double h = 1e-3) {
    const float w0 = *w;
    const double step = h * std::max(1.0, double(std::fabs(w0)));
    const float wp = float(double(w0) + step), wm = float(double(w0) - step);
    *w = wp;
    const double lp = loss();
    *w = wm;
    const double lm = loss();
    *w = w0;
    return (lp - lm) / (double(wp) - double(wm));
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
    return m;
}

} // namespace mw::test
