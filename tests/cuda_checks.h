// The CUDA forward's checks against the float64 reference, written once and run two ways:
// by the Catch2 suite (test_cuda.cpp, tag [cuda]) and by the standalone mw_test_cuda
// (test_cuda_main.cpp), which builds on a GPU machine without Catch2. Each check reports its
// relative error ||got - want|| / ||want|| and max |diff|; outputs are poisoned with NaN
// before each GPU run, so an element left unwritten fails.
#pragma once

#include "kernels/cuda/mamba_cuda.h"
#include "kernels/cuda/philox.h"
#include "kernels/fast.h"
#include "kernels/reference.h"
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>
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

        // forward_effect: audio [B][L] and controls held still; the same as those controls in
        // every row, in segments of 1000 and two calls.
        std::vector<float> controls(size_t(I - 1));
        for (int i = 0; i < I - 1; ++i) controls[size_t(i)] = 0.3f + 0.2f * float(i);
        std::vector<float> rows(x.size()), audio(size_t(B * L));
        for (int64_t r = 0; r < B * L; ++r) {
            rows[size_t(r * I)] = audio[size_t(r)] = x[size_t(r * I)];
            std::copy(controls.begin(), controls.end(), rows.begin() + r * I + 1);
        }
        const auto want_fx = reference_effect(m, rows, B, L);
        kc::reset(*F2);
        auto fx = poisoned(B * L);
        const int64_t L1 = 2345;
        std::vector<float> a1(size_t(B * L1)), a2(size_t(B * (L - L1))), y1(a1.size()), y2(a2.size());
        for (int b = 0; b < B; ++b) {
            std::copy_n(audio.begin() + b * L, L1, a1.begin() + b * L1);
            std::copy_n(audio.begin() + b * L + L1, L - L1, a2.begin() + b * (L - L1));
        }
        kc::forward_effect(*F2, a1.data(), controls.data(), L1, y1.data());
        kc::forward_effect(*F2, a2.data(), controls.data(), L - L1, y2.data());
        for (int b = 0; b < B; ++b) {
            std::copy_n(y1.begin() + b * L1, L1, fx.begin() + b * L);
            std::copy_n(y2.begin() + b * (L - L1), L - L1, fx.begin() + b * L + L1);
        }
        report(compare(std::string("effect ") + s->name + " forward_effect B3 calls 2345+2655 (segments of 1000)",
                       fx, want_fx));
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
        refused("generator refuses forward_effect",
                [&] { kc::forward_effect(*F, sink.data(), sink.data(), 4, sink.data()); });
    }
}


// ---- the recurrent step of many streams (kernels/cuda/step.cu) ----------------------------------
// The step's arrays are time-major ([L][S][..]); the Forward's and the reference's stream-major
// ([S][L][..]). a: [A][B][W] -> [B][A][W].
template <class T>
std::vector<T> swap_major(const std::vector<T>& a, int64_t A, int64_t B, int64_t W) {
    std::vector<T> out(a.size());
    for (int64_t i = 0; i < A; ++i)
        for (int64_t j = 0; j < B; ++j)
            std::copy_n(a.begin() + (i * B + j) * W, W, out.begin() + (j * A + i) * W);
    return out;
}

// The first Lr of each stream's L samples: [S][L][W] -> [S][Lr][W].
template <class T>
std::vector<T> head_of(const std::vector<T>& a, int S, int64_t L, int64_t Lr, int64_t W) {
    std::vector<T> out(size_t(S * Lr * W));
    for (int s = 0; s < S; ++s) std::copy_n(a.begin() + s * L * W, Lr * W, out.begin() + s * Lr * W);
    return out;
}

inline std::string step_label(const std::string& what, int S, int64_t L, const std::string& how) {
    return "step " + what + " S" + std::to_string(S) + " L" + std::to_string(L) + (how.empty() ? "" : " " + how);
}

inline std::string tuning_name(const kc::StepTuning& t) {
    return std::string(t.variant == kc::StepVariant::graph ? "graph" : "persistent") + " G" +
           std::to_string(t.group) + " T" + std::to_string(t.threads) + (t.weights_in_smem == 1 ? " smem-w" : "") +
           (t.state_in_smem == 1 ? " smem-s" : "");
}

// A check that `call` throws E (a std::invalid_argument unless told otherwise).
template <class E = std::invalid_argument>
void expect_refused(const Report& report, const std::string& what, const std::function<void()>& call) {
    Result r;
    r.what = what;
    try {
        call();
        r.rel_error = std::numeric_limits<double>::infinity();
    } catch (const E&) {
        r.rel_error = 0;
    } catch (const std::exception&) {
        r.rel_error = std::numeric_limits<double>::infinity();
    }
    report(r);
}

