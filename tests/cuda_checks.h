// The CUDA forward's checks against the float64 reference, written once and run two ways:
// by the Catch2 suite (test_cuda.cpp, tag [cuda]) and by the standalone mw_test_cuda
// (test_cuda_main.cpp), which builds on a GPU machine without Catch2. Each check reports its
// relative error ||got - want|| / ||want|| and max |diff|; outputs are poisoned with NaN
// before each GPU run, so an element left unwritten fails.
#pragma once

#include "kernels/cuda/mamba_cuda.h"
#include "kernels/reference.h"
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

namespace mw::test::cuda_checks {

namespace kc = mw::kernels::cuda;

struct Result {
    std::string what;
    double rel_error = 0;
    double max_abs_diff = 0;
    double tolerance = 1e-4;
    bool ok() const { return rel_error <= tolerance; }  // NaN fails
};
using Report = std::function<void(const Result&)>;

inline Result compare(const std::string& what, const std::vector<float>& got,
                      const std::vector<float>& want, double tolerance = 1e-4) {
    Result r;
    r.what = what;
    r.tolerance = tolerance;
    r.rel_error = rel_error(got, want);
    r.max_abs_diff = max_abs_diff(got, want);
    for (float v : got)
        if (!std::isfinite(v)) r.rel_error = std::numeric_limits<double>::quiet_NaN();
    return r;
}

inline std::vector<float> poisoned(int64_t n) {
    return std::vector<float>(size_t(n), std::numeric_limits<float>::quiet_NaN());
}

// x [B][L][I] -> y [B][L], each sequence from the zero state.
inline std::vector<float> reference_effect(const Model& m, const std::vector<float>& x, int B, int64_t L) {
    const int I = m.config().n_in();
    std::vector<float> y(size_t(B * L));
    for (int b = 0; b < B; ++b)
        kernels::reference_forward_continuous(m.view(), x.data() + b * L * I, L, y.data() + b * L);
    return y;
}

// tokens [B][L] -> logits [B][L][V]
inline std::vector<float> reference_tokens(const Model& m, const std::vector<int32_t>& tok, int B, int64_t L) {
    const int V = m.config().vocab;
    std::vector<float> out(size_t(B * L * V));
    for (int b = 0; b < B; ++b)
        kernels::reference_forward_tokens(m.view(), tok.data() + b * L, L, out.data() + b * L * V);
    return out;
}

// B sequences of effect input, each drawn with its own seed.
inline std::vector<float> effect_input(int B, int64_t L, int I, uint64_t seed) {
    std::vector<float> x;
    for (int b = 0; b < B; ++b) {
        auto one = random_effect_input(L, I, seed * 7919 + uint64_t(b));
        x.insert(x.end(), one.begin(), one.end());
    }
    return x;
}

inline std::vector<int32_t> token_input(int B, int64_t L, uint64_t seed) {
    std::vector<int32_t> t;
    for (int b = 0; b < B; ++b) {
        auto one = random_tokens(L, seed * 7919 + uint64_t(b));
        t.insert(t.end(), one.begin(), one.end());
    }
    return t;
}

struct Shape {
    const char* name;
    int d_model, n_layers, d_state, d_conv, n_cond;
    bool skip;
};

inline const std::vector<Shape>& effect_shapes() {
    static const std::vector<Shape> shapes = {
        {"D16xL4 N16 (the small effect, 2 controls, skip)", 16, 4, 16, 4, 2, true},
        {"D64xL2 N16 (E=128)", 64, 2, 16, 4, 0, false},
        {"D8xL3 N5 K3 (odd sizes)", 8, 3, 5, 3, 1, false},
        {"D40xL2 N16 R3 (E=80)", 40, 2, 16, 4, 0, true},
        {"D12xL2 N40 (E=24, two state groups)", 12, 2, 40, 4, 0, false},
        {"D24xL1 N3 K1 (no conv window)", 24, 1, 3, 1, 1, false},
    };
    return shapes;
}

// Chunk lengths to force for a sequence of L steps (0 = the automatic choice).
inline std::vector<int> chunks_for(int64_t L) {
    if (L <= 7) return {0};
    if (L <= 1000) return {0, 64, 7};
    return {0, 333, 2048};
}

inline std::string label(const std::string& what, int B, int64_t L, int chunk) {
    return what + " B" + std::to_string(B) + " L" + std::to_string(L) + " chunk " +
           (chunk ? std::to_string(chunk) : std::string("auto"));
}

// Effects: every shape, batch 1 and 3, lengths 1, 7, 1000, 5000, several chunk lengths.
inline void effect_checks(const Report& report) {
    uint64_t seed = 500;
    for (const Shape& s : effect_shapes()) {
        const Model m = random_model(IoKind::continuous, s.d_model, s.n_layers, s.d_state, ++seed,
                                     s.n_cond, s.skip, s.d_conv);
        const int I = m.config().n_in();
        for (int B : {1, 3}) {
            auto F = kc::make_forward(m.view(), 8192, B);
            for (int64_t L : {int64_t(1), int64_t(7), int64_t(1000), int64_t(5000)}) {
                const auto x = effect_input(B, L, I, ++seed);
                const auto want = reference_effect(m, x, B, L);
                for (int chunk : chunks_for(L)) {
                    kc::set_scan_chunk(*F, chunk);
                    kc::reset(*F);
                    auto got = poisoned(B * L);
                    kc::forward_continuous(*F, x.data(), L, got.data());
                    report(compare(label(std::string("effect ") + s.name, B, L, chunk), got, want));
                }
                if (L >= 1000) {  // the baseline scan kernels too
                    kc::set_scan_chunk(*F, 0);
                    kc::set_scan_variant(*F, 1);
                    kc::reset(*F);
                    auto got = poisoned(B * L);
                    kc::forward_continuous(*F, x.data(), L, got.data());
                    report(compare(label(std::string("effect ") + s.name + " scan variant 1", B, L, 0), got, want));
                    kc::set_scan_variant(*F, 2);
                }
            }
        }
    }
}

// Generators: tied and untied heads, batch 1 and 3, lengths 1, 7, 1500.
inline void generator_checks(const Report& report) {
    struct G { const char* name; int d_model, n_layers; bool tie; };
    const G gens[] = {{"D16xL3 N16 tied", 16, 3, true},
                      {"D16xL3 N16 untied", 16, 3, false},
                      {"D64xL2 N16 (E=128) tied", 64, 2, true}};
    uint64_t seed = 900;
    for (const G& g : gens) {
        const Model m = random_model(IoKind::mulaw8, g.d_model, g.n_layers, 16, ++seed, 0, false, 4, g.tie);
        for (int B : {1, 3}) {
            auto F = kc::make_forward(m.view(), 4096, B);
            for (int64_t L : {int64_t(1), int64_t(7), int64_t(1500)}) {
                const auto tok = token_input(B, L, ++seed);
                const auto want = reference_tokens(m, tok, B, L);
                for (int chunk : L > 7 ? std::vector<int>{0, 100} : std::vector<int>{0}) {
                    kc::set_scan_chunk(*F, chunk);
                    kc::reset(*F);
                    auto got = poisoned(B * L * 256);
                    kc::forward_tokens(*F, tok.data(), L, got.data());
                    report(compare(label(std::string("generator ") + g.name, B, L, chunk), got, want));
                }
            }
        }
    }
}

// State carried across calls and segments, reset, and bad calls refused.
inline void segment_checks(const Report& report) {
    const auto& shapes = effect_shapes();
    uint64_t seed = 1300;
    // An effect in three uneven calls == one call == the reference.
    for (const Shape* s : {&shapes[0], &shapes[1]}) {
        const Model m = random_model(IoKind::continuous, s->d_model, s->n_layers, s->d_state, ++seed,
                                     s->n_cond, s->skip, s->d_conv);
        const int I = m.config().n_in();
        const int B = 3;
        const int64_t L = 5000;
        const auto x = effect_input(B, L, I, ++seed);
        const auto want = reference_effect(m, x, B, L);
        auto F = kc::make_forward(m.view(), 8192, B);
        auto whole = poisoned(B * L);
        kc::forward_continuous(*F, x.data(), L, whole.data());
        report(compare(std::string("effect ") + s->name + " B3 L5000 one call", whole, want));

        // The same sequences in calls of 1234, 7 and 3759 steps: per call, [B][len][I] in.
        kc::reset(*F);
        auto parts = poisoned(B * L);
        int64_t t0 = 0;
        for (int64_t len : {int64_t(1234), int64_t(7), int64_t(3759)}) {
            std::vector<float> xin(size_t(B * len * I)), yout(size_t(B * len));
            for (int b = 0; b < B; ++b)
                std::copy_n(x.begin() + (b * L + t0) * I, len * I, xin.begin() + b * len * I);
            kc::forward_continuous(*F, xin.data(), len, yout.data());
            for (int b = 0; b < B; ++b)
                std::copy_n(yout.begin() + b * len, len, parts.begin() + b * L + t0);
            t0 += len;
        }
        report(compare(std::string("effect ") + s->name + " B3 calls 1234+7+3759 vs reference", parts, want));
        report(compare(std::string("effect ") + s->name + " B3 calls 1234+7+3759 vs one call", parts,
                       whole, 1e-5));

        // reset(): the next call starts from the zero state again.
        kc::reset(*F);
        const int64_t Ls = 100;
        std::vector<float> xs(size_t(B * Ls * I));
        for (int b = 0; b < B; ++b) std::copy_n(x.begin() + b * L * I, Ls * I, xs.begin() + b * Ls * I);
        auto ys = poisoned(B * Ls);
        kc::forward_continuous(*F, xs.data(), Ls, ys.data());
        report(compare(std::string("effect ") + s->name + " B3 after reset, L100", ys,
                       reference_effect(m, xs, B, Ls)));

        // A max_segment shorter than the call: 5 segments inside one call.
        auto F2 = kc::make_forward(m.view(), 1000, B);
        auto segmented = poisoned(B * L);
        kc::forward_continuous(*F2, x.data(), L, segmented.data());
        report(compare(std::string("effect ") + s->name + " B3 L5000 in segments of 1000", segmented, want));
    }

    // A generator in calls of 500, 1 and 999 steps.
    {
        const Model m = random_model(IoKind::mulaw8, 16, 3, 16, ++seed);
        const int B = 3, V = 256;
        const int64_t L = 1500;
        const auto tok = token_input(B, L, ++seed);
        const auto want = reference_tokens(m, tok, B, L);
        auto F = kc::make_forward(m.view(), 600, B);
        auto got = poisoned(B * L * V);
        int64_t t0 = 0;
        for (int64_t len : {int64_t(500), int64_t(1), int64_t(999)}) {
            std::vector<int32_t> tin(size_t(B * len));
            std::vector<float> lout(size_t(B * len * V));
            for (int b = 0; b < B; ++b) std::copy_n(tok.begin() + b * L + t0, len, tin.begin() + b * len);
            kc::forward_tokens(*F, tin.data(), len, lout.data());
            for (int b = 0; b < B; ++b)
                std::copy_n(lout.begin() + b * len * V, len * V, got.begin() + (b * L + t0) * V);
            t0 += len;
        }
        report(compare("generator D16xL3 B3 calls 500+1+999 (max_segment 600)", got, want));

        // Refused: a token out of range, the wrong kind of input.
        auto refused = [&](const std::string& what, const std::function<void()>& call) {
            Result r;
            r.what = what;
            try {
                call();
                r.rel_error = std::numeric_limits<double>::infinity();
            } catch (const std::invalid_argument&) {
                r.rel_error = 0;
            }
            report(r);
        };
        std::vector<int32_t> bad(size_t(B * 4), 3);
        bad[5] = 256;
        std::vector<float> sink(size_t(B * 4 * V));
        refused("generator refuses token 256", [&] { kc::forward_tokens(*F, bad.data(), 4, sink.data()); });
        refused("generator refuses samples", [&] { kc::forward_continuous(*F, sink.data(), 4, sink.data()); });
    }
}

} // namespace mw::test::cuda_checks
