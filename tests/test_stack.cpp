// A stack of layers alone (kernels::HeadKind::hidden): the residual stream in, the stream after
// the last layer out, no stem, head or norm_f. Pooled models (docs/POOLED.md) are built from
// such stacks at several rates, so every path through one is checked here against the float64
// reference: the SIMD step and the chunked scan (every ISA build this CPU runs, state in and
// out, a length that is not a multiple of the chunk), the training tape's forward, and the
// tape's gradients, the input's gradient included, against float64 finite differences.
#include "kernels/backward.h"
#include "kernels/fast.h"
#include "kernels/reference.h"
#include "kernels/thread_pool.h"
#include "model/grad.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace mw;
using kernels::Isa;

namespace {

struct StackCase {
    const char* name;
    int d_model, n_layers;
    std::vector<int> lti;  // LTI layers
    int64_t L;
    int chunk;
    uint64_t seed;
};

const StackCase kCases[] = {
    {"D16x2", 16, 2, {}, 77, 32, 1},
    {"D32x3, layer 1 LTI", 32, 3, {1}, 101, 64, 2},
    {"D24x2 (d_model not a multiple of 16)", 24, 2, {}, 45, 16, 3},
};

// The stack: a random effect model's layers, viewed without its stem, head and norm_f.
Model stack_model(const StackCase& k) {
    ModelConfig c = make_config(IoKind::continuous, k.d_model, k.n_layers, 16);
    c.lti_layers = k.lti;
    Model m(c);
    m.init_random(k.seed, 0.3f);
    return m;
}

kernels::ModelView stack_view(const Model& m) {
    kernels::ModelView v = m.view();
    v.head = kernels::HeadKind::hidden;
    v.norm_f_w = nullptr;
    v.stem_w = v.stem_b = v.head_w = v.head_b = nullptr;
    v.n_in = 0;
    return v;
}

std::vector<float> random_rows(int64_t L, int D, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.7f);
    std::vector<float> x(size_t(L * D));
    for (float& v : x) v = normal(rng);
    return x;
}

// The reference's state after a random prefix of 30 rows, as floats (and exactly those in float64).
struct State {
    std::vector<float> f;
    std::vector<double> d;
};
State prefix_state(const kernels::ModelView& v, uint64_t seed) {
    const int64_t P = 30, S = int64_t(v.dims.n_layers) * (v.dims.d_conv - 1 + v.dims.d_state) * v.dims.d_inner;
    const std::vector<float> xp = random_rows(P, v.dims.d_model, seed);
    std::vector<double> xd(xp.begin(), xp.end()), yd(xd.size()), sd(static_cast<size_t>(S));
    kernels::reference_stack_f64(v, xd.data(), P, nullptr, yd.data(), sd.data());
    State s;
    s.f.assign(sd.begin(), sd.end());
    s.d.assign(s.f.begin(), s.f.end());
    return s;
}

} // namespace