// Effects: the step over L samples of S streams (different inputs each) equals the float64
// reference (first Lr samples: the reference is slow) and the GPU scan forward (all L).
inline void step_effect_checks(const Report& report) {
    uint64_t seed = 2000;
    const auto& shapes = effect_shapes();
    for (size_t si = 0; si < shapes.size(); ++si) {
        const Shape& sh = shapes[si];
        const Model m = random_model(IoKind::continuous, sh.d_model, sh.n_layers, sh.d_state, ++seed,
                                     sh.n_cond, sh.skip, sh.d_conv);
        const int I = m.config().n_in();
        for (int S : {1, 3, 64, 1000}) {
            if (S == 1000 && si >= 2) continue;  // the two shipped-like shapes carry the big batch
            const int64_t L = S == 1000 ? 2500 : 600;  // 2500 > one chunk (2097 samples) at S 1000
            const int64_t Lr = S >= 64 ? 24 : 200;
            const auto x = effect_input(S, L, I, ++seed);  // [S][L][I]
            const auto xt = swap_major(x, S, L, I);        // [L][S][I]
            auto F = kc::make_forward(m.view(), L, S);
            auto scan = poisoned(S * L);
            kc::forward_continuous(*F, x.data(), L, scan.data());
            const auto ref = reference_effect(m, head_of(x, S, L, Lr, I), S, Lr);

            auto st = kc::make_stepper(m.view(), S);
            auto yt = poisoned(L * S);
            kc::step_continuous(*st, xt.data(), yt.data(), L);
            const auto y = swap_major(yt, L, S, 1);
            const std::string how = tuning_name(kc::step_tuning(*st));
            report(compare(step_label(std::string("effect ") + sh.name, S, Lr, how + " vs reference"),
                           head_of(y, S, L, Lr, 1), ref));
            report(compare(step_label(std::string("effect ") + sh.name, S, L, how + " vs GPU scan"), y, scan));
        }
    }

    // Every way of running the step gives the scan's numbers: variants, groups, thread counts,
    // weights in shared memory or not (the small effect, 64 streams).
    {
        const Shape& sh = shapes[0];
        const Model m = random_model(IoKind::continuous, sh.d_model, sh.n_layers, sh.d_state, ++seed,
                                     sh.n_cond, sh.skip, sh.d_conv);
        const int I = m.config().n_in(), S = 64;
        const int64_t L = 300;
        const auto x = effect_input(S, L, I, ++seed);
        const auto xt = swap_major(x, S, L, I);
        auto F = kc::make_forward(m.view(), L, S);
        auto scan = poisoned(S * L);
        kc::forward_continuous(*F, x.data(), L, scan.data());
        auto st = kc::make_stepper(m.view(), S);
        std::vector<kc::StepTuning> tunings;
        for (auto v : {kc::StepVariant::persistent, kc::StepVariant::graph})
            for (int G : {1, 2, 4, 8, 16}) {
                kc::StepTuning t;
                t.variant = v;
                t.group = G;
                tunings.push_back(t);
            }
        for (int T : {32, 96, 512}) {
            kc::StepTuning t;
            t.group = 4;
            t.threads = T;
            tunings.push_back(t);
        }
        for (int w : {0, 1})
            for (int st_ : {0, 1}) {
                kc::StepTuning t;
                t.weights_in_smem = w;
                t.state_in_smem = st_;
                tunings.push_back(t);
            }
        for (const kc::StepTuning& t : tunings) {
            kc::set_step_tuning(*st, t);
            kc::reset_stepper(*st);
            auto yt = poisoned(L * S);
            kc::step_continuous(*st, xt.data(), yt.data(), L);
            report(compare(step_label(std::string("effect ") + sh.name, S, L,
                                      tuning_name(kc::step_tuning(*st)) + " vs GPU scan"),
                           swap_major(yt, L, S, 1), scan));
        }
    }

    // State carried across calls (1 + 333 + 666 samples == one call of 1000), reset clears it,
    // and a stepper refuses the wrong calls.
    for (kc::StepVariant v : {kc::StepVariant::persistent, kc::StepVariant::graph}) {
        const Shape& sh = shapes[1];
        const Model m = random_model(IoKind::continuous, sh.d_model, sh.n_layers, sh.d_state, ++seed,
                                     sh.n_cond, sh.skip, sh.d_conv);
        const int I = m.config().n_in(), S = 3;
        const int64_t L = 1000;
        const auto x = effect_input(S, L, I, ++seed);
        const auto xt = swap_major(x, S, L, I);
        auto st = kc::make_stepper(m.view(), S);
        kc::StepTuning t;
        t.variant = v;
        kc::set_step_tuning(*st, t);
        const std::string vn = v == kc::StepVariant::graph ? "graph" : "persistent";
        auto whole = poisoned(L * S);
        kc::step_continuous(*st, xt.data(), whole.data(), L);
        kc::reset_stepper(*st);
        auto parts = poisoned(L * S);
        int64_t t0 = 0;
        for (int64_t n : {int64_t(1), int64_t(333), int64_t(666)}) {
            kc::step_continuous(*st, xt.data() + t0 * S * I, parts.data() + t0 * S, n);
            t0 += n;
        }
        report(compare(step_label("effect calls 1+333+666 vs one call", S, L, vn), parts, whole, 1e-6));
        report(compare(step_label("effect calls 1+333+666 vs reference", S, L, vn), swap_major(parts, L, S, 1),
                       reference_effect(m, x, S, L)));
        kc::reset_stepper(*st);
        auto again = poisoned(L * S);
        kc::step_continuous(*st, xt.data(), again.data(), L);
        report(compare(step_label("effect after reset vs first run", S, L, vn), again, whole, 0.0));
        kc::step_continuous(*st, xt.data(), again.data(), 0);  // no samples: nothing happens
        expect_refused(report, "step_tokens refused by an effect stepper", [&] {
            std::vector<int32_t> tok(size_t(S), 1);
            std::vector<float> lg(size_t(S) * 256);
            kc::step_tokens(*st, tok.data(), lg.data(), 1);
        });
    }
    // Results do not depend on what device memory held before: with the allocator handing out
    // memory full of NaN bytes, the forward and the step still equal the reference. (The weights'
    // upload once raced the first kernels on the non-blocking streams and passed only while
    // recycled memory happened to hold the same model.)
    {
        const Shape& sh = shapes[1];
        const Model m = random_model(IoKind::continuous, sh.d_model, sh.n_layers, sh.d_state, ++seed,
                                     sh.n_cond, sh.skip, sh.d_conv);
        const int I = m.config().n_in();
        const int64_t L = 600;
        const auto x = effect_input(1, L, I, ++seed);
        const auto ref = reference_effect(m, x, 1, L);
        for (int round = 0; round < 3; ++round) {
            kc::dirty_device_memory_for_testing(int64_t(1) << 31);
            auto F = kc::make_forward(m.view(), L, 1);
            auto scan = poisoned(L);
            kc::forward_continuous(*F, x.data(), L, scan.data());
            report(compare(std::string("forward on dirty device memory, round ") + std::to_string(round), scan, ref));
            kc::dirty_device_memory_for_testing(int64_t(1) << 31);
            auto st = kc::make_stepper(m.view(), 1);
            auto y = poisoned(L);
            kc::step_continuous(*st, x.data(), y.data(), L);
            report(compare(std::string("step on dirty device memory, round ") + std::to_string(round), y, ref));
        }
    }
    {
        const Model m = random_model(IoKind::continuous, 8, 1, 4, ++seed);
        expect_refused(report, "make_stepper refuses 0 streams", [&] { kc::make_stepper(m.view(), 0); });
        expect_refused(report, "make_stepper refuses 4097 streams", [&] { kc::make_stepper(m.view(), 4097); });
        auto st = kc::make_stepper(m.view(), 2);
        expect_refused(report, "set_step_tuning refuses group 3", [&] {
            kc::StepTuning t;
            t.group = 3;
            kc::set_step_tuning(*st, t);
        });
        expect_refused(report, "set_step_tuning refuses 48 threads", [&] {
            kc::StepTuning t;
            t.threads = 48;
            kc::set_step_tuning(*st, t);
        });
    }
}

