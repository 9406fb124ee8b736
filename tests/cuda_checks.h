// The CUDA forward's checks against the float64 reference, written once and run two ways:
// by the Catch2 suite (test_cuda.cpp, tag [cuda]) and by the standalone mw_test_cuda
// (test_cuda_main.cpp), which builds on a GPU machine without Catch2. Each check reports its
// relative error ||got - want|| / ||want|| and max |diff|; outputs are poisoned with NaN
// before each GPU run, so an element left unwritten fails.
#pragma once

#include "kernels/cuda/mamba_cuda.h"
#include "kernels/backward.h"
#include "kernels/cuda/philox.h"
#include "kernels/cuda/stft_cuda.h"
#include "kernels/fast.h"
#include "kernels/reference.h"
#include "model/grad.h"
#include "model/losses.h"
#include "model/pooled.h"
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
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
        {"D8xL2 N4 K6 (wider than the run kernels)", 8, 2, 4, 6, 0, false},
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

// The forward at each forced chunk length against `want`: an effect's input ([B][L][I] floats,
// out [B][L]) or a generator's tokens ([B][L] integers, out [B][L][256] logits).
template <class In, class W>
void forward_at_chunks(const Report& report, kc::Forward& F, const In& in, int B, int64_t L,
                       const std::vector<int>& chunks, const W& want, const std::string& what) {
    constexpr bool tokens = std::is_integral_v<typename In::value_type>;
    for (int chunk : chunks) {
        kc::set_scan_chunk(F, chunk);
        kc::reset(F);
        auto got = poisoned(B * L * (tokens ? 256 : 1));
        if constexpr (tokens) kc::forward_tokens(F, in.data(), L, got.data());
        else kc::forward_continuous(F, in.data(), L, got.data());
        report(compare(label(what, B, L, chunk), got, want));
    }
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
                forward_at_chunks(report, *F, x, B, L, chunks_for(L), want, std::string("effect ") + s.name);
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

// The generators the forward and the step are checked on: tied and untied heads, d_model 16
// and 64, d_state 16.
struct TestGenerator { const char* name; int d_model, n_layers; bool tie; };
inline constexpr TestGenerator kTestGenerators[] = {{"D16xL3 N16 tied", 16, 3, true},
                                                    {"D16xL3 N16 untied", 16, 3, false},
                                                    {"D64xL2 N16 (E=128) tied", 64, 2, true}};
inline Model test_generator(const TestGenerator& g, uint64_t seed) {
    return random_model(IoKind::mulaw8, g.d_model, g.n_layers, 16, seed, 0, false, 4, g.tie);
}

// Generators: tied and untied heads, batch 1 and 3, lengths 1, 7, 1500.
inline void generator_checks(const Report& report) {
    uint64_t seed = 900;
    for (const TestGenerator& g : kTestGenerators) {
        const Model m = test_generator(g, ++seed);
        for (int B : {1, 3}) {
            auto F = kc::make_forward(m.view(), 4096, B);
            for (int64_t L : {int64_t(1), int64_t(7), int64_t(1500)}) {
                const auto tok = token_input(B, L, ++seed);
                const auto want = reference_tokens(m, tok, B, L);
                forward_at_chunks(report, *F, tok, B, L, L > 7 ? std::vector<int>{0, 100} : std::vector<int>{0}, want,
                                 std::string("generator ") + g.name);
            }
        }
    }
}

// An effect's state carried across calls and segments, and reset: model m (named `name`), B 3,
// L 5000, in three uneven calls == one call == the reference; after reset == from zero; in
// segments of 1000 inside one call; forward_effect in two calls.
inline void effect_segment_checks(const Report& report, const Model& m, const std::string& name, uint64_t& seed) {
    const std::string effect = "effect " + name;
    const int I = m.config().n_in();
    const int B = 3;
    const int64_t L = 5000;
    const auto x = effect_input(B, L, I, ++seed);
    const auto want = reference_effect(m, x, B, L);
    auto F = kc::make_forward(m.view(), 8192, B);
    auto whole = poisoned(B * L);
    kc::forward_continuous(*F, x.data(), L, whole.data());
    report(compare(effect + " B3 L5000 one call", whole, want));

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
    report(compare(effect + " B3 calls 1234+7+3759 vs reference", parts, want));
    report(compare(effect + " B3 calls 1234+7+3759 vs one call", parts, whole, 1e-5));

    // reset(): the next call starts from the zero state again.
    kc::reset(*F);
    const int64_t Ls = 100;
    std::vector<float> xs(size_t(B * Ls * I));
    for (int b = 0; b < B; ++b) std::copy_n(x.begin() + b * L * I, Ls * I, xs.begin() + b * Ls * I);
    auto ys = poisoned(B * Ls);
    kc::forward_continuous(*F, xs.data(), Ls, ys.data());
    report(compare(effect + " B3 after reset, L100", ys, reference_effect(m, xs, B, Ls)));

    // A max_segment shorter than the call: 5 segments inside one call.
    auto F2 = kc::make_forward(m.view(), 1000, B);
    auto segmented = poisoned(B * L);
    kc::forward_continuous(*F2, x.data(), L, segmented.data());
    report(compare(effect + " B3 L5000 in segments of 1000", segmented, want));

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
    report(compare(effect + " forward_effect B3 calls 2345+2655 (segments of 1000)", fx, want_fx));
}

// State carried across calls and segments, reset, and bad calls refused.
inline void segment_checks(const Report& report) {
    const auto& shapes = effect_shapes();
    uint64_t seed = 1300;
    // An effect in three uneven calls == one call == the reference.
    for (const Shape* s : {&shapes[0], &shapes[1]}) {
        const Model m = random_model(IoKind::continuous, s->d_model, s->n_layers, s->d_state, ++seed,
                                     s->n_cond, s->skip, s->d_conv);
        effect_segment_checks(report, m, s->name, seed);
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

// The four tunings of where the step keeps its weights and state: shared memory or not, each.
inline void append_smem_tunings(std::vector<kc::StepTuning>& tunings) {
    for (int w : {0, 1})
        for (int st : {0, 1}) {
            kc::StepTuning t;
            t.weights_in_smem = w;
            t.state_in_smem = st;
            tunings.push_back(t);
        }
}

// An effect stepped by 64 streams over 300 samples with each tuning in turn (reset between
// them): every run equals the GPU scan of the same inputs.
inline void check_step_tunings(const Report& report, const Model& m, const std::string& name,
                               const std::vector<kc::StepTuning>& tunings, uint64_t seed) {
    const int I = m.config().n_in(), S = 64;
    const int64_t L = 300;
    const auto x = effect_input(S, L, I, seed);
    const auto xt = swap_major(x, S, L, I);
    auto F = kc::make_forward(m.view(), L, S);
    auto scan = poisoned(S * L);
    kc::forward_continuous(*F, x.data(), L, scan.data());
    auto st = kc::make_stepper(m.view(), S);
    for (const kc::StepTuning& t : tunings) {
        kc::set_step_tuning(*st, t);
        kc::reset_stepper(*st);
        auto yt = poisoned(L * S);
        kc::step_continuous(*st, xt.data(), yt.data(), L);
        report(compare(step_label(name, S, L, tuning_name(kc::step_tuning(*st)) + " vs GPU scan"),
                       swap_major(yt, L, S, 1), scan));
    }
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

// An effect's step over L samples of S streams (different inputs each) equals the float64
// reference (first Lr samples: the reference is slow) and the GPU scan forward (all L).
inline void step_effect_model_checks(const Report& report, const Model& m, const std::string& name,
                                     std::initializer_list<int> streams, uint64_t& seed) {
    const int I = m.config().n_in();
    for (int S : streams) {
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
        report(compare(step_label("effect " + name, S, Lr, how + " vs reference"), head_of(y, S, L, Lr, 1), ref));
        report(compare(step_label("effect " + name, S, L, how + " vs GPU scan"), y, scan));
    }
}

// Steps xt ([L][S][I]) through st in one call, then after a reset in calls of 1, 333 and 666
// samples (L 1000): {the one call's y, the calls' y}, both [L][S].
inline std::pair<std::vector<float>, std::vector<float>> step_whole_and_parts(kc::Stepper& st,
                                                                            const std::vector<float>& xt, int S,
                                                                            int I, int64_t L) {
    auto whole = poisoned(L * S);
    kc::step_continuous(st, xt.data(), whole.data(), L);
    kc::reset_stepper(st);
    auto parts = poisoned(L * S);
    int64_t t0 = 0;
    for (int64_t n : {int64_t(1), int64_t(333), int64_t(666)}) {
        kc::step_continuous(st, xt.data() + t0 * S * I, parts.data() + t0 * S, n);
        t0 += n;
    }
    return {whole, parts};
}

// Effects: every shape, S 1, 3, 64 (and 1000 for the two shipped-like shapes).
inline void step_effect_checks(const Report& report) {
    uint64_t seed = 2000;
    const auto& shapes = effect_shapes();
    for (size_t si = 0; si < shapes.size(); ++si) {
        const Shape& sh = shapes[si];
        const Model m = random_model(IoKind::continuous, sh.d_model, sh.n_layers, sh.d_state, ++seed,
                                     sh.n_cond, sh.skip, sh.d_conv);
        if (si < 2)  // the two shipped-like shapes carry the big batch
            step_effect_model_checks(report, m, sh.name, {1, 3, 64, 1000}, seed);
        else
            step_effect_model_checks(report, m, sh.name, {1, 3, 64}, seed);
    }

    // Every way of running the step gives the scan's numbers: variants, groups, thread counts,
    // weights in shared memory or not (the small effect, 64 streams).
    {
        const Shape& sh = shapes[0];
        const Model m = random_model(IoKind::continuous, sh.d_model, sh.n_layers, sh.d_state, ++seed,
                                     sh.n_cond, sh.skip, sh.d_conv);
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
        append_smem_tunings(tunings);
        check_step_tunings(report, m, std::string("effect ") + sh.name, tunings, ++seed);
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
        const auto [whole, parts] = step_whole_and_parts(*st, xt, S, I, L);
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

// A generator teacher-forced through the step, S streams of L classes: its logits against the
// float64 reference (the first Lr steps) and against the GPU scan (all L).
inline void check_generator_step(const Report& report, const Model& m, const std::string& name, int S, int64_t L,
                                 int64_t Lr, uint64_t seed) {
    const int V = 256;
    const auto tok = token_input(S, L, seed);  // [S][L]
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
    report(compare(step_label(name, S, Lr, how + " vs reference"), head_of(lg, S, L, Lr, V), ref));
    report(compare(step_label(name, S, L, how + " vs GPU scan"), lg, scan));
}

// Generators, teacher-forced: the step's logits equal the reference and the GPU scan.
inline void step_generator_checks(const Report& report) {
    uint64_t seed = 3000;
    for (const TestGenerator& g : kTestGenerators) {
        const Model m = test_generator(g, ++seed);
        for (int S : {1, 3, 64, 1000})
            check_generator_step(report, m, std::string("generator ") + g.name, S, S == 1000 ? 40 : 300,
                                 S >= 64 ? 16 : 150, ++seed);
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

// ---- the scan alone: fp32 and bf16 inputs (scan.cu via run_scan) ---------------------------

// A random scan problem: Δ = softplus(dt + bias) in about [0.005, 0.7], u, z, B, C in [-1, 1],
// A from -(n+1)·[0.5, 2] (as the model's init with jitter), a random carried-in state.
inline kc::HostScan random_scan(int B, int64_t L, int E, int N, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    kc::HostScan s;
    s.B = B, s.L = L, s.E = E, s.N = N;
    const int64_t rows = int64_t(B) * L;
    auto fill = [&](std::vector<float>& v, int64_t n, float scale, float offset) {
        v.resize(size_t(n));
        for (float& x : v) x = offset + scale * u(rng);
    };
    fill(s.dt, rows * E, 2.0f, -3.0f);
    fill(s.u, rows * E, 1.0f, 0.0f);
    fill(s.z, rows * E, 2.0f, 0.0f);
    fill(s.Bm, rows * N, 1.0f, 0.0f);
    fill(s.Cm, rows * N, 1.0f, 0.0f);
    fill(s.D, E, 0.5f, 1.0f);
    fill(s.dt_bias, E, 0.3f, 0.0f);
    fill(s.state, int64_t(B) * N * E, 0.5f, 0.0f);
    s.A2.resize(size_t(E) * N);
    for (int e = 0; e < E; ++e)
        for (int n = 0; n < N; ++n)
            s.A2[size_t(e) * N + n] = float(-(n + 1) * std::exp2(u(rng)) * 1.4426950408889634);
    return s;
}

// The scan in float64, obvious loops: y [B·L][E]; s.state becomes the final state.
inline std::vector<float> reference_scan(kc::HostScan& s) {
    const int E = s.E, N = s.N;
    std::vector<float> y(size_t(int64_t(s.B) * s.L * E));
    for (int b = 0; b < s.B; ++b)
        for (int e = 0; e < E; ++e) {
            std::vector<double> h(static_cast<size_t>(N));
            for (int n = 0; n < N; ++n) h[size_t(n)] = s.state[(size_t(b) * N + n) * E + e];
            for (int64_t t = 0; t < s.L; ++t) {
                const size_t r = size_t(int64_t(b) * s.L + t);
                const double x = double(s.dt[r * E + e]) + s.dt_bias[size_t(e)];
                const double dt = x > 20 ? x : std::log1p(std::exp(x));
                const double u = s.u[r * E + e];
                double acc = double(s.D[size_t(e)]) * u;
                for (int n = 0; n < N; ++n) {
                    const double a = std::exp2(dt * double(s.A2[size_t(e) * N + n]));
                    h[size_t(n)] = a * h[size_t(n)] + dt * u * s.Bm[r * N + n];
                    acc += h[size_t(n)] * s.Cm[r * N + n];
                }
                const double z = s.z[r * E + e];
                y[r * E + e] = float(acc * z / (1.0 + std::exp(-z)));
            }
            for (int n = 0; n < N; ++n) s.state[(size_t(b) * N + n) * E + e] = float(h[size_t(n)]);
        }
    return y;
}

inline kc::HostScan bf16_rounded(kc::HostScan s) {
    for (auto* v : {&s.dt, &s.u, &s.z, &s.Bm, &s.Cm})
        for (float& x : *v) x = kc::bf16_round(x);
    return s;
}

// The bound the bf16 path is held to against the fp32 inputs it was rounded from (relative
// L2 error of y): bf16 keeps 8 significant bits (relative rounding up to 2^-9 = 0.2%), and the
// scan sums and multiplies several rounded inputs per output. Measured worst: see the
// closing figures in docs/BENCHMARKS.md; documented in kernels/cuda/NOTES.md.
constexpr double kBf16ScanBound = 1e-2;

// fp32 inputs against the float64 reference (1e-4); bf16 inputs against the reference on the
// same rounded values (1e-4: the arithmetic is fp32 either way) and, within kBf16ScanBound,
// against the unrounded inputs; fp32 and bf16 kernels on equal values agree to rounding.
// Shapes: 16-byte tiles (E, N multiples of 8), element-wise tiles (odd E, N), two state
// groups (N 40), lengths not a multiple of any chunk, batch 1 and 3; every variant: 1 and 2
// (chunked), 3 (one pass) with each lane count it takes, 0 (chosen). The one pass must also
// leave the chunks' start states (the backward's input) as the chunked passes do.
inline void scan_checks(const Report& report) {
    // The one pass's documented reach (scan.cuh): d_state <= 32, states per lane 4..16.
    auto one_pass_takes = [](int N, int lanes) {
        const int covered = N <= 4 ? 4 : N <= 8 ? 8 : N <= 16 ? 16 : 32;
        return N <= 32 && covered / lanes >= 4 && covered / lanes <= 16;
    };
    struct Case { int B; int64_t L; int E, N; };
    uint64_t seed = 9000;
    for (const Case c : {Case{1, 5000, 64, 16}, Case{3, 777, 36, 5}, Case{2, 3001, 128, 8}, Case{1, 1, 8, 4},
                         Case{2, 1500, 40, 40}, Case{1, 2049, 24, 4}}) {
        const kc::HostScan base = random_scan(c.B, c.L, c.E, c.N, ++seed);
        const std::string shape = "scan B" + std::to_string(c.B) + " L" + std::to_string(c.L) + " E" +
                                  std::to_string(c.E) + " N" + std::to_string(c.N);
        kc::HostScan ref32 = base, ref16 = bf16_rounded(base);
        const auto want32 = reference_scan(ref32);
        const auto want16 = reference_scan(ref16);
        std::vector<float> chunked_starts;  // variant 2, chunk 333
        struct Way { int variant, lanes; int64_t segment_steps; };
        for (const Way way : {Way{2, 0, 0}, Way{1, 0, 0}, Way{0, 0, 0}, Way{3, 0, 0}, Way{3, 1, 0}, Way{3, 2, 0},
                              Way{3, 4, 0}, Way{4, 0, 0}, Way{4, 0, 97}})
            for (int chunk : {0, 333}) {
                const int variant = way.variant;
                const std::string how = " variant " + std::to_string(variant) +
                                        (way.lanes ? " lanes " + std::to_string(way.lanes) : std::string()) +
                                        (way.segment_steps ? " segments of " + std::to_string(way.segment_steps)
                                                           : std::string()) +
                                        " chunk " + (chunk ? std::to_string(chunk) : std::string("auto"));
                kc::HostScan f32 = base, b16 = base, f32r = bf16_rounded(base);
                const bool takes = variant == 4 ? c.N <= 32 : one_pass_takes(c.N, way.lanes ? way.lanes : 1);
                if (variant >= 3 && !takes) {
                    expect_refused(report, shape + how + " refused (outside the one pass's reach)",
                                   [&] { kc::run_scan(f32, false, variant, chunk, way.lanes, nullptr, way.segment_steps); });
                    continue;
                }
                std::vector<float> starts;
                const auto y32 = kc::run_scan(f32, false, variant, chunk, way.lanes, &starts, way.segment_steps);
                if (chunk == 333 && variant == 2) chunked_starts = starts;
                if (chunk == 333 && variant != 2)
                    report(compare(shape + " fp32" + how + " chunk start states vs variant 2's", starts,
                                   chunked_starts, 1e-5));
                const auto y16 = kc::run_scan(b16, true, variant, chunk, way.lanes, nullptr, way.segment_steps);
                const auto y32r = kc::run_scan(f32r, false, variant, chunk, way.lanes, nullptr, way.segment_steps);
                report(compare(shape + " fp32" + how + " vs float64", y32, want32));
                report(compare(shape + " fp32" + how + " final state", f32.state, ref32.state));
                report(compare(shape + " bf16" + how + " vs float64 on the rounded inputs", y16, want16));
                report(compare(shape + " bf16" + how + " final state", b16.state, ref16.state));
                report(compare(shape + " bf16" + how + " vs fp32 kernel on the same values", y16, y32r, 1e-6));
                report(compare(shape + " bf16" + how + " vs unrounded inputs (documented bound)", y16, want32,
                               kBf16ScanBound));
            }
    }
    kc::HostScan bad = random_scan(1, 10, 8, 4, 1);
    bad.Cm.pop_back();
    expect_refused(report, "run_scan refuses a Cm of the wrong size", [&] { kc::run_scan(bad, true); });
}

// ---- training: the GPU tape (train_cuda.cu, scan_backward.cu) --------------------------------
// The GPU tape's forward against the float64 reference (outputs and state out), its gradient
// against the CPU tape's (kernels/backward.h, itself checked against finite differences in
// test_backward.cpp) over every parameter, and sampled elements of every tensor against float64
// central finite differences of the reference (the rule of test_backward.cpp: each element
// relative to max(|fd|, 1% of its tensor's largest sampled |fd|), within 1e-3; a random
// direction through all parameters within 1e-4, relative to max(|fd|, 1% of Σ_i |g_i·Δθ_i|)).
// The loss: effects Σ_b Σ_t wt·y with random
// wt; generators the mean cross-entropy against random targets over all B·L predictions.

struct TrainCase {
    const char* name;
    IoKind kind;
    int d_model, n_layers, d_state, d_conv, dt_rank;  // dt_rank 0: the default
    int n_cond;
    bool skip, tie, conv_bias, state_in;
    int B;
    int64_t L;
    int per_tensor;
    uint64_t seed;
};

struct TrainExample {
    Model m;
    std::vector<float> x;                 // [B][L][I]
    std::vector<int32_t> tokens, target;  // [B][L]
    std::vector<float> wt;                // [B][L]
    std::vector<float> state;             // [B][S] or empty
    std::vector<double> state_d;          // the same floats in float64
};

// The test case's model (case_model's config and initialisation) with the layers `lti` made
// LTI (their B and C random too); lti empty: exactly case_model(k).
inline Model train_case_model(const TrainCase& k, const std::vector<int>& lti) {
    if (lti.empty()) return case_model(k);
    ModelConfig c = case_model(k).config();
    c.lti_layers = lti;
    Model m(c);
    m.init_random(k.seed, 0.3f);
    return m;
}

inline TrainExample train_example(const TrainCase& k, const std::vector<int>& lti = {}) {
    TrainExample ex{train_case_model(k, lti), {}, {}, {}, {}, {}, {}};
    const ModelConfig& c = ex.m.config();
    const int I = c.n_in();
    std::mt19937_64 rng(k.seed * 31 + 7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    if (k.kind == IoKind::continuous) {
        ex.x = effect_input(k.B, k.L, I, k.seed + 1);
        ex.wt.resize(size_t(k.B * k.L));
        for (float& w : ex.wt) w = normal(rng);
    } else {
        ex.tokens = token_input(k.B, k.L, k.seed + 2);
        ex.target = token_input(k.B, k.L, k.seed + 3);
    }
    if (k.state_in) {  // each sequence's state after its own random prefix of 40 samples
        const int64_t S = ex.m.state_floats_per_stream(), P = 40;
        ex.state_d.resize(size_t(k.B * S));
        for (int b = 0; b < k.B; ++b) {
            double* st = ex.state_d.data() + b * S;
            if (k.kind == IoKind::continuous) {
                const auto xp = random_effect_input(P, I, k.seed + 10 + uint64_t(b));
                std::vector<double> y(static_cast<size_t>(P));
                kernels::reference_forward_continuous_f64(ex.m.view(), xp.data(), P, nullptr, y.data(), st);
            } else {
                const auto tp = random_tokens(P, k.seed + 20 + uint64_t(b));
                std::vector<double> lg(size_t(P * c.vocab));
                kernels::reference_forward_tokens_f64(ex.m.view(), tp.data(), P, nullptr, lg.data(), st);
            }
        }
        ex.state.assign(ex.state_d.begin(), ex.state_d.end());
        for (size_t i = 0; i < ex.state.size(); ++i) ex.state_d[i] = double(ex.state[i]);
    }
    return ex;
}

// The float64 reference: the loss, and (when asked) the outputs and states out.
inline double reference_train_loss(const Model& m, const TrainExample& ex, const TrainCase& k,
                                   std::vector<double>* out = nullptr, std::vector<double>* state_out = nullptr) {
    const int64_t S = m.state_floats_per_stream();
    const int V = m.config().vocab, I = m.config().n_in();
    double loss = 0;
    for (int b = 0; b < k.B; ++b) {
        const double* sin = ex.state_d.empty() ? nullptr : ex.state_d.data() + b * S;
        std::vector<double> st(static_cast<size_t>(S));
        if (k.kind == IoKind::continuous) {
            std::vector<double> y(static_cast<size_t>(k.L));
            kernels::reference_forward_continuous_f64(m.view(), ex.x.data() + b * k.L * I, k.L, sin, y.data(),
                                                      st.data());
            for (int64_t t = 0; t < k.L; ++t) loss += double(ex.wt[size_t(b * k.L + t)]) * y[size_t(t)];
            if (out) out->insert(out->end(), y.begin(), y.end());
        } else {
            std::vector<double> lg(size_t(k.L * V));
            kernels::reference_forward_tokens_f64(m.view(), ex.tokens.data() + b * k.L, k.L, sin, lg.data(),
                                                  st.data());
            for (int64_t t = 0; t < k.L; ++t) {
                const double* l = &lg[size_t(t * V)];
                const double mx = *std::max_element(l, l + V);
                double z = 0;
                for (int v = 0; v < V; ++v) z += std::exp(l[v] - mx);
                loss += (mx + std::log(z) - l[ex.target[size_t(b * k.L + t)]]) / double(k.B * k.L);
            }
            if (out) out->insert(out->end(), lg.begin(), lg.end());
        }
        if (state_out) state_out->insert(state_out->end(), st.begin(), st.end());
    }
    return loss;
}

// dLoss/dout for the outputs `out` of a forward.
inline std::vector<float> train_loss_grad(const TrainExample& ex, const TrainCase& k, const std::vector<float>& out,
                                          int V) {
    if (k.kind == IoKind::continuous) return ex.wt;
    std::vector<float> d(out.size());
    const int64_t n = int64_t(k.B) * k.L;
    for (int64_t r = 0; r < n; ++r) {
        const float* l = &out[size_t(r * V)];
        const double mx = *std::max_element(l, l + V);
        double z = 0;
        for (int v = 0; v < V; ++v) z += std::exp(double(l[v]) - mx);
        for (int v = 0; v < V; ++v) {
            const double p = std::exp(double(l[v]) - mx) / z;
            d[size_t(r * V + v)] = float((p - (v == ex.target[size_t(r)] ? 1.0 : 0.0)) / double(n));
        }
    }
    return d;
}

// One GPU forward + backward: the gradient (a model of the same config), outputs, state out.
inline Model gpu_train_gradient(kc::TrainTape& tape, const TrainExample& ex, const TrainCase& k,
                                std::vector<float>* out_keep = nullptr, std::vector<float>* state_keep = nullptr) {
    const Model& m = ex.m;
    const int V = m.config().vocab;
    const int64_t S = m.state_floats_per_stream();
    const bool effect = k.kind == IoKind::continuous;
    std::vector<float> out = poisoned(int64_t(k.B) * k.L * (effect ? 1 : V));
    std::vector<float> st = poisoned(k.B * S);
    const float* sin = ex.state.empty() ? nullptr : ex.state.data();
    if (effect)
        kc::train_forward_continuous(tape, m.view(), ex.x.data(), k.L, sin, out.data(), st.data());
    else
        kc::train_forward_tokens(tape, m.view(), ex.tokens.data(), k.L, sin, out.data(), st.data());
    const std::vector<float> d = train_loss_grad(ex, k, out, V);
    Model g(m.config());
    std::vector<kernels::LayerGrad> layers;
    kc::train_backward(tape, d.data(), g.as_gradient(layers));
    if (out_keep) *out_keep = out;
    if (state_keep) *state_keep = st;
    return g;
}

// The CPU tape over each sequence, gradients summed.
inline Model cpu_train_gradient(const TrainExample& ex, const TrainCase& k, const std::vector<float>& gpu_out) {
    const Model& m = ex.m;
    const int V = m.config().vocab, I = m.config().n_in();
    const int64_t S = m.state_floats_per_stream();
    const bool effect = k.kind == IoKind::continuous;
    const std::vector<float> d = train_loss_grad(ex, k, gpu_out, V);  // the GPU's outputs: the same dLoss/dout
    Model g(m.config());
    std::vector<kernels::LayerGrad> layers;
    const kernels::ModelGrad mg = g.as_gradient(layers);
    kernels::TrainTape tape(64);
    for (int b = 0; b < k.B; ++b) {
        const float* sin = ex.state.empty() ? nullptr : ex.state.data() + b * S;
        std::vector<float> out(size_t(k.L * (effect ? 1 : V)));
        if (effect)
            tape.forward_continuous(m.view(), ex.x.data() + b * k.L * I, k.L, sin, out.data(), nullptr);
        else
            tape.forward_tokens(m.view(), ex.tokens.data() + b * k.L, k.L, sin, out.data(), nullptr);
        tape.backward(d.data() + b * k.L * (effect ? 1 : V), mg);
    }
    return g;
}

// The gradient gpu (all of m's parameters) along a random direction v against the float64
// central difference of loss() at θ ± 1e-5·v. Relative to the difference, or to 1% of
// Σ|g_i·Δθ_i| where the terms cancel more than a hundredfold (the rule of the sampled elements):
// along a direction nearly orthogonal to the gradient, float32 rounding of the gradient alone
// would exceed 1e-4 (the LTI generator D8x2 of lti_train_checks: the terms cancel 3400-fold, and
// the CPU tape's own gradient misses by 5.9e-4 there). m's weights are restored.
inline Result random_direction(const std::string& name, Model& m, const std::vector<float>& gpu, std::mt19937_64& rng,
                               const std::function<double()>& loss) {
    const int64_t P = m.parameter_count();
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> theta(m.data(), m.data() + P), plus(static_cast<size_t>(P)), minus(static_cast<size_t>(P));
    for (int64_t i = 0; i < P; ++i) {
        const float v = normal(rng);
        plus[size_t(i)] = theta[size_t(i)] + 1e-5f * v;
        minus[size_t(i)] = theta[size_t(i)] - 1e-5f * v;
    }
    std::copy(plus.begin(), plus.end(), m.data());
    const double lp = loss();
    std::copy(minus.begin(), minus.end(), m.data());
    const double lm = loss();
    std::copy(theta.begin(), theta.end(), m.data());
    double gd = 0, terms = 0;
    for (int64_t i = 0; i < P; ++i) {
        const double t = double(gpu[size_t(i)]) * (double(plus[size_t(i)]) - double(minus[size_t(i)]));
        gd += t;
        terms += std::fabs(t);
    }
    Result dr;
    dr.what = name + ": all parameters along a random direction vs float64 finite difference (terms cancel " +
              std::to_string(int(terms / std::max(std::fabs(gd), 1e-300))) + "-fold)";
    dr.rel_error = std::fabs(gd - (lp - lm)) / std::max(std::fabs(lp - lm), 0.01 * terms);
    dr.tolerance = 1e-4;
    return dr;
}

// Tensor by tensor, the GPU gradient g against the CPU tape's c (the all-parameter norm is led by
// the big projections; small tensors such as an LTI layer's B and C or a pool's bias have their
// own say here): the worst relative error, within 1e-3.
inline Result per_tensor(const std::string& name, const Model& m, const Model& g, const Model& c) {
    Result r;
    std::string worst_name;
    for (const TensorSpec& spec : m.tensors()) {
        const float *a = g.tensor(spec.name), *b = c.tensor(spec.name);
        const double e = rel_error(std::vector<float>(a, a + spec.numel()), std::vector<float>(b, b + spec.numel()));
        if (!(e <= r.rel_error)) r.rel_error = e, worst_name = spec.name;
    }
    r.what = name + ": each tensor's gradient vs the CPU tape's (worst " + worst_name + ")";
    r.tolerance = 1e-3;
    return r;
}

// lti: the layers made LTI (kernels/cuda/scan_lti.cuh); their backward is also run with runs of
// 1 and 3 chunks forced (the adjoint's carries then cross other places).
inline void train_check(const Report& report, const TrainCase& k, const std::vector<int>& lti = {}) {
    TrainExample ex = train_example(k, lti);
    Model& m = ex.m;
    const std::string name = std::string("train ") + k.name;
    auto tape = kc::make_train_tape(m.view(), k.B, k.L + 5);  // max_len above L: rows are packed by L

    std::vector<float> out, st;
    const Model g = gpu_train_gradient(*tape, ex, k, &out, &st);
    std::vector<double> ref_out, ref_state;
    reference_train_loss(m, ex, k, &ref_out, &ref_state);
    report(compare(name + ": forward vs float64 reference", out, std::vector<float>(ref_out.begin(), ref_out.end())));
    report(compare(name + ": state out vs float64 reference", st,
                   std::vector<float>(ref_state.begin(), ref_state.end())));

    const int64_t P = m.parameter_count();
    const std::vector<float> gpu(g.data(), g.data() + P);
    const Model c = cpu_train_gradient(ex, k, out);
    report(compare(name + ": gradient vs the CPU tape, all " + std::to_string(P) + " parameters", gpu,
                   std::vector<float>(c.data(), c.data() + P)));

    // Same inputs, same gradient, bit for bit (sums in a fixed order).
    const Model g2 = gpu_train_gradient(*tape, ex, k);
    report(compare(name + ": a second run gives the same bits", std::vector<float>(g2.data(), g2.data() + P), gpu,
                   0.0));
    // The scan's backward in chunks of 8 instead of 16: the same gradient up to rounding.
    kc::set_backward_chunk(*tape, 8);
    const Model g8 = gpu_train_gradient(*tape, ex, k);
    kc::set_backward_chunk(*tape, 16);
    report(compare(name + ": backward chunk 8 vs the CPU tape", std::vector<float>(g8.data(), g8.data() + P),
                   std::vector<float>(c.data(), c.data() + P)));
    // The earlier versions of the scan's backward (1: B / C from global memory; 2: one state at a
    // time, B / C staged), both chunks.
    for (int variant : {1, 2}) {
        kc::set_backward_variant(*tape, variant);
        for (int chunk : {16, 8}) {
            kc::set_backward_chunk(*tape, chunk);
            const Model g1 = gpu_train_gradient(*tape, ex, k);
            report(compare(name + ": backward variant " + std::to_string(variant) + ", chunk " +
                               std::to_string(chunk) + " vs the CPU tape",
                           std::vector<float>(g1.data(), g1.data() + P), std::vector<float>(c.data(), c.data() + P)));
        }
    }
    kc::set_backward_variant(*tape, 3);
    kc::set_backward_chunk(*tape, 16);
    // The forward scan in one pass (variant 3) and chunked (2): whichever the shape gets by
    // default, both must give the backward the same chunk start states.
    for (int fwd : {3, 2}) {
        if (ex.m.config().d_state > 32) break;
        kc::set_forward_scan_variant(*tape, fwd);
        const Model gf = gpu_train_gradient(*tape, ex, k);
        report(compare(name + ": forward scan variant " + std::to_string(fwd) + ", gradient vs the CPU tape",
                       std::vector<float>(gf.data(), gf.data() + P), std::vector<float>(c.data(), c.data() + P)));
    }
    kc::set_forward_scan_variant(*tape, 0);
    if (!lti.empty()) {
        report(per_tensor(name, m, g, c));  // (an LTI layer's B, C, A_log, D and dt bias: small tensors)
        for (int run : {1, 3}) {
            kc::set_lti_backward_run(*tape, run);
            const Model gr = gpu_train_gradient(*tape, ex, k);
            report(compare(name + ": LTI backward in runs of " + std::to_string(run) + " chunks vs the CPU tape",
                           std::vector<float>(gr.data(), gr.data() + P), std::vector<float>(c.data(), c.data() + P)));
        }
        kc::set_lti_backward_run(*tape, 0);
    }
    // TF32 products (mixed precision): the documented bound, 1e-2 of the fp32 gradient.
    kc::set_tf32(*tape, true);
    const Model gt = gpu_train_gradient(*tape, ex, k);
    kc::set_tf32(*tape, false);
    report(compare(name + ": TF32 products vs the CPU tape (bound 1e-2)", std::vector<float>(gt.data(), gt.data() + P),
                   std::vector<float>(c.data(), c.data() + P), 1e-2));

    if (k.kind == IoKind::mulaw8) {
        // The cross-entropy on the GPU (logits never downloaded), with every 7th row left out:
        // against the host's, built from the downloaded logits with the same rows zeroed.
        const int V = m.config().vocab;
        const int64_t rows = int64_t(k.B) * k.L;
        std::vector<int32_t> targets = ex.target;
        for (int64_t r = 0; r < rows; r += 7) targets[size_t(r)] = -1;
        std::vector<float> logits(size_t(rows * V)), dl(size_t(rows * V), 0.0f);
        const float* sin = ex.state.empty() ? nullptr : ex.state.data();
        kc::train_forward_tokens(*tape, m.view(), ex.tokens.data(), k.L, sin, logits.data(), nullptr);
        std::vector<double> want_nats(size_t(k.B), 0.0);
        for (int64_t r = 0; r < rows; ++r) {
            if (targets[size_t(r)] < 0) continue;
            const float* l = &logits[size_t(r * V)];
            const double mx = *std::max_element(l, l + V);
            double z = 0;
            for (int v = 0; v < V; ++v) z += std::exp(double(l[v]) - mx);
            want_nats[size_t(r / k.L)] += mx + std::log(z) - double(l[targets[size_t(r)]]);
            for (int v = 0; v < V; ++v)
                dl[size_t(r * V + v)] =
                    float((std::exp(double(l[v]) - mx) / z - (v == targets[size_t(r)] ? 1.0 : 0.0)) / double(rows));
        }
        Model gh(m.config());
        std::vector<kernels::LayerGrad> lh;
        kc::train_backward(*tape, dl.data(), gh.as_gradient(lh));
        kc::train_forward_tokens(*tape, m.view(), ex.tokens.data(), k.L, sin, nullptr, nullptr);
        std::vector<double> nats(size_t(k.B));
        kc::train_cross_entropy(*tape, targets.data(), 1.0 / double(rows), nats.data());
        Model gd(m.config());
        std::vector<kernels::LayerGrad> ld;
        kc::train_backward(*tape, nullptr, gd.as_gradient(ld));
        report(compare(name + ": cross-entropy on the GPU, 1 row in 7 left out: gradient vs the host's",
                       std::vector<float>(gd.data(), gd.data() + P), std::vector<float>(gh.data(), gh.data() + P)));
        report(compare(name + ": cross-entropy on the GPU: nats per sequence vs the host's",
                       std::vector<float>(nats.begin(), nats.end()), std::vector<float>(want_nats.begin(), want_nats.end())));

        // WeightUpload::as_last runs on the weights the tape's last forward took up (m's, just
        // above), whatever the view holds now; a fresh forward takes the view's, as a new tape does.
        Model moved = m;
        for (int64_t i = 0; i < P; ++i) moved.data()[i] *= 1.25f;
        std::vector<float> kept = poisoned(rows * V), fresh = poisoned(rows * V), own = poisoned(rows * V);
        kc::train_forward_tokens(*tape, moved.view(), ex.tokens.data(), k.L, sin, kept.data(), nullptr,
                                 kc::WeightUpload::as_last);
        report(compare(name + ": WeightUpload::as_last: the last forward's weights, not the view's", kept, logits, 0.0));
        kc::train_forward_tokens(*tape, moved.view(), ex.tokens.data(), k.L, sin, fresh.data(), nullptr);
        auto tape2 = kc::make_train_tape(moved.view(), k.B, k.L);
        kc::train_forward_tokens(*tape2, moved.view(), ex.tokens.data(), k.L, sin, own.data(), nullptr);
        report(compare(name + ": WeightUpload::fresh after as_last: the view's weights, as a new tape's", fresh, own, 0.0));
    }

    // Sampled elements of every tensor against central differences of the reference.
    std::mt19937_64 rng(k.seed + 99);
    double worst = 0;
    std::string worst_at;
    for (const TensorSpec& spec : m.tensors()) {
        const int64_t n = spec.numel();
        std::vector<int64_t> picks;
        const bool embed_rows = spec.name == "backbone.embeddings.weight" && !k.tie;
        for (int i = 0; i < std::min<int64_t>(k.per_tensor, n); ++i) {
            if (embed_rows) {  // untied: only rows of tokens that occur have a gradient
                const int64_t row = ex.tokens[size_t(rng() % uint64_t(ex.tokens.size()))];
                picks.push_back(row * spec.shape[1] + int64_t(rng() % uint64_t(spec.shape[1])));
            } else {
                picks.push_back(int64_t(rng() % uint64_t(n)));
            }
        }
        float* w = m.tensor(spec.name);
        const float* gw = g.tensor(spec.name);
        std::vector<double> fd;
        for (int64_t i : picks) {
            const float w0 = w[i];
            const double h = 1e-3 * std::max(1.0, double(std::fabs(w0)));
            const float wp = float(double(w0) + h), wm = float(double(w0) - h);
            w[i] = wp;
            const double lp = reference_train_loss(m, ex, k);
            w[i] = wm;
            const double lm = reference_train_loss(m, ex, k);
            w[i] = w0;
            fd.push_back((lp - lm) / (double(wp) - double(wm)));
        }
        double scale = 0;
        for (double f : fd) scale = std::max(scale, std::fabs(f));
        for (size_t j = 0; j < picks.size(); ++j) {
            const double err = std::fabs(double(gw[picks[j]]) - fd[j]) /
                               std::max({std::fabs(fd[j]), 0.01 * scale, 1e-12});
            if (!(err <= worst)) {
                worst = std::isnan(err) ? std::numeric_limits<double>::quiet_NaN() : err;
                worst_at = spec.name + "[" + std::to_string(picks[j]) + "]";
            }
        }
    }
    Result fdr;
    fdr.what = name + ": " + std::to_string(k.per_tensor) + " elements per tensor vs float64 finite differences (worst " +
               worst_at + ")";
    fdr.rel_error = worst;
    fdr.tolerance = 1e-3;
    report(fdr);

    // All parameters along a random direction.
    report(random_direction(name, m, gpu, rng, [&] { return reference_train_loss(m, ex, k); }));
}

inline void train_checks(const Report& report) {
    const TrainCase cases[] = {
        // D16 N16, controls, skip, carried-in state, L not a multiple of the backward's chunk.
        {"effect D16x2 N16 n_cond 2 skip, state in, B3 L300", IoKind::continuous, 16, 2, 16, 4, 0, 2, true, true,
         true, true, 3, 300, 6, 1},
        // E = 36: two warps of channels per chunk; generic N 5, K 3, dt_rank 2, zero state.
        {"effect D18x2 N5 K3 R2, no skip, B2 L97", IoKind::continuous, 18, 2, 5, 3, 2, 0, false, true, true, false,
         2, 97, 6, 2},
        {"effect D8x2 N16, state in, B2 L1", IoKind::continuous, 8, 2, 16, 4, 0, 1, true, true, true, true, 2, 1, 4, 3},
        // d_conv 1 (no window), no conv bias.
        {"effect D8x1 N4 K1 no conv bias, state in, B1 L20", IoKind::continuous, 8, 1, 4, 1, 0, 0, true, true, false,
         true, 1, 20, 6, 4},
        // A long sequence: the adjoint's carry crosses 313 chunks.
        {"effect D16x1 N16, state in, B1 L5000", IoKind::continuous, 16, 1, 16, 4, 0, 1, true, true, true, true, 1,
         5000, 3, 5},
        {"generator D16x2 tied, state in, B2 L97", IoKind::mulaw8, 16, 2, 16, 4, 0, 0, false, true, true, true, 2, 97,
         5, 6},
        {"generator D8x2 N5 untied, B2 L70", IoKind::mulaw8, 8, 2, 5, 4, 0, 0, false, false, true, false, 2, 70, 5,
         7},
        // 903 rows: the embedding's gradient in two slices of rows, the second partial; D 40: two
        // column tiles, the second partial. L 301: the conv's last block of runs partial.
        {"generator D40x1 N4, state in, B3 L301", IoKind::mulaw8, 40, 1, 4, 4, 0, 0, false, true, true, true, 3, 301,
         4, 8},
        // d_conv 5: wider than the fused conv kernels take (the three-kernel path).
        {"effect D8x1 N4 K5, state in, B2 L40", IoKind::continuous, 8, 1, 4, 5, 0, 0, false, true, true, true, 2, 40,
         6, 9},
    };
    for (const TrainCase& k : cases) train_check(report, k);

    // Misuse is refused clearly.
    TrainExample ex = train_example(cases[0]);
    auto tape = kc::make_train_tape(ex.m.view(), 3, 300);
    Model g(ex.m.config());
    std::vector<kernels::LayerGrad> layers;
    const kernels::ModelGrad mg = g.as_gradient(layers);
    std::vector<float> y(3 * 400), dy(3 * 400);
    expect_refused<std::logic_error>(report, "train_backward before any forward", [&] { kc::train_backward(*tape, dy.data(), mg); });
    expect_refused(report, "train_forward with L above max_len", [&] {
        std::vector<float> x(size_t(3 * 400 * 3));
        kc::train_forward_continuous(*tape, ex.m.view(), x.data(), 400, nullptr, y.data(), nullptr);
    });
    const Model gen = random_model(IoKind::mulaw8, 16, 2, 16, 3);
    expect_refused(report, "train_forward with another model's sizes", [&] {
        std::vector<int32_t> tok(3 * 10, 1);
        std::vector<float> lg(size_t(3 * 10 * 256));
        kc::train_forward_tokens(*tape, gen.view(), tok.data(), 10, nullptr, lg.data(), nullptr);
    });
}

// ---- LTI layers (config lti_layers; kernels/cuda/scan_lti.cuh) --------------------------------
// Models with some or all layers LTI (Δ = softplus(dt_proj.bias), B and C constants per channel)
// on every CUDA path: the forward against the float64 reference (batch 1 and 3, lengths that no
// chunk divides, chunks forced down to 1 step and up to the whole sequence), state across calls
// and segments, the step against the reference and the GPU scan, the training tape against the
// CPU tape and float64 finite differences.

// random_model's model (A_log, D, dt bias, conv bias and norms away from their init values) with
// the layers `lti` made LTI: C standard normal (init_random), B redrawn from N(0, 1), away from
// its start near one.
inline Model random_lti_model(IoKind kind, int d_model, int n_layers, int d_state, uint64_t seed,
                              const std::vector<int>& lti, int n_cond = 0, bool skip = false, int d_conv = 4,
                              bool tie = true) {
    ModelConfig c = random_model(kind, d_model, n_layers, d_state, seed, n_cond, skip, d_conv, tie).config();
    c.lti_layers = lti;
    Model m(c);
    m.init_random(seed, 0.3f);
    if (kind == IoKind::continuous && !skip) {  // as random_model: the signal path, not the head's bias
        float* w = m.tensor("head.weight");
        for (int i = 0; i < d_model; ++i) w[i] *= 200.0f;
    }
    std::mt19937_64 rng(seed * 131 + 17);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int l : lti) {
        float* b = m.tensor("backbone.layers." + std::to_string(l) + ".mixer.B");
        for (int64_t i = 0; i < int64_t(c.d_inner) * c.d_state; ++i) b[i] = normal(rng);
    }
    return m;
}

struct LtiShape {
    const char* name;
    int d_model, n_layers, d_state, d_conv, n_cond;
    bool skip;
    std::vector<int> lti;
};

inline const std::vector<LtiShape>& lti_effect_shapes() {
    static const std::vector<LtiShape> shapes = {
        {"D16xL4 N16 n_cond 2 skip, all LTI", 16, 4, 16, 4, 2, true, {0, 1, 2, 3}},
        {"D64xL2 N16 (E=128), LTI layer 0 of 2", 64, 2, 16, 4, 0, false, {0}},
        {"D8xL3 N5 K3 n_cond 1, LTI layers 0 and 2", 8, 3, 5, 3, 1, false, {0, 2}},
        {"D12xL2 N40 (E=24), all LTI", 12, 2, 40, 4, 0, false, {0, 1}},
        {"D8xL2 N100 (blocks of 64 threads), LTI layer 1", 8, 2, 100, 4, 0, false, {1}},
        {"D8xL1 N200 skip (blocks of 32 threads), LTI", 8, 1, 200, 4, 0, true, {0}},
        {"D24xL1 N3 K1 (no conv window), LTI", 24, 1, 3, 1, 1, false, {0}},
    };
    return shapes;
}

inline Model lti_effect_model(const LtiShape& s, uint64_t seed) {
    return random_lti_model(IoKind::continuous, s.d_model, s.n_layers, s.d_state, seed, s.lti, s.n_cond, s.skip,
                            s.d_conv);
}

// Chunk lengths to force on the LTI layers (0 = the automatic choice; 1 << 20 = one chunk, the
// whole sequence, as the automatic choice makes it where B·E fills the GPU).
inline std::vector<int> lti_chunks_for(int64_t L) {
    if (L <= 7) return {0, 1};
    if (L <= 1500) return {0, 7, 64, 1 << 20};
    return {0, 7, 333, 1 << 20};
}

inline void lti_forward_checks(const Report& report) {
    uint64_t seed = 5000;
    for (const LtiShape& s : lti_effect_shapes()) {
        const Model m = lti_effect_model(s, ++seed);
        const int I = m.config().n_in();
        for (int B : {1, 3}) {
            auto F = kc::make_forward(m.view(), 8192, B);
            for (int64_t L : {int64_t(1), int64_t(7), int64_t(1000), int64_t(5000)}) {
                const auto x = effect_input(B, L, I, ++seed);
                const auto want = reference_effect(m, x, B, L);
                forward_at_chunks(report, *F, x, B, L, lti_chunks_for(L), want, std::string("effect ") + s.name);
            }
        }
    }
    struct G { const char* name; int n_layers; bool tie; std::vector<int> lti; };
    const G gens[] = {{"generator D16xL3 N16 tied, LTI layers 0 and 2", 3, true, {0, 2}},
                      {"generator D16xL2 N16 untied, all LTI", 2, false, {0, 1}}};
    for (const G& g : gens) {
        const Model m = random_lti_model(IoKind::mulaw8, 16, g.n_layers, 16, ++seed, g.lti, 0, false, 4, g.tie);
        for (int B : {1, 3}) {
            auto F = kc::make_forward(m.view(), 4096, B);
            for (int64_t L : {int64_t(1), int64_t(7), int64_t(1500)}) {
                const auto tok = token_input(B, L, ++seed);
                const auto want = reference_tokens(m, tok, B, L);
                forward_at_chunks(report, *F, tok, B, L, lti_chunks_for(L), want, g.name);
            }
        }
    }
}

// State across calls and segments: the all-LTI and the mixed effect.
inline void lti_segment_checks(const Report& report) {
    uint64_t seed = 5500;
    const auto& shapes = lti_effect_shapes();
    for (const LtiShape* s : {&shapes[0], &shapes[1]})
        effect_segment_checks(report, lti_effect_model(*s, ++seed), s->name, seed);
}

inline void lti_step_checks(const Report& report) {
    uint64_t seed = 6000;
    const auto& shapes = lti_effect_shapes();
    for (size_t si = 0; si < shapes.size(); ++si) {
        const Model m = lti_effect_model(shapes[si], ++seed);
        if (si < 2)
            step_effect_model_checks(report, m, shapes[si].name, {1, 3, 64, 1000}, seed);
        else
            step_effect_model_checks(report, m, shapes[si].name, {1, 3, 64}, seed);
    }

    // Every way of running the step (variants, groups, weights and states in shared memory or
    // not) gives the GPU scan's numbers: the mixed effect, 64 streams.
    {
        const Model m = lti_effect_model(shapes[1], ++seed);
        std::vector<kc::StepTuning> tunings;
        for (auto v : {kc::StepVariant::persistent, kc::StepVariant::graph})
            for (int G : {1, 16}) {
                kc::StepTuning t;
                t.variant = v;
                t.group = G;
                tunings.push_back(t);
            }
        append_smem_tunings(tunings);
        check_step_tunings(report, m, std::string("effect ") + shapes[1].name, tunings, ++seed);
    }

    // State carried across calls (1 + 333 + 666 samples == one call of 1000), reset clears it.
    {
        const Model m = lti_effect_model(shapes[0], ++seed);
        const int I = m.config().n_in(), S = 3;
        const int64_t L = 1000;
        const auto x = effect_input(S, L, I, ++seed);
        const auto xt = swap_major(x, S, L, I);
        auto st = kc::make_stepper(m.view(), S);
        const auto [whole, parts] = step_whole_and_parts(*st, xt, S, I, L);
        const std::string name = std::string("effect ") + shapes[0].name;
        report(compare(step_label(name + " calls 1+333+666 vs one call", S, L, ""), parts, whole, 1e-6));
        report(compare(step_label(name + " calls 1+333+666 vs reference", S, L, ""), swap_major(parts, L, S, 1),
                       reference_effect(m, x, S, L)));
        kc::reset_stepper(*st);
        auto again = poisoned(L * S);
        kc::step_continuous(*st, xt.data(), again.data(), L);
        report(compare(step_label(name + " after reset vs first run", S, L, ""), again, whole, 0.0));
    }

    // Generators, teacher-forced: the step's logits equal the reference and the GPU scan.
    const Model gm = random_lti_model(IoKind::mulaw8, 16, 3, 16, ++seed, {0, 2}, 0, false, 4, false);
    for (int S : {1, 64})
        check_generator_step(report, gm, "generator D16xL3 untied, LTI layers 0 and 2", S, 300, S >= 64 ? 16 : 150,
                             ++seed);
}

inline void lti_train_checks(const Report& report) {
    struct LtiCase {
        TrainCase k;
        std::vector<int> lti;
    };
    const LtiCase cases[] = {
        // Every layer LTI, N16, controls, skip, carried-in state, L not a multiple of the chunk.
        {{"LTI effect D16x2 N16 n_cond 2 skip, state in, B3 L300", IoKind::continuous, 16, 2, 16, 4, 0, 2, true, true,
          true, true, 3, 300, 6, 71},
         {0, 1}},
        // Mixed: layer 0 selective (dt_rank 2), layer 1 LTI; E = 36, N 5, K 3, zero state.
        {{"mixed effect D18x2 N5 K3 R2 (LTI layer 1), no skip, B2 L97", IoKind::continuous, 18, 2, 5, 3, 2, 0, false,
          true, true, false, 2, 97, 6, 72},
         {1}},
        {{"mixed generator D16x2 tied (LTI layer 0), state in, B2 L97", IoKind::mulaw8, 16, 2, 16, 4, 0, 0, false, true,
          true, true, 2, 97, 5, 73},
         {0}},
        {{"LTI generator D8x2 N5 untied, B2 L70", IoKind::mulaw8, 8, 2, 5, 4, 0, 0, false, false, true, false, 2, 70, 5,
          74},
         {0, 1}},
        // d_conv 1 (no window), no conv bias.
        {{"LTI effect D8x1 N4 K1 no conv bias, state in, B1 L20", IoKind::continuous, 8, 1, 4, 1, 0, 0, true, true,
          false, true, 1, 20, 6, 75},
         {0}},
        // N 100: the forward's blocks of 64 threads (the backward takes any N).
        {{"LTI effect D8x1 N100, state in, B2 L50", IoKind::continuous, 8, 1, 100, 4, 0, 0, false, true, true, true, 2,
          50, 4, 76},
         {0}},
        // A long sequence: the adjoint's carry crosses 313 chunks.
        {{"LTI effect D16x1 N16, state in, B1 L5000", IoKind::continuous, 16, 1, 16, 4, 0, 1, true, true, true, true,
          1, 5000, 3, 77},
         {0}},
    };
    for (const LtiCase& c : cases) train_check(report, c.k, c.lti);

    // Misuse is refused clearly: a tape made for another layer kind, a gradient of another kind.
    const TrainCase& k = cases[0].k;
    TrainExample sel = train_example(k), lti = train_example(k, cases[0].lti);
    std::vector<float> y(size_t(k.B * k.L)), dy(size_t(k.B * k.L));
    auto sel_tape = kc::make_train_tape(sel.m.view(), k.B, k.L);
    expect_refused(report, "train_forward of an LTI model on a selective model's tape", [&] {
        kc::train_forward_continuous(*sel_tape, lti.m.view(), lti.x.data(), k.L, nullptr, y.data(), nullptr);
    });
    auto lti_tape = kc::make_train_tape(lti.m.view(), k.B, k.L);
    kc::train_forward_continuous(*lti_tape, lti.m.view(), lti.x.data(), k.L, nullptr, y.data(), nullptr);
    Model g(sel.m.config());
    std::vector<kernels::LayerGrad> layers;
    const kernels::ModelGrad mg = g.as_gradient(layers);
    expect_refused(report, "train_backward of an LTI forward into a selective model's gradient",
                   [&] { kc::train_backward(*lti_tape, dy.data(), mg); });
    expect_refused(report, "set_lti_backward_run refuses -1", [&] { kc::set_lti_backward_run(*lti_tape, -1); });
}


// ---- pooled generators' training tape (train_pooled.cu) ---------------------------------------
// The GPU tape of a pooled generator (one training tape per stack, the pools on the device)
// against model/pooled.h's float64 reference (logits and state out, B sequences with states
// carried in) and against the CPU pooled tape's gradient (checked against float64 finite
// differences in test_pooled.cpp): all parameters, and tensor by tensor within 1e-3 (the pools
// and the embedding are small next to the projections); a second run bit for bit; the
// cross-entropy on the GPU; two segments with the state carried equal one pass; all parameters
// along a random direction against float64 finite differences. Loss: the mean cross-entropy
// against random targets over all B·L predictions.

struct PooledCase {
    const char* name;
    int d_model, per_stack;
    std::vector<int> pool, lti;
    bool tie, state_in;
    int B;
    int64_t L;  // a multiple of the pooling period
    uint64_t seed;
};

inline Model pooled_case_model(const PooledCase& k) {
    ModelConfig c = make_config(IoKind::mulaw8, k.d_model, k.per_stack * (2 * int(k.pool.size()) + 1), 16);
    c.pool = k.pool;
    c.lti_layers = k.lti;
    c.tie_embeddings = k.tie;
    Model m(c);
    m.init_random(k.seed, 0.3f);
    std::mt19937_64 rng(k.seed + 5);
    std::normal_distribution<float> normal(0.0f, 0.1f);
    for (size_t i = 0; i < k.pool.size(); ++i)  // (init_random leaves the pools' biases at zero)
        for (const char* b : {"down.bias", "up.bias"}) {
            const std::string name = "backbone.pools." + std::to_string(i) + "." + b;
            for (const TensorSpec& spec : m.tensors())
                if (spec.name == name)
                    for (int64_t j = 0; j < spec.numel(); ++j) m.tensor(name)[j] = normal(rng);
        }
    return m;
}

// The float64 loss (and logits, state out) of B sequences from their states in.
inline double pooled_reference_loss(const Model& m, const PooledCase& k, const std::vector<int32_t>& tokens,
                                    const std::vector<int32_t>& targets, const std::vector<double>& state_in,
                                    std::vector<double>* logits = nullptr, std::vector<double>* state_out = nullptr) {
    const int V = m.config().vocab;
    const int64_t S = m.state_floats_per_stream();
    std::vector<double> lg(size_t(k.L * V)), st(static_cast<size_t>(S));
    double loss = 0;
    for (int b = 0; b < k.B; ++b) {
        pooled::reference_forward_tokens_f64(m, tokens.data() + b * k.L, k.L,
                                             state_in.empty() ? nullptr : state_in.data() + b * S, lg.data(), st.data());
        for (int64_t t = 0; t < k.L; ++t) {
            const double* row = lg.data() + t * V;
            const double mx = *std::max_element(row, row + V);
            double z = 0;
            for (int v = 0; v < V; ++v) z += std::exp(row[v] - mx);
            loss += mx + std::log(z) - row[targets[size_t(b * k.L + t)]];
        }
        if (logits) logits->insert(logits->end(), lg.begin(), lg.end());
        if (state_out) state_out->insert(state_out->end(), st.begin(), st.end());
    }
    return loss / double(k.B * k.L);
}

// dLoss/dlogits of the mean cross-entropy, from float logits (rows with target -1 left out).
inline std::vector<float> pooled_dlogits(const std::vector<float>& logits, const std::vector<int32_t>& targets, int V,
                                         double scale) {
    std::vector<float> d(logits.size());
    for (size_t r = 0; r < targets.size(); ++r) {
        const float* row = logits.data() + r * size_t(V);
        float* dr = d.data() + r * size_t(V);
        if (targets[r] < 0) {
            std::fill(dr, dr + V, 0.0f);
            continue;
        }
        const double mx = *std::max_element(row, row + V);
        double z = 0;
        for (int v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
        for (int v = 0; v < V; ++v)
            dr[v] = float((std::exp(double(row[v]) - mx) / z - (v == targets[r] ? 1.0 : 0.0)) * scale);
    }
    return d;
}

inline void pooled_train_check(const Report& report, const PooledCase& k) {
    Model m = pooled_case_model(k);
    const ModelConfig& c = m.config();
    const int V = c.vocab;
    const int64_t S = m.state_floats_per_stream(), period = c.pool_period(), P = m.parameter_count();
    const std::string name = std::string("pooled train ") + k.name;
    const std::vector<int32_t> tokens = token_input(k.B, k.L, k.seed + 2), targets = token_input(k.B, k.L, k.seed + 3);
    std::vector<double> state_d;  // each sequence's state after its own random prefix of 2 periods
    std::vector<float> state;
    if (k.state_in) {
        state_d.resize(size_t(k.B * S));
        for (int b = 0; b < k.B; ++b) {
            const auto tp = random_tokens(2 * period, k.seed + 20 + uint64_t(b));
            std::vector<double> lg(size_t(2 * period * V));
            pooled::reference_forward_tokens_f64(m, tp.data(), 2 * period, nullptr, lg.data(), state_d.data() + b * S);
        }
        state.assign(state_d.begin(), state_d.end());
        for (size_t i = 0; i < state.size(); ++i) state_d[i] = double(state[i]);
    }
    const float* sin = state.empty() ? nullptr : state.data();
    auto tape = kc::make_pooled_tape(pooled::cuda_view(m), k.B, k.L + period);  // max_len above L
    const double scale = 1.0 / double(k.B * k.L);

    auto gpu_gradient = [&](std::vector<float>* logits_out, std::vector<float>* state_out) {
        std::vector<float> logits = poisoned(k.B * k.L * V), st = poisoned(k.B * S);
        kc::train_pooled_forward(*tape, pooled::cuda_view(m), tokens.data(), k.L, sin, logits.data(), st.data());
        const std::vector<float> d = pooled_dlogits(logits, targets, V, scale);
        Model g = zeros_like(m);
        std::vector<kernels::LayerGrad> layers;
        kc::train_pooled_backward(*tape, d.data(), pooled::cuda_grad(g, layers));
        if (logits_out) *logits_out = logits;
        if (state_out) *state_out = st;
        return g;
    };
    std::vector<float> logits, st;
    const Model g = gpu_gradient(&logits, &st);
    std::vector<double> ref_logits, ref_state;
    pooled_reference_loss(m, k, tokens, targets, state_d, &ref_logits, &ref_state);
    report(compare(name + ": logits vs float64 reference", logits, std::vector<float>(ref_logits.begin(), ref_logits.end())));
    report(compare(name + ": state out vs float64 reference", st, std::vector<float>(ref_state.begin(), ref_state.end())));

    // The CPU pooled tape, sequence by sequence, with the GPU's logits' dLoss/dlogits.
    const std::vector<float> d = pooled_dlogits(logits, targets, V, scale);
    Model gc = zeros_like(m);
    pooled::Tape cpu;
    std::vector<float> lg(size_t(k.L * V));
    for (int b = 0; b < k.B; ++b) {
        cpu.forward_tokens(m, tokens.data() + b * k.L, k.L, sin ? sin + b * S : nullptr, lg.data(), nullptr);
        cpu.backward(d.data() + b * k.L * V, gc);
    }
    const std::vector<float> gpu(g.data(), g.data() + P);
    report(compare(name + ": gradient vs the CPU pooled tape, all " + std::to_string(P) + " parameters", gpu,
                   std::vector<float>(gc.data(), gc.data() + P)));
    report(per_tensor(name, m, g, gc));

    const Model g2 = gpu_gradient(nullptr, nullptr);
    report(compare(name + ": a second run gives the same bits", std::vector<float>(g2.data(), g2.data() + P), gpu, 0.0));

    // The cross-entropy on the GPU (logits not downloaded), every 7th row left out.
    std::vector<int32_t> t7 = targets;
    for (size_t r = 0; r < t7.size(); r += 7) t7[r] = -1;
    kc::train_pooled_forward(*tape, pooled::cuda_view(m), tokens.data(), k.L, sin, nullptr, nullptr);
    std::vector<double> nats(size_t(k.B));
    kc::train_pooled_cross_entropy(*tape, t7.data(), scale, nats.data());
    Model gd = zeros_like(m);
    {
        std::vector<kernels::LayerGrad> layers;
        kc::train_pooled_backward(*tape, nullptr, pooled::cuda_grad(gd, layers));
    }
    const std::vector<float> d7 = pooled_dlogits(logits, t7, V, scale);
    kc::train_pooled_forward(*tape, pooled::cuda_view(m), tokens.data(), k.L, sin, nullptr, nullptr);
    Model gh = zeros_like(m);
    {
        std::vector<kernels::LayerGrad> layers;
        kc::train_pooled_backward(*tape, d7.data(), pooled::cuda_grad(gh, layers));
    }
    report(compare(name + ": cross-entropy on the GPU, 1 row in 7 left out: gradient vs the host's",
                   std::vector<float>(gd.data(), gd.data() + P), std::vector<float>(gh.data(), gh.data() + P)));
    std::vector<float> want_nats(size_t(k.B), 0.0f);
    for (int b = 0; b < k.B; ++b) {
        double sum = 0;
        for (int64_t t = 0; t < k.L; ++t) {
            const size_t r = size_t(b * k.L + t);
            if (t7[r] < 0) continue;
            const float* row = logits.data() + r * size_t(V);
            const double mx = *std::max_element(row, row + V);
            double z = 0;
            for (int v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
            sum += mx + std::log(z) - row[t7[r]];
        }
        want_nats[size_t(b)] = float(sum);
    }
    report(compare(name + ": cross-entropy on the GPU: nats per sequence vs the host's",
                   std::vector<float>(nats.begin(), nats.end()), want_nats));

    // Two segments (a period, then the rest) with the state carried: the logits of one pass.
    if (k.L > period) {
        const int64_t L1 = period, L2 = k.L - period;
        std::vector<int32_t> t1(size_t(k.B * L1)), t2(size_t(k.B * L2));
        for (int b = 0; b < k.B; ++b) {
            std::copy_n(tokens.begin() + b * k.L, L1, t1.begin() + b * L1);
            std::copy_n(tokens.begin() + b * k.L + L1, L2, t2.begin() + b * L2);
        }
        std::vector<float> l1(size_t(k.B * L1 * V)), l2(size_t(k.B * L2 * V)), mid(size_t(k.B * S));
        kc::train_pooled_forward(*tape, pooled::cuda_view(m), t1.data(), L1, sin, l1.data(), mid.data());
        kc::train_pooled_forward(*tape, pooled::cuda_view(m), t2.data(), L2, mid.data(), l2.data(), nullptr);
        std::vector<float> joined;
        for (int b = 0; b < k.B; ++b) {
            joined.insert(joined.end(), l1.begin() + b * L1 * V, l1.begin() + (b + 1) * L1 * V);
            joined.insert(joined.end(), l2.begin() + b * L2 * V, l2.begin() + (b + 1) * L2 * V);
        }
        report(compare(name + ": two segments with the state carried vs one pass", joined, logits, 1e-5));
    }

    // WeightUpload::as_last runs on the weights the tape's last forward took up, whatever the view
    // holds now; a fresh forward takes the view's, as a new tape does (the trainer's self-fed step:
    // the second forward skips the upload).
    {
        Model moved = m;
        for (int64_t i = 0; i < P; ++i) moved.data()[i] *= 1.25f;
        const int64_t n = k.B * k.L * V;
        std::vector<float> kept = poisoned(n), fresh = poisoned(n), own = poisoned(n);
        kc::train_pooled_forward(*tape, pooled::cuda_view(m), tokens.data(), k.L, sin, nullptr, nullptr);
        kc::train_pooled_forward(*tape, pooled::cuda_view(moved), tokens.data(), k.L, sin, kept.data(), nullptr,
                                 kc::WeightUpload::as_last);
        report(compare(name + ": WeightUpload::as_last: the last forward's weights, not the view's", kept, logits, 0.0));
        kc::train_pooled_forward(*tape, pooled::cuda_view(moved), tokens.data(), k.L, sin, fresh.data(), nullptr);
        auto tape2 = kc::make_pooled_tape(pooled::cuda_view(moved), k.B, k.L + period);
        kc::train_pooled_forward(*tape2, pooled::cuda_view(moved), tokens.data(), k.L, sin, own.data(), nullptr);
        report(compare(name + ": WeightUpload::fresh after as_last: the view's weights, as a new tape's", fresh, own, 0.0));
    }

    // All parameters along a random direction against float64 finite differences.
    std::mt19937_64 rng(k.seed + 99);
    report(random_direction(name, m, gpu, rng,
                            [&] { return pooled_reference_loss(m, k, tokens, targets, state_d); }));
}

inline void pooled_train_checks(const Report& report) {
    const PooledCase cases[] = {
        // Two pools (period 6), tied, states carried in; L 42: 7 frames of level 1, 1 of level 2... times B 3.
        {"D16 pools 2,3, tied, state in, B3 L42", 16, 1, {2, 3}, {}, true, true, 3, 42, 1},
        // One pool of 4, two layers a stack, the centre LTI, untied, zero state.
        {"D8 pool 4, 2 layers a stack, centre LTI, untied, B2 L64", 8, 2, {4}, {2, 3}, false, false, 2, 64, 2},
        // Three pools (period 8: levels at 1/2, 1/4, 1/8), state carried in; L 48: six frames of the deepest.
        {"D8 pools 2,2,2, tied, state in, B2 L48", 8, 1, {2, 2, 2}, {}, true, true, 2, 48, 3},
    };
    for (const PooledCase& k : cases) pooled_train_check(report, k);

    // Misuse is refused clearly.
    const Model m = pooled_case_model(cases[0]);
    const auto view = pooled::cuda_view(m);
    expect_refused(report, "make_pooled_tape: max_len not a multiple of the pooling period",
                   [&] { kc::make_pooled_tape(view, 2, 100); });
    auto tape = kc::make_pooled_tape(view, 2, 60);
    std::vector<int32_t> tok(2 * 60, 1);
    expect_refused(report, "train_pooled_forward: L not a multiple of the pooling period",
                   [&] { kc::train_pooled_forward(*tape, view, tok.data(), 40, nullptr, nullptr, nullptr); });
    Model g = zeros_like(m);
    std::vector<kernels::LayerGrad> layers;
    expect_refused<std::logic_error>(report, "train_pooled_backward before any forward",
                                     [&] { kc::train_pooled_backward(*tape, nullptr, pooled::cuda_grad(g, layers)); });
    tok[7] = 256;
    expect_refused(report, "train_pooled_forward: a token out of range",
                   [&] { kc::train_pooled_forward(*tape, view, tok.data(), 60, nullptr, nullptr, nullptr); });
    kc::PooledView flat = view;
    flat.pools.clear();
    expect_refused(report, "make_pooled_tape refuses a view with no pools", [&] { kc::make_pooled_tape(flat, 2, 60); });
}

// ---- the multi-resolution STFT loss on the GPU (kernels/cuda/stft_cuda.h) --------------------
// A batch of lanes of random audio, each over its own range, against model/losses.cpp's
// mrstft_loss lane by lane: the losses and the gradients (every sample written, zeros outside a
// lane's range), lanes that hold one, two, three or none of the sizes, the same floats on a second
// run, the loss alone without the gradient, and misuse refused.
inline void stft_checks(const Report& report) {
    const int B = 6;
    const int64_t stride = 3000;
    const int64_t begin[B] = {0, 17, 1000, 0, 400, 2990};
    const int64_t end[B] = {3000, 2065, 1700, 127, 3000, 3000};  // 2048 + 17; 700; under 128; 2600; 10
    const double scale[B] = {0.5, 1.0, 0.25, 1.0, 2.0, 1.0};
    std::mt19937 rng(31);
    std::normal_distribution<float> nd;
    std::vector<float> y(size_t(B * stride)), t(size_t(B * stride));
    for (size_t i = 0; i < y.size(); ++i) {
        t[i] = 0.3f * nd(rng);
        y[i] = 0.8f * t[i] + 0.1f * nd(rng);
    }
    for (int64_t i = 0; i < 500; ++i) t[size_t(4 * stride + 400 + i)] = 0;  // silence in a target
    const StftLossParams params;
    std::vector<float> want_dy(size_t(B * stride), 0.0f), want_loss(B);
    for (int b = 0; b < B; ++b) {
        const int64_t L = end[b] - begin[b], o = b * stride + begin[b];
        std::vector<float> ds(static_cast<size_t>(L));
        want_loss[size_t(b)] = float(mrstft_loss(y.data() + o, t.data() + o, L, params, scale[b], ds.data()));
        std::copy(ds.begin(), ds.end(), want_dy.begin() + o);
    }
    auto S = kc::make_stft_loss(params.sizes, params.eps);
    std::vector<double> loss(B, std::numeric_limits<double>::quiet_NaN());
    std::vector<float> dy = poisoned(B * stride);
    kc::stft_loss(*S, y.data(), t.data(), B, stride, begin, end, scale, loss.data(), dy.data());
    const std::vector<float> got_loss(loss.begin(), loss.end());
    report(compare("STFT loss per lane (sizes 128, 512, 2048; lanes of 3000, 2048, 700, 127, 2600, 10)", got_loss,
                   want_loss, 1e-6));
    report(compare("STFT loss gradient, zero outside each lane's range", dy, want_dy, 1e-5));
    {
        Result r;  // a lane too short for any size: loss 0 (the CPU's too)
        r.what = "a lane under the smallest size has loss 0";
        r.rel_error = (loss[3] == 0 && want_loss[3] == 0 && loss[5] == 0) ? 0 : 1;
        report(r);
    }
    std::vector<double> loss2(B);
    std::vector<float> dy2 = poisoned(B * stride);
    kc::stft_loss(*S, y.data(), t.data(), B, stride, begin, end, scale, loss2.data(), dy2.data());
    {
        Result r;
        r.what = "STFT loss: a second run gives the same floats";
        r.rel_error = (loss2 == loss && dy2 == dy) ? 0 : 1;
        report(r);
    }
    std::vector<double> loss3(B);
    kc::stft_loss(*S, y.data(), t.data(), B, stride, begin, end, scale, loss3.data(), nullptr);
    {
        Result r;
        r.what = "STFT loss without the gradient: the same losses";
        r.rel_error = loss3 == loss ? 0 : 1;
        report(r);
    }
    expect_refused(report, "make_stft_loss refuses a size that is not a power of two",
                   [&] { kc::make_stft_loss({128, 500}, 1e-5); });
    expect_refused(report, "stft_loss refuses a lane's range past its samples", [&] {
        const int64_t bad_end[B] = {3000, 2065, 1700, 127, 3000, 3001};
        kc::stft_loss(*S, y.data(), t.data(), B, stride, begin, bad_end, scale, loss3.data(), nullptr);
    });
}

} // namespace mw::test::cuda_checks