TEST_CASE("a stack of layers alone: step, scan and tape equal the float64 reference", "[stack]") {
    for (const StackCase& k : kCases) {
        const Model m = stack_model(k);
        const kernels::ModelView v = stack_view(m);
        const int D = k.d_model;
        const std::vector<float> x = random_rows(k.L, D, k.seed + 10), x1 = random_rows(k.L, D, k.seed + 11);
        const State st = prefix_state(v, k.seed + 12);
        const size_t S = st.f.size();

        std::vector<double> xd(x.begin(), x.end()), want_d(x.size()), want_state_d(S);
        kernels::reference_stack_f64(v, xd.data(), k.L, st.d.data(), want_d.data(), want_state_d.data());
        const std::vector<float> want(want_d.begin(), want_d.end()), want_state(want_state_d.begin(), want_state_d.end());

        test::for_each_isa([&](auto isa) {
            INFO(k.name << ", isa " << kernels::to_string(isa));
            auto P = kernels::prepare_model(v);
            kernels::ThreadPool pool(2);

            // the scan, state in and out, two threads, in place (x and y one buffer)
            auto sc = kernels::make_state(*P, 1, k.chunk);
            REQUIRE(size_t(kernels::stream_state_floats(*sc)) == S);
            std::copy(st.f.begin(), st.f.end(), kernels::stream_state(*sc, 0));
            std::vector<float> scan_y = x;
            kernels::scan_hidden(*P, *sc, 0, scan_y.data(), k.L, scan_y.data(), &pool);
            const std::vector<float> scan_state(kernels::stream_state(*sc, 0), kernels::stream_state(*sc, 0) + S);
            CHECK(test::rel_error(scan_y, want) <= 1e-4);
            CHECK(test::rel_error(scan_state, want_state) <= 1e-4);

            // the step, two streams (stream 1 another input from zero): stream 0 is the scan's
            // floats exactly
            auto ss = kernels::make_state(*P, 2, k.chunk);
            std::copy(st.f.begin(), st.f.end(), kernels::stream_state(*ss, 0));
            std::vector<float> in(size_t(2 * D)), out(size_t(2 * D)), step_y(x.size()), step_y1(x.size());
            for (int64_t t = 0; t < k.L; ++t) {
                std::copy_n(x.begin() + t * D, D, in.begin());
                std::copy_n(x1.begin() + t * D, D, in.begin() + D);
                kernels::step_hidden(*P, *ss, in.data(), out.data());
                std::copy_n(out.begin(), D, step_y.begin() + t * D);
                std::copy_n(out.begin() + D, D, step_y1.begin() + t * D);
            }
            CHECK(step_y == scan_y);
            const std::vector<float> step_state(kernels::stream_state(*ss, 0), kernels::stream_state(*ss, 0) + S);
            CHECK(step_state == scan_state);
            // stream 1 against its own scan from zero
            auto s1 = kernels::make_state(*P, 1, k.chunk);
            std::vector<float> scan_y1(x1.size());
            kernels::scan_hidden(*P, *s1, 0, x1.data(), k.L, scan_y1.data(), nullptr);
            CHECK(step_y1 == scan_y1);
        });

        // the tape (its builds: avx2+fma, which also serves AVX-512 CPUs, and baseline)
        test::for_each_isa({kernels::Isa::avx2, kernels::Isa::baseline}, [&](auto isa) {
            INFO(k.name << ", tape, isa " << kernels::to_string(isa));
            kernels::TrainTape tape(k.chunk);
            std::vector<float> y(x.size()), state_out(S);
            tape.forward_hidden(v, x.data(), k.L, st.f.data(), y.data(), state_out.data());
            CHECK(test::rel_error(y, want) <= 1e-5);
            CHECK(test::rel_error(state_out, want_state) <= 1e-5);
        });
    }
}

TEST_CASE("rows in, a generator's logits out: step, scan and tape equal the float64 reference", "[stack]") {
    // The top stack of a pooled generator: its input is the residual stream, its head norm_f
    // and lm_head (untied here, so the logits do not come from the unused embedding).
    ModelConfig c = make_config(IoKind::mulaw8, 32, 2, 16);
    c.tie_embeddings = false;
    Model m(c);
    m.init_random(5, 0.3f);
    const kernels::ModelView v = m.view();
    const int D = 32, V = 256;
    const int64_t L = 70;
    const std::vector<float> x = random_rows(L, D, 51);
    std::vector<double> xd(x.begin(), x.end()), hd(x.size());
    kernels::reference_stack_f64(v, xd.data(), L, nullptr, hd.data(), nullptr);
    std::vector<float> want(size_t(L * V));
    for (int64_t t = 0; t < L; ++t) {  // logits = lm_head · (RMSNorm(h) ⊙ norm_f)
        double ms = 0;
        for (int d = 0; d < D; ++d) ms += hd[size_t(t * D + d)] * hd[size_t(t * D + d)];
        const double r = 1.0 / std::sqrt(ms / D + c.norm_eps);
        for (int o = 0; o < V; ++o) {
            double acc = 0;
            for (int d = 0; d < D; ++d) acc += double(v.lm_head_w[o * D + d]) * hd[size_t(t * D + d)] * r * double(v.norm_f_w[d]);
            want[size_t(t * V + o)] = float(acc);
        }
    }
    test::for_each_isa([&](auto isa) {
        INFO("isa " << kernels::to_string(isa));
        auto P = kernels::prepare_model(v);
        auto sc = kernels::make_state(*P, 1, 32);
        std::vector<float> scan_l(size_t(L * V)), step_l(size_t(L * V));
        kernels::scan_hidden(*P, *sc, 0, x.data(), L, scan_l.data(), nullptr);
        CHECK(test::rel_error(scan_l, want) <= 1e-4);
        auto ss = kernels::make_state(*P, 1, 32);
        for (int64_t t = 0; t < L; ++t) kernels::step_hidden(*P, *ss, x.data() + t * D, step_l.data() + t * V);
        CHECK(test::rel_error(step_l, want) <= 1e-4);
        if (isa != Isa::avx512) {
            kernels::TrainTape tape(32);
            std::vector<float> tape_l(size_t(L * V));
            tape.forward_hidden(v, x.data(), L, nullptr, tape_l.data(), nullptr);
            CHECK(test::rel_error(tape_l, want) <= 1e-5);
        }
    });
}