// Generators, teacher-forced: the step's logits equal the reference and the GPU scan.
inline void step_generator_checks(const Report& report) {
    struct Gen { const char* name; int d_model, n_layers; bool tie; };
    const Gen gens[] = {{"D16xL3 N16 tied", 16, 3, true},
                        {"D16xL3 N16 untied", 16, 3, false},
                        {"D64xL2 N16 (E=128) tied", 64, 2, true}};
    const int V = 256;
    uint64_t seed = 3000;
    for (const Gen& g : gens) {
        const Model m = random_model(IoKind::mulaw8, g.d_model, g.n_layers, 16, ++seed, 0, false, 4, g.tie);
        for (int S : {1, 3, 64, 1000}) {
            const int64_t L = S == 1000 ? 40 : 300;
            const int64_t Lr = S >= 64 ? 16 : 150;
            const auto tok = token_input(S, L, ++seed);  // [S][L]
            auto F = kc::make_forward(m.view(), L, S);
            auto scan = poisoned(S * L * V);
            kc::forward_tokens(*F, tok.data(), L, scan.data());
            const auto ref = reference_tokens(m, head_of(tok, S, L, Lr, 1), S, Lr);

            auto st = kc::make_stepper(m.view(), S);
            const auto tt = swap_major(tok, S, L, 1);  // [L][S]
            auto lt = poisoned(L * S * V);
            kc::step_tokens(*st, tt.data(), lt.data(), L);
            const auto lg = swap_major(lt, L, S, V);  // [S][L][V]
            const std::string how = tuning_name(kc::step_tuning(*st));
            report(compare(step_label(std::string("generator ") + g.name, S, Lr, how + " vs reference"),
                           head_of(lg, S, L, Lr, V), ref));
            report(compare(step_label(std::string("generator ") + g.name, S, L, how + " vs GPU scan"), lg, scan));
        }
    }
}

