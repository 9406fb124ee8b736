// The three CPU paths agree: reference (float64) vs SIMD step vs chunked threaded scan, on
// random models at several sizes, lengths that no chunk divides, both instruction-set builds.
#include "kernels/fast.h"
#include "kernels/fixed_dt.h"
#include "kernels/harmonic_decay.h"
#include "kernels/host_trace.h"
#include "kernels/reference.h"
#include "kernels/tensor_pack.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace mw;
using namespace mw::kernels;

namespace {

struct Shape {
    const char* name;
    int d_model, n_layers, d_state, d_conv, n_cond;
    bool skip;
};

const Shape kShapes[] = {
    {"D16xL4 N16 (the small effect)", 16, 4, 16, 4, 2, true},
    {"D24xL2 N8 R2 (E=48)", 24, 2, 8, 4, 0, false},
    {"D8xL3 N5 K3 (generic N, odd sizes)", 8, 3, 5, 3, 1, false},
    {"D40xL2 N16 R3 (E=80, D not a multiple of 8)", 40, 2, 16, 4, 0, true},
    {"D20xL2 N16 (E=40: 32 channels and a tail of 8)", 20, 2, 16, 4, 1, false},
    {"D32xL2 N16 R2 (the medium fixed shape)", 32, 2, 16, 4, 0, false},
    {"D64xL1 N16 R4 (the large fixed shape)", 64, 1, 16, 4, 0, true},
};

struct Run {
    std::vector<float> ref, step, scan1, scan2;
};

Run run_effect(const Model& m, const std::vector<float>& x, int64_t L, int chunk) {
    Run r;
    const int I = m.config().n_in();
    r.ref.resize(static_cast<size_t>(L));
    reference_forward_continuous(m.view(), x.data(), L, r.ref.data());
    auto P = prepare_model(m.view());
    {
        auto S = make_state(*P, 1);
        r.step.resize(static_cast<size_t>(L));
        for (int64_t t = 0; t < L; ++t) step_continuous(*P, *S, x.data() + t * I, r.step.data() + t);
    }
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        auto S = make_state(*P, 1, chunk);
        std::vector<float>& out = threads == 1 ? r.scan1 : r.scan2;
        out.resize(static_cast<size_t>(L));
        scan_continuous(*P, *S, 0, x.data(), L, out.data(), &pool);
    }
    return r;
}

void check_agreement(const Run& r, const std::string& what) {
    INFO(what);
    const double e_step = test::rel_error(r.step, r.ref), e_scan1 = test::rel_error(r.scan1, r.ref),
                 e_scan2 = test::rel_error(r.scan2, r.ref);
    UNSCOPED_INFO("rel error vs reference: step " << e_step << ", scan(1 thread) " << e_scan1
                  << ", scan(2 threads) " << e_scan2 << "; max |diff| step "
                  << test::max_abs_diff(r.step, r.ref));
    CHECK(e_step <= 1e-4);
    CHECK(e_scan1 <= 1e-4);
    CHECK(e_scan2 <= 1e-4);
    // scan and step run the same float arithmetic per row: far tighter than 1e-4
    CHECK(test::rel_error(r.scan2, r.step) <= 1e-5);
    CHECK(test::max_abs_diff(r.scan1, r.step) == 0.0);
    CHECK(test::max_abs_diff(r.scan2, r.step) == 0.0);
}

// m's A_log rows made harmonic (harmonic_decay.h) around their jittered values, so each
// channel keeps its own random rate.
void make_harmonic(Model& m) { m.for_each_A_log(m.data(), make_decays_harmonic); }

// test::random_model's config of shape s with the layers `lti` made LTI, initialised with jitter
// 0.3: B = 1 + 0.3·normal and D, biases away from their init, so a path that ignored B (or the
// Δ in Δ·B) would miss the reference by far more than the tolerance.
Model lti_model(IoKind kind, const Shape& s, const std::vector<int>& lti, uint64_t seed) {
    const bool effect = kind == IoKind::continuous;
    ModelConfig c = test::random_model(kind, s.d_model, s.n_layers, s.d_state, seed, effect ? s.n_cond : 0,
                                       effect && s.skip, s.d_conv).config();
    c.lti_layers = lti;
    Model m(c);
    m.init_random(seed, 0.3f);
    if (effect && !s.skip) {  // a head loud enough that the checks see the SSM (as test::random_model)
        float* w = m.tensor("head.weight");
        for (int i = 0; i < s.d_model; ++i) w[i] *= 200.0f;
    }
    return m;
}