TEST_CASE("a stack's gradients, its input's included, match float64 finite differences", "[stack][backward]") {
    for (const StackCase& k : kCases) {
        Model m = stack_model(k);
        const kernels::ModelView v = stack_view(m);  // points into m: perturbing m moves it
        const int D = k.d_model;
        std::vector<float> x = random_rows(k.L, D, k.seed + 20);
        const std::vector<float> wt = random_rows(k.L, D, k.seed + 21);  // Loss = Σ wt ⊙ y
        const State st = prefix_state(v, k.seed + 22);
        auto loss = [&]() {
            std::vector<double> xd(x.begin(), x.end()), y(x.size());
            kernels::reference_stack_f64(v, xd.data(), k.L, st.d.data(), y.data(), nullptr);
            double l = 0;
            for (size_t i = 0; i < y.size(); ++i) l += double(wt[i]) * y[i];
            return l;
        };
        auto fd = [&](float* w) { return test::central_difference(w, loss); };

        test::for_each_isa({kernels::Isa::avx2, kernels::Isa::baseline}, [&](auto isa) {
            Model g = zeros_like(m);
            std::vector<kernels::LayerGrad> glayers;
            const kernels::ModelGrad mg = g.as_gradient(glayers);
            kernels::TrainTape tape(k.chunk);
            std::vector<float> y(x.size()), dx(x.size(), 7.0f);
            tape.forward_hidden(v, x.data(), k.L, st.f.data(), y.data(), nullptr);
            tape.backward(wt.data(), mg, dx.data());

            std::mt19937_64 rng(k.seed + 23);
            double worst = 0;
            auto check = [&](const std::string& what, float* w, const float* gw, int64_t n, int count,
                             std::set<int64_t> picks = {}) {
                const size_t want = picks.size() + size_t(std::min<int64_t>(count, n));
                while (picks.size() < want) picks.insert(int64_t(rng() % uint64_t(n)));
                std::vector<double> f;
                for (int64_t i : picks) f.push_back(fd(w + i));
                double scale = 0;
                for (double e : f) scale = std::max(scale, std::fabs(e));
                CHECK(scale > 0);  // a sampled tensor whose gradient is all zero checks nothing
                size_t j = 0;
                for (int64_t i : picks) {
                    const double err = std::fabs(double(gw[i]) - f[j]) / std::max({std::fabs(f[j]), 0.01 * scale, 1e-12});
                    INFO(k.name << " " << kernels::to_string(isa) << " " << what << "[" << i << "]: tape " << gw[i]
                                << ", finite difference " << f[j]);
                    CHECK(err <= 1e-3);
                    worst = std::max(worst, err);
                    ++j;
                }
            };
            for (const TensorSpec& spec : m.tensors()) {
                if (spec.name.rfind("backbone.layers.", 0) != 0) continue;  // the stack's own tensors
                check(spec.name, m.tensor(spec.name), g.tensor(spec.name), spec.numel(), 6);
            }
            // the input: 24 elements anywhere, and every element of the first and last rows
            std::set<int64_t> rows;
            for (int d = 0; d < D; ++d) rows.insert({d, (k.L - 1) * D + d});
            check("input x", x.data(), dx.data(), int64_t(x.size()), 24, rows);
            // the stem, head and norm_f are not the stack's: nothing may be added there
            for (const TensorSpec& spec : m.tensors()) {
                if (spec.name.rfind("backbone.layers.", 0) == 0) continue;
                const float* gw = g.tensor(spec.name);
                INFO(spec.name);
                CHECK(std::all_of(gw, gw + spec.numel(), [](float e) { return e == 0.0f; }));
            }
            std::printf("%s, %s: worst relative gradient error %.2e\n", k.name, kernels::to_string(isa), worst);
        });
    }
}