// softmax(logits / T) in float64 (T > 0).
inline std::vector<double> softmax(const float* logits, int V, double T) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int v = 0; v < V; ++v) mx = std::max(mx, double(logits[v]));
    std::vector<double> p(static_cast<size_t>(V));
    double total = 0;
    for (int v = 0; v < V; ++v) total += p[size_t(v)] = std::exp((double(logits[v]) - mx) / T);
    for (double& q : p) q /= total;
    return p;
}

// Pearson's chi-square of counts against probabilities; classes expected fewer than 5 times
// are pooled. Result: statistic vs a bound of dof + 6·sqrt(2·dof) (a false alarm about once in
// 10^7 runs; a wrong distribution at these counts lands far beyond it).
inline Result chi_square(const std::string& what, const std::vector<int64_t>& counts, const std::vector<double>& p) {
    int64_t n = 0;
    for (int64_t c : counts) n += c;
    double stat = 0, pooled_e = 0, pooled_o = 0;
    int bins = 0;
    for (size_t v = 0; v < p.size(); ++v) {
        const double e = p[v] * double(n);
        if (e >= 5) {
            stat += (double(counts[v]) - e) * (double(counts[v]) - e) / e;
            ++bins;
        } else {
            pooled_e += e;
            pooled_o += double(counts[v]);
        }
    }
    if (pooled_e > 0) {
        stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / std::max(pooled_e, 1e-12);
        ++bins;
    }
    const double dof = std::max(1, bins - 1);
    Result r;
    r.what = what + " (chi-square " + std::to_string(int(stat)) + ", " + std::to_string(int(dof)) + " dof, " +
             std::to_string(n) + " draws)";
    r.rel_error = stat;
    r.tolerance = dof + 6 * std::sqrt(2 * dof);
    return r;
}

// The nucleus of probabilities p for top_p: the shortest prefix of the classes in the order
// (more probable first, lower class among equals) whose mass reaches top_p. Classes within
// `slack` of the boundary are allowed either way (float rounding on the GPU).
inline std::vector<bool> nucleus(const std::vector<double>& p, double top_p, double slack) {
    std::vector<int> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[size_t(a)] > p[size_t(b)]; });
    std::vector<bool> in(p.size(), false);
    double before = 0;
    for (int v : order) {
        if (before >= top_p + slack) break;  // the prefix already reached top_p: v is outside
        in[size_t(v)] = true;
        before += p[size_t(v)];
    }
    return in;
}