// Every fast path of m (either head) against the float64 reference, on S streams of L samples
// with inputs of their own: the step over all S streams at once; stream 0 through the scan in
// chunks of 333 (L = 2777 leaves a partial chunk) on 1 and 2 threads; and stream 0 in the
// plugin's blocks of 64 samples through the scan (L = 2777 ends with a partial block).
void check_all_paths(const Model& m, int64_t L, int S, uint64_t seed, const std::string& what) {
    INFO(what << ", L " << L << ", " << S << " streams");
    const bool gen = m.config().kind == IoKind::mulaw8;
    const int I = gen ? 1 : m.config().n_in(), O = gen ? m.config().vocab : 1;  // per sample: in, out
    const size_t LO = static_cast<size_t>(L * O), Sn = static_cast<size_t>(S);
    std::vector<std::vector<int32_t>> tok(Sn);
    std::vector<std::vector<float>> x(Sn), ref(Sn, std::vector<float>(LO));
    for (size_t s = 0; s < Sn; ++s) {
        if (gen) tok[s] = test::random_tokens(L, seed + s);
        else x[s] = test::random_effect_input(L, I, seed + s);
        if (gen) reference_forward_tokens(m.view(), tok[s].data(), L, ref[s].data());
        else reference_forward_continuous(m.view(), x[s].data(), L, ref[s].data());
    }
    auto P = prepare_model(m.view());

    // step: sample t of every stream in one call
    std::vector<std::vector<float>> step(Sn, std::vector<float>(LO));
    auto St = make_state(*P, S);
    std::vector<int32_t> tok_t(Sn);
    std::vector<float> x_t(Sn * size_t(I)), out_t(Sn * size_t(O));
    for (int64_t t = 0; t < L; ++t) {
        for (size_t s = 0; s < Sn; ++s) {
            if (gen) tok_t[s] = tok[s][size_t(t)];
            else std::copy_n(x[s].begin() + t * I, I, x_t.begin() + int64_t(s) * I);
        }
        if (gen) step_tokens(*P, *St, tok_t.data(), out_t.data());
        else step_continuous(*P, *St, x_t.data(), out_t.data());
        for (size_t s = 0; s < Sn; ++s)
            std::copy_n(out_t.begin() + int64_t(s) * O, O, step[s].begin() + t * O);
    }
    for (size_t s = 0; s < Sn; ++s) {
        INFO("step, stream " << s << ": rel error " << test::rel_error(step[s], ref[s]));
        CHECK(test::rel_error(step[s], ref[s]) <= 1e-4);
    }

    // stream 0 from t0 for n samples through the scan, into out (from t0)
    auto scan = [&](StepState& st, int64_t t0, int64_t n, std::vector<float>& out, ThreadPool* pool) {
        if (gen) scan_tokens(*P, st, 0, tok[0].data() + t0, n, out.data() + t0 * O, pool);
        else scan_continuous(*P, st, 0, x[0].data() + t0 * I, n, out.data() + t0 * O, pool);
    };
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        auto Sc = make_state(*P, 1, 333);
        std::vector<float> out(LO);
        scan(*Sc, 0, L, out, &pool);
        INFO("scan, " << threads << " threads: rel error " << test::rel_error(out, ref[0]));
        CHECK(test::rel_error(out, ref[0]) <= 1e-4);
        // scan and step run the same float arithmetic per row: far tighter than 1e-4
        CHECK(test::rel_error(out, step[0]) <= 1e-5);
    }
    auto Sb = make_state(*P, 1, 64);
    std::vector<float> blocks(LO);
    for (int64_t t0 = 0; t0 < L; t0 += 64) scan(*Sb, t0, std::min<int64_t>(64, L - t0), blocks, nullptr);
    INFO("blocks of 64: rel error " << test::rel_error(blocks, ref[0]));
    CHECK(test::rel_error(blocks, ref[0]) <= 1e-4);
    CHECK(test::rel_error(blocks, step[0]) <= 1e-5);
}

std::vector<int> all_layers(int n_layers) {
    std::vector<int> l(static_cast<size_t>(n_layers));
    for (int i = 0; i < n_layers; ++i) l[size_t(i)] = i;
    return l;
}

} // namespace

TEST_CASE("harmonic decays: the form is recognised only where it holds", "[kernels]") {
    Model m = test::random_model(IoKind::continuous, 16, 2, 16, 5);
    const int E = m.config().d_inner, N = m.config().d_state;
    float* A_log = m.tensor("backbone.layers.1.mixer.A_log");
    CHECK_FALSE(decays_harmonic(A_log, E, N));  // jittered: free decays
    const double exps_free = work_per_sample(m.view()).exps;
    make_harmonic(m);
    CHECK(decays_harmonic(A_log, E, N));
    // every channel keeps a rate of its own
    CHECK(A_log[0] != A_log[N]);
    // one exponential per channel instead of N, in both layers: (N-1)·E fewer per layer
    CHECK(work_per_sample(m.view()).exps == Approx(exps_free - 2.0 * (N - 1) * E));
    // one element off by 1e-4 (far more than rounding) and the row is free again
    A_log[3 * N + 7] += 1e-4f;
    CHECK_FALSE(decays_harmonic(A_log, E, N));
    // the gradient restricted to the form: each row its mean
    std::vector<float> g = {1, 2, 3, 4, -1, -1, -1, 7};
    harmonic_decay_gradient(g.data(), 2, 4);
    CHECK(g == std::vector<float>{2.5f, 2.5f, 2.5f, 2.5f, 1, 1, 1, 1});
}

TEST_CASE("harmonic decays: step and scan (one exponential per channel) match the reference", "[kernels]") {
    test::for_each_isa([&](auto isa) {
        uint64_t seed = 300;
        for (const Shape& s : kShapes) {
            Model m = test::random_model(IoKind::continuous, s.d_model, s.n_layers, s.d_state, ++seed,
                                         s.n_cond, s.skip, s.d_conv);
            make_harmonic(m);
            for (int64_t L : {int64_t(7), int64_t(2777)}) {
                auto x = test::random_effect_input(L, m.config().n_in(), seed * 17 + uint64_t(L));
                check_agreement(run_effect(m, x, L, 333), std::string(s.name) + " harmonic, isa " +
                                                             to_string(isa) + " L " + std::to_string(L));
            }
        }
    });
    // slow states over a long input: the products' rounding must not build up
    Model m = test::random_model(IoKind::continuous, 16, 4, 16, 78, 0, true);
    make_harmonic(m);
    const int64_t L = 60000;
    auto x = test::random_effect_input(L, 1, 4);
    std::vector<float> ref(static_cast<size_t>(L)), scan(static_cast<size_t>(L)), step(static_cast<size_t>(L));
    reference_forward_continuous(m.view(), x.data(), L, ref.data());
    auto P = prepare_model(m.view());
    auto S = make_state(*P, 1);
    ThreadPool pool(2);
    scan_continuous(*P, *S, 0, x.data(), L, scan.data(), &pool);
    auto S1 = make_state(*P, 1);
    for (int64_t t = 0; t < L; ++t) step_continuous(*P, *S1, x.data() + t, step.data() + t);
    INFO("rel error: scan " << test::rel_error(scan, ref) << ", step " << test::rel_error(step, ref));
    CHECK(test::rel_error(scan, ref) <= 1e-4);
    CHECK(test::rel_error(step, ref) <= 1e-4);
}

