// The training tape (model/grad.h, kernels/backward.h): its forward against the float64
// reference and the inference scan, segments carried through the state, and its gradients
// against float64 central finite differences of the float64 reference forward, for every
// tensor of both model kinds, with selective layers, LTI layers (constant B, C, Δ per channel;
// kernels/model_view.h) and models that mix the two.
//
// How the finite differences are taken. A weight w (float) is moved to w+ = float(w + h) and
// w- = float(w - h); the reference forward runs in float64 from there (the weights are exactly
// those floats), and fd = (Loss(w+) - Loss(w-)) / (w+ - w-) with the step as the floats really
// differ. h = 1e-3·max(1, |w|): the central-difference error h²/6·Loss''' stays near 1e-6
// relative for these smooth functions, and float64 round-off (1e-16·|Loss|/h) is far below it.
// The tape computes in float32, so its gradient differs from the exact one by float rounding,
// which grows where a gradient is a sum of many terms that cancel. Each element is therefore
// compared relative to max(|fd|, 1% of the largest sampled |fd| of its tensor), and must agree
// within 1e-3 (the worst observed is 1.5e-4; every run prints the worst per tensor). A
// directional check along a random direction of all parameters at once backs the per-element
// samples up (observed at most 8e-6, required 1e-4).
#include "kernels/backward.h"
#include "kernels/fast.h"
#include "kernels/reference.h"
#include "kernels/thread_pool.h"
#include "model/grad.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace mw;