// Generation with sampling on the GPU.
inline void generate_checks(const Report& report) {
    const int V = 256;
    uint64_t seed = 4000;

    // Greedy (temperature 0): every class is an argmax of the reference's logits after the
    // GPU's own history (within 1e-4 of the row's scale, for near ties), for 300 samples of 3
    // streams with their own primes, both variants; and in two calls == in one.
    for (kc::StepVariant var : {kc::StepVariant::persistent, kc::StepVariant::graph}) {
        const Model m = random_model(IoKind::mulaw8, 16, 3, 16, ++seed);
        const int S = 3;
        const int64_t P = 20, n = 300;
        const auto prime = token_input(S, P, ++seed);  // [S][P]
        auto st = kc::make_stepper(m.view(), S);
        kc::StepTuning t;
        t.variant = var;
        kc::set_step_tuning(*st, t);
        const std::string vn = var == kc::StepVariant::graph ? "graph" : "persistent";
        std::vector<int32_t> out(size_t(S * n), -1);
        kc::generate_tokens(*st, prime.data(), P, n, 0.0f, 1.0f, 1, out.data());
        double worst = 0;
        int exact = 0;
        bool in_range = true;
        for (int s = 0; s < S; ++s) {
            std::vector<int32_t> hist(prime.begin() + s * P, prime.begin() + (s + 1) * P);
            hist.insert(hist.end(), out.begin() + s * n, out.begin() + (s + 1) * n);
            for (int32_t c : hist) in_range = in_range && c >= 0 && c < V;
            if (!in_range) break;
            const int64_t len = P + n - 1;  // the last class is drawn, not yet fed
            std::vector<float> lg(size_t(len * V));
            kernels::reference_forward_tokens(m.view(), hist.data(), len, lg.data());
            for (int64_t j = 0; j < n; ++j) {
                const float* row = lg.data() + (P - 1 + j) * V;
                const int32_t tok = out[size_t(s * n + j)];
                const float mx = *std::max_element(row, row + V);
                worst = std::max(worst, double(mx - row[tok]) / std::max(1.0, std::fabs(double(mx))));
                exact += int(std::max_element(row, row + V) - row == tok);
            }
        }
        Result r;
        r.what = "generate greedy S3 P20 n300 " + vn + ": each class an argmax of the reference (" +
                 std::to_string(exact) + "/" + std::to_string(S * n) + " exact)";
        r.rel_error = in_range ? worst : std::numeric_limits<double>::infinity();
        report(r);

        // The same in calls of 120 and 180 (the second continues from the pending class).
        kc::reset_stepper(*st);
        std::vector<int32_t> a(size_t(S * 120)), b(size_t(S * 180)), joined;
        kc::generate_tokens(*st, prime.data(), P, 120, 0.0f, 1.0f, 1, a.data());
        kc::generate_tokens(*st, nullptr, 0, 180, 0.0f, 1.0f, 1, b.data());
        for (int s = 0; s < S; ++s) {
            joined.insert(joined.end(), a.begin() + s * 120, a.begin() + (s + 1) * 120);
            joined.insert(joined.end(), b.begin() + s * 180, b.begin() + (s + 1) * 180);
        }
        Result c;
        c.what = "generate greedy " + vn + ": calls of 120 + 180 == one call of 300";
        c.rel_error = joined == out ? 0 : 1;
        report(c);
    }

    // Greedy from silence (no prime) == greedy after the prime [V/2]; with a prime fed alone
    // (n_steps 0) first == with the prime in the same call.
    {
        const Model m = random_model(IoKind::mulaw8, 16, 2, 16, ++seed);
        const int S = 2;
        const int64_t n = 50;
        auto st = kc::make_stepper(m.view(), S);
        std::vector<int32_t> a(size_t(S * n)), b(size_t(S * n)), c(size_t(S * n));
        kc::generate_tokens(*st, nullptr, 0, n, 0.0f, 1.0f, 0, a.data());
        kc::reset_stepper(*st);
        const std::vector<int32_t> silence(size_t(S), V / 2);
        kc::generate_tokens(*st, silence.data(), 1, n, 0.0f, 1.0f, 0, b.data());
        kc::reset_stepper(*st);
        const auto prime = token_input(S, 30, ++seed);
        kc::GenerateParams g;
        g.prime = prime.data();
        g.prime_len = 30;
        g.n_steps = 0;
        kc::generate_tokens(*st, g, nullptr);
        kc::generate_tokens(*st, nullptr, 0, n, 0.0f, 1.0f, 0, c.data());
        kc::reset_stepper(*st);
        std::vector<int32_t> d(size_t(S * n));
        kc::generate_tokens(*st, prime.data(), 30, n, 0.0f, 1.0f, 0, d.data());
        Result r1, r2;
        r1.what = "generate greedy: no prime == the prime [silence]";
        r1.rel_error = a == b ? 0 : 1;
        r2.what = "generate greedy: prime fed alone (n_steps 0), then drawn == in one call";
        r2.rel_error = c == d ? 0 : 1;
        report(r1);
        report(r2);
    }

    // The distribution of the first class after a shared prime, over 16 x 4096 streams (16
    // seeds), against softmax(reference logits / T): T 1 and 0.6 with top_p 1; then top_p 0.5:
    // never a class outside the nucleus, and the nucleus renormalised.
    {
        const Model m = random_model(IoKind::mulaw8, 16, 2, 16, ++seed);
        const int S = kc::kMaxStepStreams;
        const int64_t P = 50;
        const auto prime = random_tokens(P, ++seed);
        std::vector<float> lg(size_t(P * V));
        kernels::reference_forward_tokens(m.view(), prime.data(), P, lg.data());
        const float* last = lg.data() + (P - 1) * V;
        auto st = kc::make_stepper(m.view(), S);
        uint64_t next_seed = 1000;  // every round of every check draws its own random numbers
        auto draw = [&](float T, float top_p, int rounds) {
            std::vector<int64_t> counts(size_t(V), 0);
            std::vector<int32_t> out(static_cast<size_t>(S));
            for (int r = 0; r < rounds; ++r) {
                kc::reset_stepper(*st);
                kc::GenerateParams g;
                g.prime = prime.data();
                g.prime_len = P;
                g.shared_prime = true;
                g.n_steps = 1;
                g.temperature = T;
                g.top_p = top_p;
                g.seed = next_seed++;
                kc::generate_tokens(*st, g, out.data());
                for (int32_t c : out) counts[size_t(std::clamp(c, 0, V - 1))] += (c >= 0 && c < V) ? 1 : 0;
            }
            return counts;
        };
        for (float T : {1.0f, 0.6f}) {
            const auto counts = draw(T, 1.0f, 16);
            report(chi_square("generate T" + std::to_string(T).substr(0, 3) + " top_p 1: first class ~ softmax",
                              counts, softmax(last, V, T)));
        }
        const auto p = softmax(last, V, 1.0);
        const auto in = nucleus(p, 0.5, 1e-4);
        const auto counts = draw(1.0f, 0.5f, 8);
        int64_t outside = 0, kept = 0;
        std::vector<double> q(size_t(V), 0.0);
        double qm = 0;
        for (int v = 0; v < V; ++v) {
            if (!in[size_t(v)]) outside += counts[size_t(v)];
            if (in[size_t(v)]) q[size_t(v)] = p[size_t(v)], qm += p[size_t(v)], ++kept;
        }
        for (double& x : q) x /= qm;
        Result r;
        r.what = "generate top_p 0.5: no class outside the nucleus (" + std::to_string(kept) + " classes; " +
                 std::to_string(outside) + " outside)";
        r.rel_error = double(outside);
        r.tolerance = 0;
        report(r);
        if (kept > 1) report(chi_square("generate top_p 0.5: the nucleus renormalised", counts, q));
    }

    // The documented rule with the documented random number: for 256 streams (their own primes),
    // the class drawn is the one the host picks with u = sampler_uniform(seed, s, 0) from the
    // GPU's own logits (step_tokens over the same prime), unless u·mass lies within 1e-5 of a
    // class boundary. Temperatures 0.8 and 1.3, top_p 1 and 0.9.
    {
        const Model m = random_model(IoKind::mulaw8, 16, 2, 16, ++seed);
        const int S = 256;
        const int64_t P = 12;
        const auto prime = token_input(S, P, ++seed);  // [S][P]
        auto st = kc::make_stepper(m.view(), S);
        const auto pt = swap_major(prime, S, P, 1);
        std::vector<float> lt(size_t(P * S * V));
        kc::step_tokens(*st, pt.data(), lt.data(), P);
        for (float T : {0.8f, 1.3f})
            for (float top_p : {1.0f, 0.9f}) {
                kc::reset_stepper(*st);
                std::vector<int32_t> out(static_cast<size_t>(S));
                const uint64_t sd = 77;
                kc::generate_tokens(*st, prime.data(), P, 1, T, top_p, sd, out.data());
                int bad = 0, edges = 0;
                for (int s = 0; s < S; ++s) {
                    const float* row = lt.data() + ((P - 1) * S + s) * V;
                    const auto pr = softmax(row, V, T);
                    std::vector<int> order(static_cast<size_t>(V));
                    std::iota(order.begin(), order.end(), 0);
                    if (top_p < 1.0f)
                        std::stable_sort(order.begin(), order.end(),
                                         [&](int a, int b) { return pr[size_t(a)] > pr[size_t(b)]; });
                    int keep = V;
                    if (top_p < 1.0f) {
                        double mass = 0;
                        keep = 0;
                        while (keep < V && (keep == 0 || mass < top_p)) mass += pr[size_t(order[size_t(keep++)])];
                    }
                    double mass = 0;
                    for (int i = 0; i < keep; ++i) mass += pr[size_t(order[size_t(i)])];
                    const double r = double(kc::sampler_uniform(sd, uint32_t(s), 0)) * mass;
                    double c = 0;
                    int pick = order[size_t(keep - 1)];
                    bool edge = false;
                    for (int i = 0; i < keep; ++i) {
                        c += pr[size_t(order[size_t(i)])];
                        edge = edge || std::fabs(c - r) < 1e-5;
                        if (c > r) {
                            pick = order[size_t(i)];
                            break;
                        }
                    }
                    if (out[size_t(s)] != pick) (edge ? edges : bad) += 1;
                }
                Result r;
                r.what = "generate S256 T" + std::to_string(T).substr(0, 3) + " top_p " +
                         std::to_string(top_p).substr(0, 3) + ": each class the host's pick for u = philox (" +
                         std::to_string(edges) + " at a boundary)";
                r.rel_error = bad;
                r.tolerance = 0;
                report(r);
            }
    }

    // Seeds: the same seed gives the same classes (also graph vs persistent), another seed
    // others; streams with one shared prime draw differently.
    {
        const Model m = random_model(IoKind::mulaw8, 16, 2, 16, ++seed);
        const int S = 64;
        const int64_t n = 200;
        const auto prime = random_tokens(16, ++seed);
        auto st = kc::make_stepper(m.view(), S);
        auto run = [&](uint64_t sd, kc::StepVariant v) {
            kc::StepTuning t;
            t.variant = v;
            kc::set_step_tuning(*st, t);
            kc::reset_stepper(*st);
            kc::GenerateParams g;
            g.prime = prime.data();
            g.prime_len = 16;
            g.shared_prime = true;
            g.n_steps = n;
            g.temperature = 1.0f;
            g.top_p = 0.9f;
            g.seed = sd;
            std::vector<int32_t> out(size_t(S * n));
            kc::generate_tokens(*st, g, out.data());
            return out;
        };
        const auto a = run(5, kc::StepVariant::persistent);
        const auto b = run(5, kc::StepVariant::persistent);
        const auto c = run(5, kc::StepVariant::graph);
        const auto d = run(6, kc::StepVariant::persistent);
        int64_t differ = 0;
        for (size_t i = 0; i < a.size(); ++i) differ += a[i] != d[i];
        int64_t same_streams = 0;  // stream pairs (0, s) with identical classes
        for (int s = 1; s < S; ++s)
            same_streams += std::equal(a.begin(), a.begin() + n, a.begin() + s * n);
        Result r1, r2, r3, r4;
        r1.what = "generate: the same seed gives the same classes";
        r1.rel_error = a == b ? 0 : 1;
        r2.what = "generate: graph variant == persistent for the same seed";
        r2.rel_error = a == c ? 0 : 1;
        r3.what = "generate: another seed changes most classes (" + std::to_string(differ) + "/" +
                  std::to_string(a.size()) + ")";
        r3.rel_error = differ * 2 > int64_t(a.size()) ? 0 : 1;
        r4.what = "generate: streams with a shared prime draw their own classes";
        r4.rel_error = double(same_streams);
        r4.tolerance = 0;
        report(r1);
        report(r2);
        report(r3);
        report(r4);
    }

    // Long calls cross chunk edges: 1000 streams (chunks of 2097 samples), a prime of 2500
    // then 2500 greedy classes == the same in calls of 1000 + 1500 after the prime fed alone.
    {
        const Model m = random_model(IoKind::mulaw8, 8, 1, 4, ++seed);
        const int S = 1000;
        const int64_t P = 2500, n = 2500;
        const auto prime = token_input(S, P, ++seed);
        auto st = kc::make_stepper(m.view(), S);
        std::vector<int32_t> one(size_t(S * n));
        kc::generate_tokens(*st, prime.data(), P, n, 0.0f, 1.0f, 3, one.data());
        kc::reset_stepper(*st);
        kc::GenerateParams g;
        g.prime = prime.data();
        g.prime_len = P;
        kc::generate_tokens(*st, g, nullptr);
        std::vector<int32_t> a(size_t(S * 1000)), b(size_t(S * 1500)), joined;
        kc::generate_tokens(*st, nullptr, 0, 1000, 0.0f, 1.0f, 3, a.data());
        kc::generate_tokens(*st, nullptr, 0, 1500, 0.0f, 1.0f, 3, b.data());
        for (int s = 0; s < S; ++s) {
            joined.insert(joined.end(), a.begin() + s * 1000, a.begin() + (s + 1) * 1000);
            joined.insert(joined.end(), b.begin() + s * 1500, b.begin() + (s + 1) * 1500);
        }
        Result r;
        r.what = "generate S1000 prime 2500 + 2500 greedy across chunk edges == calls of 1000 + 1500";
        r.rel_error = joined == one ? 0 : 1;
        report(r);
    }

    // Refused: bad parameters, a prime class out of range, no pending class, the wrong kind.
    {
        const Model m = random_model(IoKind::mulaw8, 8, 1, 4, ++seed);
        auto st = kc::make_stepper(m.view(), 2);
        std::vector<int32_t> out(8), prime(4, 3);
        auto gen = [&](float T, float top_p, const int32_t* pr) {
            kc::generate_tokens(*st, pr, pr ? 2 : 0, 2, T, top_p, 0, out.data());
        };
        expect_refused(report, "generate refuses top_p 0", [&] { gen(1.0f, 0.0f, nullptr); });
        expect_refused(report, "generate refuses top_p 1.5", [&] { gen(1.0f, 1.5f, nullptr); });
        expect_refused(report, "generate refuses temperature -1", [&] { gen(-1.0f, 1.0f, nullptr); });
        expect_refused(report, "generate refuses temperature NaN",
                       [&] { gen(std::numeric_limits<float>::quiet_NaN(), 1.0f, nullptr); });
        prime[3] = 256;
        expect_refused(report, "generate refuses prime class 256", [&] { gen(1.0f, 1.0f, prime.data()); });
        expect_refused(report, "step_continuous refused by a generator stepper", [&] {
            std::vector<float> x(2), y(2);
            kc::step_continuous(*st, x.data(), y.data(), 1);
        });
        std::vector<int32_t> tok(2, 5);
        std::vector<float> lg(2 * 256);
        kc::step_tokens(*st, tok.data(), lg.data(), 1);
        expect_refused<std::logic_error>(report, "generate without a prime after step_tokens is refused",
                                         [&] { gen(1.0f, 1.0f, nullptr); });
    }
}