TEST_CASE("the benchmark's floors: FMA slots, exps, the step's bytes beyond L1 at L2's rate and past L2 at a measured one", "[kernels]") {
    WorkPerSample w;
    w.macs = 1000;
    w.muls = 500;
    w.exps = 200;
    w.weight_bytes = 60000;
    w.state_bytes = 4000;
    PeakRates peaks;
    peaks.flops_per_s = 2e9;  // 1e9 FMA slots a second: 1 ns a slot
    peaks.exps_per_s = 1e8;   // 10 ns an exp
    peaks.l1_bytes_per_s = 64e9;
    peaks.l2_read_bytes_per_s = 16e9;
    peaks.l1_bytes = 32000;
    Floors f = floors(w, peaks);
    CHECK(f.compute_ns == Approx(1500 + 2000));
    // 64000 bytes: 1000 ns at L1's rate, but 32000 of them cannot be in L1: 2000 ns from L2
    CHECK(f.step_bytes_ns == Approx(2000));
    CHECK(f.step_ns() == Approx(3500));
    // everything inside L1: the bytes at L1's rate only
    peaks.l1_bytes = 1 << 20;
    f = floors(w, peaks);
    CHECK(f.step_bytes_ns == Approx(1000));
    // bytes that dominate: the step's floor is theirs
    w.weight_bytes = 1e6;
    peaks.l1_bytes = 32000;
    f = floors(w, peaks);
    CHECK(f.step_ns() == Approx(1e9 * (1e6 + 4000 - 32000) / 16e9));
    CHECK(f.step_bytes_ideal_ns == Approx(f.step_bytes_ns));
    // past L2 (512 KB here), the bytes beyond L1 at the rate measured for a read of that size,
    // where it is given and slower; the ideal cache's bound is kept beside it
    peaks.l2_bytes = 512000;
    CHECK(floors(w, peaks).step_bytes_ns == Approx(1e9 * (1e6 + 4000 - 32000) / 16e9));  // no rate given
    f = floors(w, peaks, 8e9);
    CHECK(f.step_bytes_ns == Approx(1e9 * (1e6 + 4000 - 32000) / 8e9));
    CHECK(f.step_bytes_ideal_ns == Approx(1e9 * (1e6 + 4000 - 32000) / 16e9));
    CHECK(floors(w, peaks, 32e9).step_bytes_ns == Approx(f.step_bytes_ideal_ns));  // faster than L2: no change
    w.weight_bytes = 400000;  // inside L2: the rate does not apply
    CHECK(floors(w, peaks, 8e9).step_bytes_ns == Approx(1e9 * (400000 + 4000 - 32000) / 16e9));
    // on this CPU: the cache sizes were found and the read probes ran
    const PeakRates here = measure_peaks(0.01);
    CHECK(here.l1_bytes >= 16384);
    CHECK(here.l2_bytes > here.l1_bytes);
    CHECK(here.l2_read_bytes_per_s > 0);
    CHECK(measure_read_rate(2 * here.l2_bytes, 0.01) > 0);
}

TEST_CASE("fixed Δ: recognised only where it holds, its work counted", "[kernels]") {
    Model m = test::random_model(IoKind::continuous, 16, 2, 16, 6);
    const kernels::Dims& d = m.view().dims;
    const int E = d.d_inner, N = d.d_state, R = d.dt_rank;
    CHECK_FALSE(dt_fixed(m.view().layers[1], d));
    const double exps_free = work_per_sample(m.view()).exps;
    m.zero_dt_inputs(m.data());
    CHECK(dt_fixed(m.view().layers[0], d));
    CHECK(dt_fixed(m.view().layers[1], d));
    // no exp(Δ·A) and no softplus in either layer
    CHECK(work_per_sample(m.view()).exps == Approx(exps_free - 2.0 * (E * N + E)));
    // one weight of r's rows back (x_proj row 0) and dt_proj.weight still zero: fixed all the same
    float* xr = m.tensor("backbone.layers.1.mixer.x_proj.weight");
    xr[5] = 0.25f;
    CHECK(dt_fixed(m.view().layers[1], d));
    // ... and with dt_proj.weight back too, Δ depends on the input again
    m.tensor("backbone.layers.1.mixer.dt_proj.weight")[E * R - 1] = 0.5f;
    CHECK_FALSE(dt_fixed(m.view().layers[1], d));
}

TEST_CASE("fixed Δ: step and scan (decays from a table) match the reference", "[kernels]") {
    test::for_each_isa([&](auto isa) {
        uint64_t seed = 500;
        for (const Shape& s : kShapes) {
            Model m = test::random_model(IoKind::continuous, s.d_model, s.n_layers, s.d_state, ++seed,
                                         s.n_cond, s.skip, s.d_conv);
            m.zero_dt_inputs(m.data());
            for (int64_t L : {int64_t(7), int64_t(2777)}) {
                auto x = test::random_effect_input(L, m.config().n_in(), seed * 19 + uint64_t(L));
                check_agreement(run_effect(m, x, L, 333), std::string(s.name) + " fixed dt, isa " +
                                                             to_string(isa) + " L " + std::to_string(L));
            }
        }
        // one layer fixed, the next free: each takes its own route
        Model m = test::random_model(IoKind::continuous, 16, 2, 16, 77, 1, false);
        float* xr = m.tensor("backbone.layers.0.mixer.x_proj.weight");
        std::fill(xr, xr + m.config().dt_rank * m.config().d_inner, 0.0f);
        REQUIRE(dt_fixed(m.view().layers[0], m.view().dims));
        REQUIRE_FALSE(dt_fixed(m.view().layers[1], m.view().dims));
        auto x = test::random_effect_input(1500, m.config().n_in(), 3);
        check_agreement(run_effect(m, x, 1500, 333), std::string("mixed layers, isa ") + to_string(isa));
    });
}

TEST_CASE("effect: step and chunked scan match the float64 reference", "[kernels]") {
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::baseline}) {
        if (!isa_supported(isa)) {
            WARN("this CPU cannot run the " << to_string(isa) << " build: not tested here");
            continue;
        }
        set_isa_for_testing(isa);
        uint64_t seed = 100;
        for (const Shape& s : kShapes) {
            Model m = test::random_model(IoKind::continuous, s.d_model, s.n_layers, s.d_state, ++seed,
                                         s.n_cond, s.skip, s.d_conv);
            for (int64_t L : {int64_t(1), int64_t(7), int64_t(1000), int64_t(2777)}) {
                for (int chunk : {64, 333, 1024}) {
                    if (L < 1000 && chunk != 64) continue;
                    auto x = test::random_effect_input(L, m.config().n_in(), seed * 31 + uint64_t(L));
                    check_agreement(run_effect(m, x, L, chunk),
                                    std::string(s.name) + " isa " + to_string(isa) + " L " +
                                        std::to_string(L) + " chunk " + std::to_string(chunk));
                }
            }
        }
    }
    reset_isa_for_testing();
}