namespace {

struct Case {
    const char* name;
    IoKind kind;
    int d_model, n_layers, d_state, d_conv, dt_rank;  // dt_rank 0: the default
    int n_cond;
    bool skip, tie, conv_bias, carry_state;
    int64_t L;
    int chunk;
    int per_tensor;  // elements checked per tensor
    uint64_t seed;
};


// One training example: input, the carried-in state, and the loss.
//   effect:    Loss = Σ_t wt_t · y_t with random wt (so every output sample matters)
//   generator: Loss = mean_t cross-entropy(logits_t, target_t) with random targets
struct Example {
    bool effect = true;
    int64_t L = 0;
    int V = 256;
    std::vector<float> x;         // [L][I]
    std::vector<int32_t> tokens;  // [L]
    std::vector<int32_t> target;  // [L]
    std::vector<float> wt;        // [L]
    std::vector<float> state;     // [state floats] or empty (zero)
    std::vector<double> state_d;  // the same in float64, for the reference
};

Example make_example(const Model& m, const Case& k) {
    Example ex;
    ex.effect = k.kind == IoKind::continuous;
    ex.L = k.L;
    std::mt19937_64 rng(k.seed * 7919 + 1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int I = m.config().n_in();
    if (ex.effect) {
        ex.x = test::random_effect_input(k.L, I, k.seed + 11);
        ex.wt.resize(static_cast<size_t>(k.L));
        for (float& w : ex.wt) w = normal(rng);
    } else {
        ex.tokens = test::random_tokens(k.L, k.seed + 12);
        ex.target = test::random_tokens(k.L, k.seed + 13);
    }
    if (k.carry_state) {
        // A realistic carried-in state: the reference's state after a random prefix of 40 samples.
        const int64_t P = 40;
        ex.state_d.resize(static_cast<size_t>(m.state_floats_per_stream()));
        if (ex.effect) {
            auto xp = test::random_effect_input(P, I, k.seed + 14);
            std::vector<double> y(static_cast<size_t>(P));
            kernels::reference_forward_continuous_f64(m.view(), xp.data(), P, nullptr, y.data(), ex.state_d.data());
        } else {
            auto tp = test::random_tokens(P, k.seed + 15);
            std::vector<double> lg(static_cast<size_t>(P * 256));
            kernels::reference_forward_tokens_f64(m.view(), tp.data(), P, nullptr, lg.data(), ex.state_d.data());
        }
        ex.state.assign(ex.state_d.begin(), ex.state_d.end());
        for (size_t i = 0; i < ex.state.size(); ++i) ex.state_d[i] = double(ex.state[i]);  // exactly the floats
    }
    return ex;
}

// The test case's model (test::case_model's config and initialisation) with the layers `lti`
// made LTI; lti empty: exactly test::case_model(k).
Model make_model(const Case& k, const std::vector<int>& lti = {}) {
    ModelConfig c = test::case_model(k).config();
    c.lti_layers = lti;
    Model m(c);
    m.init_random(k.seed, 0.3f);
    return m;
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

const float* state_ptr(const Example& ex) { return ex.state.empty() ? nullptr : ex.state.data(); }
const double* state_ptr_d(const Example& ex) { return ex.state_d.empty() ? nullptr : ex.state_d.data(); }

// The loss of the float64 reference forward.
double reference_loss(const Model& m, const Example& ex) {
    const double* s = state_ptr_d(ex);
    if (ex.effect) {
        std::vector<double> y(static_cast<size_t>(ex.L));
        kernels::reference_forward_continuous_f64(m.view(), ex.x.data(), ex.L, s, y.data(), nullptr);
        double loss = 0;
        for (int64_t t = 0; t < ex.L; ++t) loss += double(ex.wt[size_t(t)]) * y[size_t(t)];
        return loss;
    }
    std::vector<double> lg(static_cast<size_t>(ex.L * ex.V));
    kernels::reference_forward_tokens_f64(m.view(), ex.tokens.data(), ex.L, s, lg.data(), nullptr);
    double loss = 0;
    for (int64_t t = 0; t < ex.L; ++t) {
        const double* l = &lg[size_t(t * ex.V)];
        const double mx = *std::max_element(l, l + ex.V);
        double z = 0;
        for (int v = 0; v < ex.V; ++v) z += std::exp(l[v] - mx);
        loss += mx + std::log(z) - l[ex.target[size_t(t)]];
    }
    return loss / double(ex.L);
}

// The tape's forward, then its backward of the same loss: the gradient as a Model.
Model tape_gradient(const Model& m, const Example& ex, int chunk) {
    Tape tape(chunk);
    Model g = zeros_like(m);
    const float* s = state_ptr(ex);
    if (ex.effect) {
        std::vector<float> y(static_cast<size_t>(ex.L));
        tape.forward_continuous(m, ex.x.data(), ex.L, s, y.data(), nullptr);
        tape.backward(ex.wt.data(), g);
    } else {
        std::vector<float> lg(static_cast<size_t>(ex.L * ex.V)), dl(static_cast<size_t>(ex.L * ex.V));
        tape.forward_tokens(m, ex.tokens.data(), ex.L, s, lg.data(), nullptr);
        for (int64_t t = 0; t < ex.L; ++t) {  // d(mean CE)/dlogits = (softmax − onehot) / L
            const float* l = &lg[size_t(t * ex.V)];
            const double mx = *std::max_element(l, l + ex.V);
            double z = 0;
            for (int v = 0; v < ex.V; ++v) z += std::exp(double(l[v]) - mx);
            for (int v = 0; v < ex.V; ++v) {
                const double p = std::exp(double(l[v]) - mx) / z;
                dl[size_t(t * ex.V + v)] = float((p - (v == ex.target[size_t(t)] ? 1.0 : 0.0)) / double(ex.L));
            }
        }
        tape.backward(dl.data(), g);
    }
    return g;
}

// Central difference of the reference loss in one weight (see the file comment).
double finite_difference(Model& m, const Example& ex, float* w) {
    const float w0 = *w;
    const double h = 1e-3 * std::max(1.0, double(std::fabs(w0)));
    const float wp = float(double(w0) + h), wm = float(double(w0) - h);
    *w = wp;
    const double lp = reference_loss(m, ex);
    *w = wm;
    const double lm = reference_loss(m, ex);
    *w = w0;
    return (lp - lm) / (double(wp) - double(wm));
}

constexpr double kElementTolerance = 1e-3;
constexpr double kDirectionTolerance = 1e-4;
// The direction's step: v ~ N(0, 1) per parameter, so the whole step has norm 1e-5·sqrt(P) ≈ 1e-3
// (at 1e-3 per parameter the central difference's own error reached 7e-4 on the generators).
constexpr float kDirStep = 1e-5f;

// Every tensor: `per_tensor` sampled elements against finite differences, for each ISA build;
// the layers `lti` are LTI. every_BC: every element of the LTI layers' B and C is checked.
void check_gradients(const Case& k, const std::vector<int>& lti = {}, bool every_BC = false) {
    Model m = make_model(k, lti);
    const Example ex = make_example(m, k);
    std::vector<Model> grads;
    const std::vector<kernels::Isa> isas = {kernels::Isa::avx2, kernels::Isa::baseline};
    for (kernels::Isa isa : isas) {
        kernels::set_isa_for_testing(isa);
        grads.push_back(tape_gradient(m, ex, k.chunk));
    }
    kernels::reset_isa_for_testing();

    std::mt19937_64 rng(k.seed + 99);
    std::string report = std::string(k.name) + ": worst relative error per tensor (elements checked)\n";
    double worst_all = 0;
    for (const TensorSpec& spec : m.tensors()) {
        const int64_t n = spec.numel();
        std::set<int64_t> picks;
        const bool embed = spec.name == "backbone.embeddings.weight";
        const bool every = every_BC && (ends_with(spec.name, "mixer.B") || ends_with(spec.name, "mixer.C"));
        const int want = int(every ? n : std::min<int64_t>(k.per_tensor, n));
        while (int(picks.size()) < want) {
            if (embed && !k.tie) {  // untied: only rows of tokens that occur have a gradient
                const int64_t row = ex.tokens[size_t(rng() % uint64_t(ex.L))];
                picks.insert(row * spec.shape[1] + int64_t(rng() % uint64_t(spec.shape[1])));
            } else {
                picks.insert(int64_t(rng() % uint64_t(n)));
            }
        }
        float* w = m.tensor(spec.name);
        std::vector<double> fd;
        for (int64_t i : picks) fd.push_back(finite_difference(m, ex, w + i));
        double scale = 0;
        for (double f : fd) scale = std::max(scale, std::fabs(f));
        double worst = 0;
        for (size_t gi = 0; gi < grads.size(); ++gi) {
            const float* g = grads[gi].tensor(spec.name);
            size_t j = 0;
            for (int64_t i : picks) {
                const double denom = std::max({std::fabs(fd[j]), 0.01 * scale, 1e-12});
                const double err = std::fabs(double(g[i]) - fd[j]) / denom;
                if (err > kElementTolerance)
                    UNSCOPED_INFO(k.name << " " << to_string(isas[gi]) << " " << spec.name << "[" << i
                                  << "]: tape " << g[i] << ", finite difference " << fd[j]);
                worst = std::max(worst, err);
                ++j;
            }
        }
        char line[200];
        std::snprintf(line, sizeof line, "  %-40s %.2e  (%d, |g| up to %.2e)\n", spec.name.c_str(), worst,
                      want, scale);
        report += line;
        worst_all = std::max(worst_all, worst);
        CHECK(scale > 0);  // a sampled tensor whose gradient is all zero checks nothing
    }

    // All parameters at once along a random direction v: Loss(θ+δ+) − Loss(θ+δ−) vs g·(δ+ − δ−),
    // with δ± the steps as the floats θ ± kDirStep·v really are.
    const int64_t P = m.parameter_count();
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> theta(m.data(), m.data() + P), plus(static_cast<size_t>(P)), minus(static_cast<size_t>(P));
    for (int64_t i = 0; i < P; ++i) {
        const float v = normal(rng);
        plus[size_t(i)] = theta[size_t(i)] + kDirStep * v;
        minus[size_t(i)] = theta[size_t(i)] - kDirStep * v;
    }
    std::copy(plus.begin(), plus.end(), m.data());
    const double lp = reference_loss(m, ex);
    std::copy(minus.begin(), minus.end(), m.data());
    const double lm = reference_loss(m, ex);
    std::copy(theta.begin(), theta.end(), m.data());
    double dir_worst = 0;
    for (const Model& g : grads) {
        double gd = 0;
        for (int64_t i = 0; i < P; ++i)
            gd += double(g.data()[i]) * (double(plus[size_t(i)]) - double(minus[size_t(i)]));
        dir_worst = std::max(dir_worst, std::fabs(gd - (lp - lm)) / std::fabs(lp - lm));
    }
    char line[200];
    std::snprintf(line, sizeof line, "  all parameters along a random direction: %.2e\n", dir_worst);
    report += line;
    std::printf("%s", report.c_str());
    INFO(report);
    CHECK(worst_all <= kElementTolerance);
    CHECK(dir_worst <= kDirectionTolerance);
}

// The tape's forward (output and state out) against the float64 reference, both ISA builds.
// large_steps: test::make_steps_large's Δ and decay rates (the tape must not treat a channel as
// dead once its fastest state has decayed to nothing)
// overflow: with large_steps, also a channel whose decay rate overflows a float (A_log 89)
void check_forward(const Case& k, const std::vector<int>& lti = {}, bool large_steps = false, bool overflow = false) {
    for (kernels::Isa isa : {kernels::Isa::avx2, kernels::Isa::baseline}) {
        kernels::set_isa_for_testing(isa);
        Model m = make_model(k, lti);
        if (large_steps) test::make_steps_large(m, k.seed + 1, false, overflow);
        const Example ex = make_example(m, k);
        const int64_t S = m.state_floats_per_stream();
        const size_t n_out = size_t(ex.effect ? ex.L : ex.L * 256);
        std::vector<double> want_d(n_out), want_state_d(static_cast<size_t>(S));
        std::vector<float> got(n_out), got_state(static_cast<size_t>(S));
        Tape tape(k.chunk);
        if (ex.effect) {
            kernels::reference_forward_continuous_f64(m.view(), ex.x.data(), ex.L, state_ptr_d(ex),
                                                      want_d.data(), want_state_d.data());
            tape.forward_continuous(m, ex.x.data(), ex.L, state_ptr(ex), got.data(), got_state.data());
        } else {
            kernels::reference_forward_tokens_f64(m.view(), ex.tokens.data(), ex.L, state_ptr_d(ex),
                                                  want_d.data(), want_state_d.data());
            tape.forward_tokens(m, ex.tokens.data(), ex.L, state_ptr(ex), got.data(), got_state.data());
        }
        const std::vector<float> want(want_d.begin(), want_d.end());
        const std::vector<float> want_state(want_state_d.begin(), want_state_d.end());
        INFO(k.name << " (" << lti.size() << " LTI layers) isa " << to_string(isa) << ": output rel error "
                    << test::rel_error(got, want) << ", state rel error " << test::rel_error(got_state, want_state));
        CHECK(test::rel_error(got, want) <= 1e-5);
        CHECK(test::rel_error(got_state, want_state) <= 1e-5);
    }
    kernels::reset_isa_for_testing();
}

} // namespace

TEST_CASE("effect gradients match float64 finite differences", "[backward]") {
    // D16 N16 (the fixed-N scan), controls, skip, carried-in state, L not a multiple of the chunk.
    check_gradients({"effect D16x2 N16 n_cond 2 skip, state in, L 300 chunk 64", IoKind::continuous,
                     16, 2, 16, 4, 0, 2, true, true, true, true, 300, 64, 6, 1});
    // Padded d_inner (36), generic N (5), K 3, dt_rank 2, no controls, no skip, zero state.
    check_gradients({"effect D18x2 N5 K3 R2, no skip, L 97 chunk 16", IoKind::continuous, 18, 2, 5, 3, 2,
                     0, false, true, true, false, 97, 16, 6, 2});
}

TEST_CASE("effect gradients at lengths 1, 7 and 20, chunks shorter than the conv window, d_conv 1", "[backward]") {
    check_gradients({"effect D8x2 N16 L 1, state in", IoKind::continuous, 8, 2, 16, 4, 0, 1, true, true,
                     true, true, 1, 64, 4, 3});
    // chunk 2 < d_conv - 1: the conv's look-ahead crosses two chunk borders; no conv bias.
    check_gradients({"effect D8x1 N4 L 7 chunk 2, no conv bias, state in", IoKind::continuous, 8, 1, 4, 4,
                     0, 2, false, true, false, true, 7, 2, 6, 4});
    // d_conv 1: no conv window at all; N 12: one 8-wide group of the dB/dC sums plus four.
    check_gradients({"effect D8x2 N12 K1 L 20 chunk 8, state in", IoKind::continuous, 8, 2, 12, 1, 0, 0,
                     true, true, true, true, 20, 8, 4, 7});
}

TEST_CASE("generator gradients (cross-entropy) match float64 finite differences, tied and untied",
          "[backward]") {
    check_gradients({"generator D16x2 tied, state in, L 97 chunk 32", IoKind::mulaw8, 16, 2, 16, 4, 0, 0,
                     false, true, true, true, 97, 32, 5, 5});
    check_gradients({"generator D8x2 N5 untied, L 70 chunk 64", IoKind::mulaw8, 8, 2, 5, 4, 0, 0, false,
                     false, true, false, 70, 64, 5, 6});
}

TEST_CASE("tape forward equals the float64 reference, state in and out", "[backward]") {
    const Case cases[] = {
        {"effect D16x4 n_cond 2 skip", IoKind::continuous, 16, 4, 16, 4, 0, 2, true, true, true, true, 1000, 64, 0, 21},
        {"effect D18x2 N5 K3", IoKind::continuous, 18, 2, 5, 3, 2, 0, false, true, true, true, 333, 50, 0, 22},
        {"effect D8x2 L 2 (shorter than the window)", IoKind::continuous, 8, 2, 16, 4, 0, 0, true, true, true, true, 2, 64, 0, 23},
        {"generator D16x2 untied", IoKind::mulaw8, 16, 2, 16, 4, 0, 0, false, false, true, true, 300, 64, 0, 24},
    };
    for (const Case& k : cases) check_forward(k);
    // large steps beside slow states, selective and LTI layers
    check_forward({"effect D16x2 large steps", IoKind::continuous, 16, 2, 16, 4, 0, 1, true, true, true, true, 500, 64, 0, 25},
                  {}, true);
    check_forward({"effect D16x2 large steps, layer 1 LTI", IoKind::continuous, 16, 2, 16, 4, 0, 1, true, true, true, true,
                   500, 64, 0, 26}, {1}, true);
    check_forward({"effect D16x2 large steps, a channel's rate overflowing, layer 1 LTI", IoKind::continuous, 16, 2, 16, 4,
                   0, 1, true, true, true, true, 500, 64, 0, 27}, {1}, true, true);
}

TEST_CASE("tape forward equals the inference scan, and their states are interchangeable", "[backward]") {
    // d_inner 32 (a multiple of 8): the tape's state layout is kernels::stream_state's.
    const Case k{"effect D16x3", IoKind::continuous, 16, 3, 16, 4, 0, 1, true, true, true, false, 700, 64, 0, 31};
    const Model m = test::case_model(k);
    const int I = m.config().n_in();
    const int64_t L1 = 300, L2 = 400, S = m.state_floats_per_stream();
    auto x = test::random_effect_input(L1 + L2, I, 5);
    auto P = kernels::prepare_model(m.view());
    auto st = kernels::make_state(*P, 1, 128);
    REQUIRE(kernels::stream_state_floats(*st) == S);
    // inference over the first part, then the tape over the second from the inference's state
    std::vector<float> y_inf(static_cast<size_t>(L1 + L2)), y_tape(static_cast<size_t>(L2)), tape_state(static_cast<size_t>(S));
    kernels::scan_continuous(*P, *st, 0, x.data(), L1, y_inf.data(), nullptr);
    const std::vector<float> mid(kernels::stream_state(*st, 0), kernels::stream_state(*st, 0) + S);
    kernels::scan_continuous(*P, *st, 0, x.data() + L1 * I, L2, y_inf.data() + L1, nullptr);
    Tape tape(64);
    tape.forward_continuous(m, x.data() + L1 * I, L2, mid.data(), y_tape.data(), tape_state.data());
    const std::vector<float> y_inf2(y_inf.begin() + L1, y_inf.end());
    const std::vector<float> end_state(kernels::stream_state(*st, 0), kernels::stream_state(*st, 0) + S);
    INFO("output rel error " << test::rel_error(y_tape, y_inf2) << ", state rel error "
                             << test::rel_error(tape_state, end_state));
    CHECK(test::rel_error(y_tape, y_inf2) <= 1e-4);
    CHECK(test::rel_error(tape_state, end_state) <= 1e-4);
}

TEST_CASE("two segments through the carried state equal one forward over both", "[backward]") {
    for (IoKind kind : {IoKind::continuous, IoKind::mulaw8}) {
        const Case k{"two segments", kind, 16, 2, 16, 4, 0, kind == IoKind::continuous ? 1 : 0, true, true,
                     true, true, 500, 64, 0, 41};
        const Model m = test::case_model(k);
        Example ex = make_example(m, k);
        const int64_t L = ex.L, L1 = 173, S = m.state_floats_per_stream();
        const int O = ex.effect ? 1 : 256, I = m.config().n_in();
        std::vector<float> whole(static_cast<size_t>(L * O)), parts(static_cast<size_t>(L * O)), s_whole(static_cast<size_t>(S)), s_parts(ex.state);
        Tape a(64), b(64);
        if (ex.effect) {
            a.forward_continuous(m, ex.x.data(), L, state_ptr(ex), whole.data(), s_whole.data());
            b.forward_continuous(m, ex.x.data(), L1, s_parts.data(), parts.data(), s_parts.data());
            b.forward_continuous(m, ex.x.data() + L1 * I, L - L1, s_parts.data(), parts.data() + L1, s_parts.data());
        } else {
            a.forward_tokens(m, ex.tokens.data(), L, state_ptr(ex), whole.data(), s_whole.data());
            b.forward_tokens(m, ex.tokens.data(), L1, s_parts.data(), parts.data(), s_parts.data());
            b.forward_tokens(m, ex.tokens.data() + L1, L - L1, s_parts.data(), parts.data() + L1 * O, s_parts.data());
        }
        INFO(to_string(kind) << ": output rel error " << test::rel_error(parts, whole) << ", state rel error "
                             << test::rel_error(s_parts, s_whole));
        CHECK(test::rel_error(parts, whole) <= 1e-6);
        CHECK(test::rel_error(s_parts, s_whole) <= 1e-6);
    }
}

TEST_CASE("gradients do not depend on the chunk size, and backward accumulates", "[backward]") {
    const Case k{"chunks", IoKind::continuous, 16, 2, 16, 4, 0, 2, false, true, true, true, 517, 64, 0, 51};
    // selective, then layer 1 LTI (a mixed model), then both LTI
    for (const std::vector<int>& lti : {std::vector<int>{}, std::vector<int>{1}, std::vector<int>{0, 1}}) {
        const Model m = make_model(k, lti);
        const Example ex = make_example(m, k);
        const Model g64 = tape_gradient(m, ex, 64);
        const std::vector<float> ref(g64.data(), g64.data() + m.parameter_count());
        for (int chunk : {1, 3, 7, 100, 1000}) {
            const Model g = tape_gradient(m, ex, chunk);
            const std::vector<float> got(g.data(), g.data() + m.parameter_count());
            INFO(lti.size() << " LTI layers, chunk " << chunk << ": rel difference " << test::rel_error(got, ref));
            CHECK(test::rel_error(got, ref) <= 1e-5);
        }
    }
    const Model m = test::case_model(k);
    const Example ex = make_example(m, k);
    const Model g64 = tape_gradient(m, ex, 64);
    const int64_t P = m.parameter_count();
    const std::vector<float> ref(g64.data(), g64.data() + P);
    // backward adds: two backwards of one forward give twice the gradient
    Tape tape(64);
    Model g = zeros_like(m);
    std::vector<float> y(static_cast<size_t>(ex.L));
    tape.forward_continuous(m, ex.x.data(), ex.L, state_ptr(ex), y.data(), nullptr);
    tape.backward(ex.wt.data(), g);
    tape.backward(ex.wt.data(), g);
    std::vector<float> twice(ref);
    for (float& v : twice) v *= 2.0f;
    CHECK(test::rel_error(std::vector<float>(g.data(), g.data() + P), twice) <= 1e-6);
}

TEST_CASE("tape misuse is refused clearly", "[backward]") {
    const Case k{"misuse", IoKind::continuous, 8, 1, 4, 4, 0, 0, false, true, true, false, 10, 64, 0, 61};
    const Model m = test::case_model(k);
    Tape tape;
    Model g = zeros_like(m);
    std::vector<float> d(10, 1.0f), y(10);
    CHECK_THROWS_AS(tape.backward(d.data(), g), std::logic_error);
    auto x = test::random_effect_input(10, 1, 1);
    std::vector<int32_t> tok(10, 3);
    CHECK_THROWS_AS(tape.forward_tokens(m, tok.data(), 10, nullptr, y.data(), nullptr), std::invalid_argument);
    tape.forward_continuous(m, x.data(), 10, nullptr, y.data(), nullptr);
    Case k2 = k;
    k2.d_model = 16;
    Model other = zeros_like(test::case_model(k2));
    CHECK_THROWS_AS(tape.backward(d.data(), other), std::invalid_argument);
    CHECK_THROWS_AS(Tape(0), std::invalid_argument);
    {   // the raw tape: a gradient whose layer is selective after an LTI layer's forward
        const Model lti = make_model(k, {0});
        kernels::TrainTape raw;
        raw.forward_continuous(lti.view(), x.data(), 10, nullptr, y.data(), nullptr);
        std::vector<kernels::LayerGrad> layers;
        Model sel_grad = zeros_like(m);
        CHECK_THROWS_AS(raw.backward(d.data(), sel_grad.as_gradient(layers)), std::invalid_argument);
        CHECK(std::all_of(sel_grad.data(), sel_grad.data() + sel_grad.parameter_count(),
                          [](float v) { return v == 0.0f; }));  // refused before adding anything
    }

    // Without conv bias the model's view points the bias at zeros behind the parameters; the
    // gradient model's copy of them stays zero.
    Case k3 = k;
    k3.conv_bias = false;
    const Model nb = test::case_model(k3);
    Model gnb = zeros_like(nb);
    tape.forward_continuous(nb, x.data(), 10, nullptr, y.data(), nullptr);
    tape.backward(d.data(), gnb);
    const float* tail = gnb.data() + gnb.parameter_count();
    CHECK(std::all_of(tail, tail + nb.config().d_inner, [](float v) { return v == 0.0f; }));
}

// ---- LTI layers: B, C per channel, Δ = softplus(dt_proj.bias) -----------------------------------

TEST_CASE("LTI and mixed models: gradients match float64 finite differences", "[backward][lti]") {
    // Every layer LTI, N16 (the fixed-N scan), controls, skip, state in, L not a multiple of the chunk.
    check_gradients({"LTI effect D16x2 N16 n_cond 2 skip, state in, L 300 chunk 64", IoKind::continuous,
                     16, 2, 16, 4, 0, 2, true, true, true, true, 300, 64, 6, 71}, {0, 1});
    // Mixed: layer 0 selective (dt_rank 2), layer 1 LTI; padded d_inner, generic N, K 3.
    check_gradients({"mixed effect D18x2 N5 K3 R2 (LTI layer 1), no skip, L 97 chunk 16", IoKind::continuous,
                     18, 2, 5, 3, 2, 0, false, true, true, false, 97, 16, 6, 72}, {1});
    // Mixed the other way round, generator, tied.
    check_gradients({"mixed generator D16x2 tied (LTI layer 0), state in, L 97 chunk 32", IoKind::mulaw8,
                     16, 2, 16, 4, 0, 0, false, true, true, true, 97, 32, 5, 73}, {0});
    check_gradients({"LTI generator D8x2 N5 untied, L 70 chunk 64", IoKind::mulaw8, 8, 2, 5, 4, 0, 0, false,
                     false, true, false, 70, 64, 5, 74}, {0, 1});
}

TEST_CASE("LTI gradients of every element of B and C", "[backward][lti]") {
    // A chunk (5) shorter than the conv window's reach plus one, L 37 over eight chunks, state in;
    // d_inner 16, N 4: 64 elements each of B and C, every one against its finite difference.
    check_gradients({"LTI effect D8x1 N4 L 37 chunk 5, state in, every B and C", IoKind::continuous, 8, 1,
                     4, 4, 0, 1, true, true, true, true, 37, 5, 4, 75}, {0}, true);
    // Mixed, N16: every element of layer 1's B and C (32 x 16 each).
    check_gradients({"mixed effect D16x2 N16 (LTI layer 1) L 50 chunk 16, every B and C", IoKind::continuous,
                     16, 2, 16, 4, 0, 0, false, true, true, true, 50, 16, 4, 76}, {1}, true);
}

TEST_CASE("LTI and mixed models: tape forward equals the float64 reference", "[backward][lti]") {
    check_forward({"LTI effect D16x4 n_cond 2 skip", IoKind::continuous, 16, 4, 16, 4, 0, 2, true, true, true,
                   true, 1000, 64, 0, 81}, {0, 1, 2, 3});
    check_forward({"mixed effect D18x3 N5 K3", IoKind::continuous, 18, 3, 5, 3, 2, 0, false, true, true, true,
                   333, 50, 0, 82}, {0, 2});
    check_forward({"LTI effect D8x2 L 2 (shorter than the window)", IoKind::continuous, 8, 2, 16, 4, 0, 0, true,
                   true, true, true, 2, 64, 0, 83}, {1});
    check_forward({"mixed generator D16x2 untied", IoKind::mulaw8, 16, 2, 16, 4, 0, 0, false, false, true, true,
                   300, 64, 0, 84}, {1});
}