// Greedy generation on the GPU against the CPU step (kernels/fast.h): every GPU class must be
// an argmax (within 1e-4 of the row's scale, for near ties) of the CPU step's logits after the
// GPU's own history, so a rare tie cannot derail the comparison.
inline void cpu_step_checks(const Report& report) {
    const Model m = random_model(IoKind::mulaw8, 16, 3, 16, 4242);
    const int S = 4, V = 256;
    const int64_t P = 25, n = 250;
    const auto prime = token_input(S, P, 4243);  // [S][P]
    auto st = kc::make_stepper(m.view(), S);
    std::vector<int32_t> out(size_t(S * n), -1);
    kc::generate_tokens(*st, prime.data(), P, n, 0.0f, 1.0f, 9, out.data());

    auto prepared = kernels::prepare_model(m.view());
    double worst = 0;
    int exact = 0;
    bool in_range = true;
    for (int s = 0; s < S && in_range; ++s) {
        auto cpu = kernels::make_state(*prepared, 1);
        std::vector<float> logits(static_cast<size_t>(V));
        for (int64_t t = 0; t < P; ++t) kernels::step_tokens(*prepared, *cpu, &prime[size_t(s * P + t)], logits.data());
        for (int64_t j = 0; j < n; ++j) {
            const int32_t tok = out[size_t(s * n + j)];
            if (tok < 0 || tok >= V) {
                in_range = false;
                break;
            }
            const auto best = std::max_element(logits.begin(), logits.end());
            worst = std::max(worst, double(*best - logits[size_t(tok)]) / std::max(1.0, std::fabs(double(*best))));
            exact += int(best - logits.begin() == tok);
            kernels::step_tokens(*prepared, *cpu, &tok, logits.data());
        }
    }
    Result r;
    r.what = "generate greedy S4 P25 n250: each class an argmax of the CPU step (" + std::to_string(exact) + "/" +
             std::to_string(S * n) + " exact)";
    r.rel_error = in_range ? worst : std::numeric_limits<double>::infinity();
    report(r);
}

// Philox-4x32-10 against the known-answer vectors of its authors' Random123 library.
inline void philox_checks(const Report& report) {
    struct Kat { kc::Philox4x32 in; uint32_t k0, k1; kc::Philox4x32 want; };
    const Kat kats[] = {
        {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
        {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu,
         {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
        {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u,
         {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
    };
    int bad = 0;
    for (const Kat& k : kats) {
        const kc::Philox4x32 got = kc::philox4x32_10(k.in, k.k0, k.k1);
        for (int i = 0; i < 4; ++i) bad += got.v[i] != k.want.v[i];
    }
    Result r;
    r.what = "philox4x32-10 known-answer vectors";
    r.rel_error = bad;
    r.tolerance = 0;
    report(r);
}

} // namespace mw::test::cuda_checks