TEST_CASE("generator: step and scan logits match the reference, tied and untied", "[kernels]") {
    uint64_t seed = 7;
    for (bool tie : {true, false}) {
        Model m = test::random_model(IoKind::mulaw8, 16, 3, 16, ++seed, 0, false, 4, tie);
        const int64_t L = 1500;
        const int V = 256;
        auto tokens = test::random_tokens(L, seed);
        std::vector<float> ref(static_cast<size_t>(L * V)), step(static_cast<size_t>(L * V)), scan(static_cast<size_t>(L * V));
        reference_forward_tokens(m.view(), tokens.data(), L, ref.data());
        auto P = prepare_model(m.view());
        auto S = make_state(*P, 1);
        for (int64_t t = 0; t < L; ++t) step_tokens(*P, *S, tokens.data() + t, step.data() + t * V);
        ThreadPool pool(2);
        auto S2 = make_state(*P, 1, 400);
        scan_tokens(*P, *S2, 0, tokens.data(), L, scan.data(), &pool);
        INFO("tie " << tie << ": step " << test::rel_error(step, ref) << ", scan " << test::rel_error(scan, ref));
        CHECK(test::rel_error(step, ref) <= 1e-4);
        CHECK(test::rel_error(scan, ref) <= 1e-4);
    }
}

TEST_CASE("scan and step take turns on one stream, and reset clears it", "[kernels]") {
    Model m = test::random_model(IoKind::continuous, 16, 2, 16, 42, 1, true);
    const int64_t L = 1900;
    const int I = 2;
    auto x = test::random_effect_input(L, I, 5);
    std::vector<float> ref(static_cast<size_t>(L)), mixed(static_cast<size_t>(L));
    reference_forward_continuous(m.view(), x.data(), L, ref.data());
    auto P = prepare_model(m.view());
    auto S = make_state(*P, 1, 256);
    ThreadPool pool(2);
    // scan 0..700, step 700..701, scan 701..1500, step the rest
    scan_continuous(*P, *S, 0, x.data(), 700, mixed.data(), &pool);
    step_continuous(*P, *S, x.data() + 700 * I, mixed.data() + 700);
    scan_continuous(*P, *S, 0, x.data() + 701 * I, 799, mixed.data() + 701, &pool);
    for (int64_t t = 1500; t < L; ++t) step_continuous(*P, *S, x.data() + t * I, mixed.data() + t);
    CHECK(test::rel_error(mixed, ref) <= 1e-4);

    // after a reset the stream starts from zero state again: same output as a fresh run
    reset_state(*S);
    std::vector<float> again(100);
    scan_continuous(*P, *S, 0, x.data(), 100, again.data(), nullptr);
    CHECK(test::rel_error(again, std::vector<float>(ref.begin(), ref.begin() + 100)) <= 1e-4);
}

TEST_CASE("step and scan give the same floats, bit for bit, on every instruction set this CPU runs", "[kernels]") {
    // What the real-time engine relies on (an effect's output does not depend on the host's
    // block size): per row the scan does the step's arithmetic in the step's order. Covers the
    // fixed shapes (d_model 16 and 32: the AVX-512 register step; 64: the generic step) and a
    // shape of no fixed kind, selective and LTI layers, effects and generators. The SSM's sums
    // are written as FMAs (fast_impl.inc: state_update, add_output_term) because compiler
    // contraction chose differently in the two paths once (the emulation build, 6e-8).
    struct Case { const char* name; IoKind kind; int d_model, n_layers; std::vector<int> lti; };
    const std::vector<Case> cases = {
        {"effect D16x2", IoKind::continuous, 16, 2, {}}, {"effect D16x2 LTI 1", IoKind::continuous, 16, 2, {1}},
        {"effect D32x2", IoKind::continuous, 32, 2, {}}, {"effect D64x1", IoKind::continuous, 64, 1, {}},
        {"effect D24x2 (no fixed shape)", IoKind::continuous, 24, 2, {0}},
        {"generator D16x2", IoKind::mulaw8, 16, 2, {}}, {"generator D32x1", IoKind::mulaw8, 32, 1, {}},
    };
    const int64_t L = 333;
    test::for_each_isa([&](auto isa) {
        uint64_t seed = 700;
        for (const Case& c : cases) {
            const Shape s{c.name, c.d_model, c.n_layers, 16, 4, c.kind == IoKind::continuous ? 1 : 0, true};
            const Model m = lti_model(c.kind, s, c.lti, ++seed);
            const bool gen = c.kind == IoKind::mulaw8;
            const int I = gen ? 1 : m.config().n_in(), V = m.config().vocab, O = gen ? V : 1;
            auto P = prepare_model(m.view());
            auto S1 = make_state(*P, 1), S2 = make_state(*P, 1, 64);
            std::vector<float> step(size_t(L) * O), scan(size_t(L) * O);
            std::vector<int32_t> tok(static_cast<size_t>(L));
            for (int64_t t = 0; t < L; ++t) tok[size_t(t)] = int32_t((t * 37 + 11) % V);
            const auto x = test::random_effect_input(L, I, seed);
            for (int64_t t = 0; t < L; ++t) {
                if (gen) step_tokens(*P, *S1, tok.data() + t, step.data() + t * O);
                else step_continuous(*P, *S1, x.data() + t * I, step.data() + t);
            }
            if (gen) scan_tokens(*P, *S2, 0, tok.data(), L, scan.data(), nullptr);
            else scan_continuous(*P, *S2, 0, x.data(), L, scan.data(), nullptr);
            INFO(c.name << ", isa " << to_string(isa));
            CHECK(test::max_abs_diff(step, scan) == 0.0);
            const float* a = stream_state(*S1, 0);
            const std::vector<float> s1(a, a + stream_state_floats(*S1));
            const float* b = stream_state(*S2, 0);
            const std::vector<float> s2(b, b + stream_state_floats(*S2));
            CHECK(test::max_abs_diff(s1, s2) == 0.0);
        }
    });
}

TEST_CASE("step over S streams equals S separate single-stream runs", "[kernels]") {
    Model m = test::random_model(IoKind::continuous, 16, 2, 16, 9, 1, false);
    const int S = 5, I = 2;
    const int64_t L = 300;
    auto P = prepare_model(m.view());
    auto multi = make_state(*P, S);
    std::vector<std::vector<float>> x(S), want(S), got(S, std::vector<float>(static_cast<size_t>(L)));
    for (int s = 0; s < S; ++s) {
        x[size_t(s)] = test::random_effect_input(L, I, 1000 + uint64_t(s));
        want[size_t(s)].resize(static_cast<size_t>(L));
        reference_forward_continuous(m.view(), x[size_t(s)].data(), L, want[size_t(s)].data());
    }
    std::vector<float> in(static_cast<size_t>(S * I)), out(static_cast<size_t>(S));
    for (int64_t t = 0; t < L; ++t) {
        for (int s = 0; s < S; ++s)
            for (int i = 0; i < I; ++i) in[size_t(s * I + i)] = x[size_t(s)][size_t(t * I + i)];
        step_continuous(*P, *multi, in.data(), out.data());
        for (int s = 0; s < S; ++s) got[size_t(s)][size_t(t)] = out[size_t(s)];
    }
    for (int s = 0; s < S; ++s) CHECK(test::rel_error(got[size_t(s)], want[size_t(s)]) <= 1e-4);

    // resetting one stream leaves the others alone
    std::vector<float> before(stream_state(*multi, 1), stream_state(*multi, 1) + stream_state_floats(*multi));
    reset_stream(*multi, 3);
    std::vector<float> after(stream_state(*multi, 1), stream_state(*multi, 1) + stream_state_floats(*multi));
    CHECK(before == after);
    const float* s3 = stream_state(*multi, 3);
    CHECK(std::all_of(s3, s3 + stream_state_floats(*multi), [](float v) { return v == 0.0f; }));
}

TEST_CASE("streams stepped together give each stream the floats of its own step, bit for bit", "[kernels]") {
    // The AVX-512 register step takes an effect's streams two at a time (shared weight loads,
    // fast_impl.inc's step_layer_regs<2>) and an odd last one alone: every stream must come out
    // as the one-stream step gives it. Three streams: a pair and a single; selective, LTI and
    // fixed-Δ layers, d_model 16 and 32 (the register step's shapes) and 24 (no fixed shape).
    struct Case { const char* name; int d_model; std::vector<int> lti; bool fixed; };
    const std::vector<Case> cases = {{"D16x2", 16, {}, false}, {"D16x2 LTI 0", 16, {0}, false},
                                     {"D32x2", 32, {}, false}, {"D32x2 LTI 1", 32, {1}, false},
                                     {"D16x2 fixed Δ", 16, {}, true}, {"D24x2", 24, {}, false}};
    const int S = 3;
    const int64_t L = 200;
    test::for_each_isa([&](auto isa) {
        uint64_t seed = 900;
        for (const Case& c : cases) {
            const Shape sh{c.name, c.d_model, 2, 16, 4, 1, true};
            Model m = lti_model(IoKind::continuous, sh, c.lti, ++seed);
            if (c.fixed) m.zero_dt_inputs(m.data());
            const int I = m.config().n_in();
            auto P = prepare_model(m.view());
            auto together = make_state(*P, S);
            std::vector<StepStatePtr> alone;
            for (int s = 0; s < S; ++s) alone.push_back(make_state(*P, 1));
            std::vector<std::vector<float>> x(S);
            for (int s = 0; s < S; ++s) x[size_t(s)] = test::random_effect_input(L, I, seed * 7 + uint64_t(s));
            std::vector<float> in(size_t(S) * I), out(S), got, want;
            for (int64_t t = 0; t < L; ++t) {
                for (int s = 0; s < S; ++s)
                    std::copy_n(x[size_t(s)].data() + t * I, I, in.data() + size_t(s) * I);
                step_continuous(*P, *together, in.data(), out.data());
                for (int s = 0; s < S; ++s) {
                    float y1 = 0;
                    step_continuous(*P, *alone[size_t(s)], x[size_t(s)].data() + t * I, &y1);
                    got.push_back(out[size_t(s)]);
                    want.push_back(y1);
                }
            }
            INFO(c.name << ", isa " << to_string(isa));
            CHECK(test::max_abs_diff(got, want) == 0.0);
            for (int s = 0; s < S; ++s) {
                const float* a = stream_state(*together, s);
                const float* b = stream_state(*alone[size_t(s)], 0);
                CHECK(std::equal(a, a + stream_state_floats(*together), b));
            }
        }
    });
}

TEST_CASE("long input: the threaded scan holds its accuracy over 60k samples", "[kernels]") {
    Model m = test::random_model(IoKind::continuous, 16, 4, 16, 77, 0, true);
    const int64_t L = 60000;
    auto x = test::random_effect_input(L, 1, 3);
    std::vector<float> ref(static_cast<size_t>(L)), scan(static_cast<size_t>(L));
    reference_forward_continuous(m.view(), x.data(), L, ref.data());
    auto P = prepare_model(m.view());
    auto S = make_state(*P, 1);
    ThreadPool pool(2);
    scan_continuous(*P, *S, 0, x.data(), L, scan.data(), &pool);
    INFO("rel error " << test::rel_error(scan, ref));
    CHECK(test::rel_error(scan, ref) <= 1e-4);
}

TEST_CASE("LTI layers: Δ fixed, and no exponential in the SSM nor x_proj product counted", "[kernels][lti]") {
    const Shape s{"D16xL2 N16", 16, 2, 16, 4, 0, true};
    const Model sel = test::random_model(IoKind::continuous, 16, 2, 16, 8, 0, true);
    const Model lti = lti_model(IoKind::continuous, s, {0, 1}, 8);
    const kernels::Dims& d = lti.view().dims;
    const int E = d.d_inner, N = d.d_state;
    REQUIRE(is_lti(lti.view().layers[0]));
    CHECK(dt_fixed(lti.view().layers[0], d));  // no x_proj to look at: fixed by construction
    Model fixed = test::random_model(IoKind::continuous, 16, 2, 16, 8, 0, true);
    fixed.zero_dt_inputs(fixed.data());
    const WorkPerSample w_lti = work_per_sample(lti.view()), w_fixed = work_per_sample(fixed.view());
    // SiLU of the conv and of the gate only, as a fixed Δ
    CHECK(w_lti.exps == Approx(2.0 * 2 * E));
    CHECK(w_fixed.exps == Approx(w_lti.exps));
    // a fixed Δ still computes B and C per sample (2N of x_proj's rows): an LTI layer does not;
    // nor Δ·u (its Δ is folded into B); both multiply Δu·B[n] per state and the gate
    CHECK(w_lti.macs == Approx(w_fixed.macs - 2.0 * E * 2 * N));
    CHECK(w_lti.muls == Approx(w_fixed.muls - 2.0 * E));
    CHECK(w_lti.muls >= 2.0 * (E * N + E));
    CHECK(w_lti.flops == Approx(2 * w_lti.macs + w_lti.muls));
    CHECK(fma_slots(w_lti) < fma_slots(work_per_sample(sel.view())));
}

TEST_CASE("LTI layers: step over streams, chunked scan and blocks of 64 match the reference", "[kernels][lti]") {
    test::for_each_isa([&](auto isa) {
        uint64_t seed = 700;
        for (const Shape& s : kShapes) {  // every layer LTI
            const Model m = lti_model(IoKind::continuous, s, all_layers(s.n_layers), ++seed);
            const std::string what = std::string(s.name) + " all LTI, isa " + to_string(isa);
            check_all_paths(m, 7, 1, seed * 23, what);
            check_all_paths(m, 2777, 2, seed * 29, what);
        }
        // LTI and selective layers mixed: each takes its own route
        const Shape two{"D16xL2 N16", 16, 2, 16, 4, 1, false}, four{"D24xL4 N8 R2", 24, 4, 8, 4, 0, true};
        check_all_paths(lti_model(IoKind::continuous, two, {0}, 81), 2777, 3, 5,
                        std::string("effect, layer 0 of 2 LTI, isa ") + to_string(isa));
        check_all_paths(lti_model(IoKind::continuous, four, {1, 2}, 82), 1500, 2, 6,
                        std::string("effect, layers 1, 2 of 4 LTI, isa ") + to_string(isa));
        // the generator's head
        const Shape gen{"D16xL3 N16", 16, 3, 16, 4, 0, false};
        check_all_paths(lti_model(IoKind::mulaw8, gen, all_layers(3), 83), 700, 2, 7,
                        std::string("generator, all LTI, isa ") + to_string(isa));
        check_all_paths(lti_model(IoKind::mulaw8, gen, {1}, 84), 700, 1, 8,
                        std::string("generator, layer 1 of 3 LTI, isa ") + to_string(isa));
    });
}

TEST_CASE("a task that throws in the thread pool comes back to the caller, and the pool goes on", "[kernels]") {
    ThreadPool pool(2);
    std::atomic<int> ran{0};
    for (int bad : {0, 1, 3}) {  // on the caller's thread, on the worker's, and the last task
        ran = 0;
        CHECK_THROWS_WITH(pool.run(4, [&](int i) {
                              ++ran;
                              if (i == bad) throw std::invalid_argument("task " + std::to_string(i) + " failed");
                          }),
                          "task " + std::to_string(bad) + " failed");
        CHECK(ran == 4);  // every task still ran
    }
    ran = 0;
    pool.run(4, [&](int) { ++ran; });
    CHECK(ran == 4);
}

TEST_CASE("a model stored as F16: the step reads half-precision weights and gives the same floats", "[kernels][f16]") {
    // What a model stored as F16 (the digits_large preset) gets: prepare_model keeps halves of
    // in_proj and lm_head (above d_model 32, their norm weights then unfolded on every path),
    // x_proj's B and C rows and out_proj for the step. Widened they are the floats, so the step
    // must give the float step's floats and the scan's, bit for bit, on every build, and stay
    // within 1e-4 of the reference; a wrong widening, a norm weight applied twice or not at all,
    // or a copy made of a matrix that is not exact, shows as a difference.
    struct Case { const char* name; IoKind kind; int d_model, n_layers; std::vector<int> lti; };
    const std::vector<Case> cases = {
        {"generator D64x2 (wide in_proj and head)", IoKind::mulaw8, 64, 2, {}},
        {"effect D64x2, layer 1 LTI", IoKind::continuous, 64, 2, {1}},
        {"effect D24x2 (no fixed shape)", IoKind::continuous, 24, 2, {}},
        {"generator D16x2 (the register step: floats)", IoKind::mulaw8, 16, 2, {}},
    };
    const int64_t L = 300;
    test::for_each_isa([&](auto isa) {
        uint64_t seed = 900;
        for (const Case& c : cases) {
            const Shape s{c.name, c.d_model, c.n_layers, 16, 4, c.kind == IoKind::continuous ? 1 : 0, true};
            Model m = lti_model(c.kind, s, c.lti, ++seed);
            float* w = m.data();
            for (int64_t i = 0; i < m.parameter_count(); ++i) w[i] = round_to_half(w[i]);
            const bool gen = c.kind == IoKind::mulaw8;
            const int I = gen ? 1 : m.config().n_in(), O = gen ? m.config().vocab : 1;
            const int D = c.d_model, E = m.config().d_inner, N = 16, V = gen ? O : 0;
            INFO(c.name << ", isa " << to_string(isa));
            auto half = prepare_model(m.view());
            auto full = prepare_model(m.view(), PrepareOptions{.half_weights = false});
            // every large product in halves (an LTI layer has no B, C product), none when off;
            // in_proj and lm_head only above d_model 32 (their norm weights unfolded there)
            const bool unfolded = D > 32;
            const int64_t expected = c.n_layers * int64_t((unfolded ? 3 : 1) * D * E) +
                                     (c.n_layers - int64_t(c.lti.size())) * 2 * N * E + (unfolded ? int64_t(D) * V : 0);
            CHECK(half_weight_count(*half) == (isa == Isa::baseline ? 0 : expected));
            CHECK(half_weight_count(*full) == 0);
            // a model not stored as F16 gets none: one weight of layer 0's out_proj off the grid
            Model off = m;
            off.tensor("backbone.layers.0.mixer.out_proj.weight")[5] *= 1.0f + 1e-6f;
            CHECK(half_weight_count(*prepare_model(off.view())) == (isa == Isa::baseline ? 0 : expected - D * E));

            std::vector<int32_t> tok(static_cast<size_t>(L));
            for (int64_t t = 0; t < L; ++t) tok[size_t(t)] = int32_t((t * 53 + 7) % std::max(V, 1));
            const auto x = test::random_effect_input(L, I, seed);
            auto run_step = [&](const PreparedModel& P, std::vector<float>& out) {
                auto St = make_state(P, 2);  // two streams: the second reads what the first left in cache
                std::vector<float> o(2 * size_t(O));
                std::vector<float> in(2 * size_t(I));
                std::vector<int32_t> tk(2);
                for (int64_t t = 0; t < L; ++t) {
                    tk[0] = tok[size_t(t)];
                    tk[1] = tok[size_t(L - 1 - t)];
                    for (int i = 0; i < I; ++i) {
                        in[size_t(i)] = x[size_t(t * I + i)];
                        in[size_t(I + i)] = x[size_t((L - 1 - t) * I + i)];
                    }
                    if (gen) step_tokens(P, *St, tk.data(), o.data());
                    else step_continuous(P, *St, in.data(), o.data());
                    out.insert(out.end(), o.begin(), o.end());
                }
                const float* a = stream_state(*St, 0);
                return std::vector<float>(a, a + 2 * stream_state_floats(*St));
            };
            std::vector<float> step_h, step_f, scan(size_t(L) * O);
            const auto state_h = run_step(*half, step_h), state_f = run_step(*full, step_f);
            CHECK(test::max_abs_diff(step_h, step_f) == 0.0);
            CHECK(test::max_abs_diff(state_h, state_f) == 0.0);
            auto Sc = make_state(*half, 1, 64);
            if (gen) scan_tokens(*half, *Sc, 0, tok.data(), L, scan.data(), nullptr);
            else scan_continuous(*half, *Sc, 0, x.data(), L, scan.data(), nullptr);
            std::vector<float> step0;  // stream 0 of the half step
            for (int64_t t = 0; t < L; ++t)
                step0.insert(step0.end(), step_h.begin() + t * 2 * O, step_h.begin() + t * 2 * O + O);
            CHECK(test::max_abs_diff(step0, scan) == 0.0);
            // and the reference, as for every model
            std::vector<float> ref(size_t(L) * O);
            if (gen) reference_forward_tokens(m.view(), tok.data(), L, ref.data());
            else reference_forward_continuous(m.view(), x.data(), L, ref.data());
            CHECK(test::rel_error(step0, ref) <= 1e-4);
        }
    });
}

TEST_CASE("half precision: rounding to the nearest half and the exactness test agree", "[kernels][f16]") {
    uint16_t bits = 0;
    // ties to even, at 1 and in the subnormal halves
    CHECK(round_to_half(1.0f + 0x1p-11f) == 1.0f);
    CHECK(round_to_half(1.0f + 3 * 0x1p-11f) == 1.0f + 0x1p-9f);
    CHECK(round_to_half(3 * 0x1p-25f) == 0x1p-23f);
    CHECK(round_to_half(0x1p-25f) == 0.0f);
    CHECK(round_to_half(-1e-9f) == 0.0f);
    CHECK(round_to_half(65504.0f) == 65504.0f);
    // the bits of a few known halves
    REQUIRE(half_bits(1.0f, bits));
    CHECK(bits == 0x3C00);
    REQUIRE(half_bits(-2.0f, bits));
    CHECK(bits == 0xC000);
    REQUIRE(half_bits(0x1p-24f, bits));  // the smallest subnormal half
    CHECK(bits == 0x0001);
    REQUIRE(half_bits(0x1p-14f - 0x1p-24f, bits));  // the largest subnormal half
    CHECK(bits == 0x03FF);
    REQUIRE(half_bits(65504.0f, bits));
    CHECK(bits == 0x7BFF);
    CHECK_FALSE(half_bits(1.0f + 0x1p-11f, bits));
    CHECK_FALSE(half_bits(0x1p-25f, bits));
    CHECK_FALSE(half_bits(65536.0f, bits));
    // random values over the weights' range: each rounds to a half within half a unit in its last place
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int i = 0; i < 100000; ++i) {
        const float v = normal(rng) * std::ldexp(1.0f, int(rng() % 30) - 25);
        const float h = round_to_half(v);
        INFO(v << " -> " << h);
        REQUIRE(half_bits(h, bits));
        const float ulp = std::fabs(v) < 0x1p-14f ? 0x1p-24f : std::ldexp(1.0f, std::ilogb(v) - 10);
        REQUIRE(std::fabs(h - v) <= 0.5f * ulp);
        REQUIRE(round_to_half(h) == h);
    }
}

TEST_CASE("large steps beside slow states: step, scan and blocks match the reference", "[kernels]") {
    // Δ past the point where a channel's fastest decay vanishes (exp(Δ·A) < 2^-125), while its
    // slow states still carry most of their value: the kernels must not treat the channel as dead
    // (they clamped Δ at 125 / max_n |A2| once, which froze the slow states' decay too: errors of
    // 1e-2 in a trained d_model 96 model). Free and harmonic decays, effect and generator, every
    // build this CPU runs.
    test::for_each_isa([&](auto isa) {
        for (bool harmonic : {false, true}) {
            Model fx = test::random_model(IoKind::continuous, 16, 2, 16, 41, 1, true);
            test::make_steps_large(fx, 42, harmonic);
            Model gen = test::random_model(IoKind::mulaw8, 64, 1, 16, 43);
            test::make_steps_large(gen, 44, harmonic);
            if (harmonic) {
                REQUIRE(decays_harmonic(fx.view()));
                REQUIRE(decays_harmonic(gen.view()));
            }
            const std::string what = std::string(harmonic ? "harmonic" : "free") + " decays, isa " + to_string(isa);
            check_all_paths(fx, 777, 2, 45, "effect D16x2, " + what);
            check_all_paths(gen, 300, 1, 46, "generator D64x1, " + what);
        }
        // a channel whose decay rate overflows a float (A_log 89): its states vanish at every
        // step, as in the reference; no path may clamp its Δ to nothing and keep the state
        Model fx = test::random_model(IoKind::continuous, 16, 2, 16, 47, 1, true);
        test::make_steps_large(fx, 48, false, true);
        Model gen = test::random_model(IoKind::mulaw8, 64, 1, 16, 49);
        test::make_steps_large(gen, 50, false, true);
        check_all_paths(fx, 777, 2, 51, std::string("effect D16x2, a channel's rate overflowing, isa ") + to_string(isa));
        check_all_paths(gen, 300, 1, 52, std::string("generator D64x1, a channel's rate overflowing, isa ") + to_string(isa));
        // ... and beside small steps, where the kernels skip the decays' clamp for a block whose
        // steps are all under the point where its fastest decay vanishes: never for this channel
        Model small = test::random_model(IoKind::continuous, 16, 2, 16, 53, 1, true);
        for (int l = 0; l < 2; ++l) test::overflow_channel(small, l);
        check_all_paths(small, 777, 2, 54, std::string("effect D16x2, small steps, a channel's rate overflowing, isa ") +
                                               to_string(isa));
    });
}

// MW_HOST_TRACE's bookkeeping (kernels/host_trace.h, fed by kernels/cuda's wait_for): each wait
// ends a segment of the host's own work that began at the previous wait's end or at the step's
// mark; nothing is counted outside a step. Times in ns, made up.
TEST_CASE("HostTrace: each wait's own work runs from the last wait's end or the step's mark", "[kernels]") {
    const int64_t ms = 1000000;  // (times in ns)
    HostTrace t;
    t.wait("a.cu:1", 100 * ms, 200 * ms);  // before any step: not counted
    CHECK(t.sites().empty());
    CHECK(t.report().empty());

    t.mark(1000 * ms);                          // step 1
    t.wait("a.cu:1", 1300 * ms, 1700 * ms);    // own work 300, wait 400
    t.wait("b.cu:9", 1750 * ms, 1800 * ms);    // own work 50 (from 1700), wait 50
    t.wait("a.cu:1", 2800 * ms, 2900 * ms);    // own work 1000, wait 100
    t.pause();
    t.wait("b.cu:9", 5000 * ms, 9000 * ms);    // after the step (validation, say): not counted
    t.mark(10000 * ms);                         // step 2: the time since the pause is not counted either
    t.wait("b.cu:9", 10200 * ms, 10300 * ms);  // own work 200, wait 100
    t.pause();

    const std::vector<HostTrace::Site> s = t.sites();
    REQUIRE(s.size() == 2);
    CHECK(s[0].where == "a.cu:1");  // 1800 ms in all, before b's 400
    CHECK(s[0].waits == 2);
    CHECK(s[0].work_ns == 1300 * ms);
    CHECK(s[0].wait_ns == 500 * ms);
    CHECK(s[1].where == "b.cu:9");
    CHECK(s[1].waits == 2);
    CHECK(s[1].work_ns == 250 * ms);
    CHECK(s[1].wait_ns == 150 * ms);
    CHECK(t.marks() == 2);

    // Per step (two marks), in ms, most time first, then the totals.
    const std::string r = t.report();
    INFO(r);
    CHECK(r.find("over 2 steps") != std::string::npos);
    const size_t at_a = r.find("   650.000    250.000      1.0  a.cu:1\n");
    const size_t at_b = r.find("   125.000     75.000      1.0  b.cu:9\n");
    const size_t at_total = r.find("   775.000    325.000           total\n");
    CHECK(at_a != std::string::npos);
    CHECK(at_b != std::string::npos);
    CHECK(at_total != std::string::npos);
    CHECK((at_a < at_b && at_b < at_total));
}

// The GPU's weight upload (kernels/cuda/device_util.cuh, WeightPack) packs through TensorPack:
// into an array of its own the first time, then straight into the staging array it kept. Both
// must give the same floats, gaps and padding zero, whatever the staging held before.
TEST_CASE("TensorPack: a pack into kept memory equals a pack of its own, gaps and padding zero", "[kernels]") {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const std::vector<int64_t> sizes{5, 32, 1, 70, 3};
    std::vector<std::vector<float>> tensors;
    for (int64_t n : sizes) {
        tensors.emplace_back(size_t(n));
        for (float& x : tensors.back()) x = u(rng);
    }
    // Packs every tensor (the fourth made on the fly, doubled) into p; returns the offsets.
    auto fill = [&](TensorPack& p) {
        std::vector<int64_t> off;
        for (size_t i = 0; i < sizes.size(); ++i)
            off.push_back(i == 3 ? p.add_fn(sizes[i], [&](int64_t k) { return 2.0f * tensors[i][size_t(k)]; })
                                 : p.add(tensors[i].data(), sizes[i]));
        return off;
    };
    TensorPack own(32);
    const std::vector<int64_t> off = fill(own);
    CHECK_FALSE(own.direct());
    REQUIRE(own.floats() == 224);  // 0, 32, 64, 96 (70 floats), 192 (3), padded to 224
    CHECK(off == std::vector<int64_t>{0, 32, 64, 96, 192});
    const float* a = own.finish();
    std::vector<float> want(size_t(own.floats()), 0.0f);
    for (size_t i = 0; i < sizes.size(); ++i)
        for (int64_t k = 0; k < sizes[i]; ++k)
            want[size_t(off[i] + k)] = (i == 3 ? 2.0f : 1.0f) * tensors[i][size_t(k)];
    CHECK(std::equal(want.begin(), want.end(), a));

    SECTION("into kept memory that held something else: the same floats, in place") {
        std::vector<float> kept(size_t(own.floats()), std::nanf(""));
        TensorPack again(32, kept.data(), kept.size());
        CHECK(fill(again) == off);
        CHECK(again.direct());
        CHECK(again.finish() == kept.data());
        CHECK(std::equal(want.begin(), want.end(), kept.begin()));
    }
    SECTION("kept memory too small: the pack moves to an array of its own, the same floats") {
        std::vector<float> kept(100, std::nanf(""));  // holds the first three tensors, not the fourth
        TensorPack larger(32, kept.data(), kept.size());
        CHECK(fill(larger) == off);
        CHECK_FALSE(larger.direct());
        const float* b = larger.finish();
        CHECK(b != kept.data());
        CHECK(std::equal(want.begin(), want.end(), b));
    }
    SECTION("kept memory that fits the tensors but not the end's padding: moved as well") {
        std::vector<float> kept(200, std::nanf(""));  // the last tensor ends at 195, its padding at 224
        TensorPack tight(32, kept.data(), kept.size());
        fill(tight);
        CHECK_FALSE(tight.direct());
        CHECK(std::equal(want.begin(), want.end(), tight.finish()));
    }
}
