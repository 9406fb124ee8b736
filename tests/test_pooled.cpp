// Pooled generators (model/pooled.h, docs/POOLED.md): stacks of layers at several rates joined
// by learnt pools. Every path against the float64 reference: the forward over a sequence, the
// step (bit for bit the forward's floats), the training tape with states carried across
// segments, and the tape's gradients against float64 finite differences. Also: causality (no
// output hears a later sample, however the frames fall), the file round trip, and the errors.
#include "kernels/fast.h"
#include "kernels/thread_pool.h"
#include "model/grad.h"
#include "model/model_file.h"
#include "model/pooled.h"
#include "temp_dir.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace mw;

namespace {

struct PoolCase {
    const char* name;
    int d_model, layers_per_stack;
    std::vector<int> pool;
    std::vector<int> lti;
    uint64_t seed;
};

const PoolCase kCases[] = {
    {"D16, pools 2 and 3, one layer a stack", 16, 1, {2, 3}, {}, 1},
    {"D8, pool 4, two layers a stack, the centre LTI", 8, 2, {4}, {2, 3}, 2},
    // frames of 20 floats: the pools' products take their plain loops, not the vector ones
    {"D10, pool 2, widths not a multiple of 8", 10, 1, {2}, {}, 3},
};

Model pooled_model(const PoolCase& k) {
    ModelConfig c = make_config(IoKind::mulaw8, k.d_model, k.layers_per_stack * (2 * int(k.pool.size()) + 1), 16);
    c.pool = k.pool;
    c.lti_layers = k.lti;
    Model m(c);
    m.init_random(k.seed, 0.3f);
    return m;
}

std::vector<double> reference_logits(const Model& m, const std::vector<int32_t>& tok, const double* state_in = nullptr,
                                     double* state_out = nullptr) {
    std::vector<double> lg(tok.size() * 256);
    pooled::reference_forward_tokens_f64(m, tok.data(), int64_t(tok.size()), state_in, lg.data(), state_out);
    return lg;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

} // namespace

TEST_CASE("pooled: the forward, the step and the tape equal the float64 reference", "[pooled]") {
    for (const PoolCase& k : kCases) {
        INFO(k.name);
        const Model m = pooled_model(k);
        const int period = m.config().pool_period();
        const int64_t L = 13 * period + period / 2 + 1;  // ends inside a frame at every level
        const std::vector<int32_t> tok = test::random_tokens(L, k.seed + 5), tok1 = test::random_tokens(L, k.seed + 6);
        const std::vector<float> want = to_float(reference_logits(m, tok));

        kernels::ThreadPool threads(2);
        std::vector<float> scan(static_cast<size_t>(L * 256));
        pooled::forward_tokens(m, tok.data(), L, scan.data(), &threads);
        CHECK(test::rel_error(scan, want) <= 1e-4);

        // the step, two streams: stream 0 gives the forward's floats exactly, stream 1 its own
        pooled::Stepper step(m, 2);
        std::vector<float> got(static_cast<size_t>(L * 256)), got1(static_cast<size_t>(L * 256)), lg(2 * 256);
        for (int round = 0; round < 2; ++round) {  // the second round after reset()
            for (int64_t t = 0; t < L; ++t) {
                const int32_t in[2] = {tok[size_t(t)], tok1[size_t(t)]};
                step.step(in, lg.data());
                std::copy_n(lg.begin(), 256, got.begin() + t * 256);
                std::copy_n(lg.begin() + 256, 256, got1.begin() + t * 256);
            }
            CHECK(got == scan);
            std::vector<float> scan1(static_cast<size_t>(L * 256));
            pooled::forward_tokens(m, tok1.data(), L, scan1.data(), nullptr);
            CHECK(got1 == scan1);
            step.reset();
        }

        // two Steppers over one prepared copy of the weights (the Synth's voices), the model gone:
        // each gives its stream's floats, as a Stepper with weights of its own does
        {
            std::shared_ptr<const pooled::Prepared> shared;
            {
                const Model copy = m;
                shared = pooled::prepare(copy);
            }
            pooled::Stepper a(shared, 1), b(shared, 1);
            std::vector<float> la(256), lb(256);
            for (int64_t t = 0; t < L; ++t) {
                a.step(&tok[size_t(t)], la.data());
                b.step(&tok1[size_t(t)], lb.data());
                CHECK(std::equal(la.begin(), la.end(), scan.begin() + t * 256));
            }
            std::vector<float> scan1(static_cast<size_t>(L * 256));
            pooled::forward_tokens(m, tok1.data(), L, scan1.data(), nullptr);
            CHECK(std::equal(lb.begin(), lb.end(), scan1.end() - 256));
            CHECK_THROWS_WITH(pooled::Stepper(nullptr, 1), Catch::Contains("no prepared weights"));
        }

        // the tape, from the zero state (any length) ...
        test::for_each_isa({kernels::Isa::avx2, kernels::Isa::baseline}, [&](auto isa) {
            Tape tape(16);
            std::vector<float> lt(static_cast<size_t>(L * 256));
            tape.forward_tokens(m, tok.data(), L, nullptr, lt.data(), nullptr);
            CHECK(test::rel_error(lt, want) <= 1e-5);
        });

        // ... and two segments through the carried state equal one forward over both
        const int64_t L1 = 5 * period, L2 = 7 * period;
        const std::vector<int32_t> both = test::random_tokens(L1 + L2, k.seed + 7);
        const std::vector<int32_t> first(both.begin(), both.begin() + L1), second(both.begin() + L1, both.end());
        const int64_t S = m.state_floats_per_stream();
        std::vector<double> st_d(static_cast<size_t>(S)), st2_d(static_cast<size_t>(S));
        const std::vector<float> want_both = to_float(reference_logits(m, both));
        const std::vector<double> ref1 = reference_logits(m, first, nullptr, st_d.data());
        const std::vector<double> ref2 = reference_logits(m, second, st_d.data(), st2_d.data());
        std::vector<float> ref_seg(ref1.begin(), ref1.end());
        ref_seg.insert(ref_seg.end(), ref2.begin(), ref2.end());
        CHECK(test::rel_error(ref_seg, want_both) <= 1e-12);  // the reference's own segments

        Tape tape(16);
        std::vector<float> state(static_cast<size_t>(S)), lt1(static_cast<size_t>(L1 * 256)), lt2(static_cast<size_t>(L2 * 256));
        tape.forward_tokens(m, first.data(), L1, nullptr, lt1.data(), state.data());
        CHECK(test::rel_error(state, to_float(st_d)) <= 1e-5);
        tape.forward_tokens(m, second.data(), L2, state.data(), lt2.data(), state.data());  // in place
        CHECK(test::rel_error(state, to_float(st2_d)) <= 1e-5);
        lt1.insert(lt1.end(), lt2.begin(), lt2.end());
        CHECK(test::rel_error(lt1, want_both) <= 1e-5);
        // a state out needs whole periods; a state in takes any length after it, even one
        // shorter than the deepest frame (the levels below stay idle)
        CHECK_THROWS_WITH(tape.forward_tokens(m, first.data(), L1 - 1, nullptr, lt1.data(), state.data()),
                          Catch::Contains("multiple of the pooling period"));
        for (const int64_t Ls : {int64_t(1), int64_t(period - 1), int64_t(period + 3)}) {
            const std::vector<int32_t> short_tok(second.begin(), second.begin() + Ls);
            const std::vector<float> want_s = to_float(reference_logits(m, short_tok, st_d.data()));
            std::vector<float> ls(size_t(Ls * 256));
            tape.forward_tokens(m, short_tok.data(), Ls, to_float(st_d).data(), ls.data(), nullptr);
            INFO("length " << Ls);
            CHECK(test::rel_error(ls, want_s) <= 1e-5);
            Model g = zeros_like(m);
            std::vector<float> dl(ls.size(), 1e-3f);
            tape.backward(dl.data(), g);  // runs, the idle levels left out
            CHECK(std::isfinite(g.data()[0]));
        }
    }
}

// What `run --device cuda` does with a pooled model (model/engine.cpp), over the CPU's Tape in
// place of the GPU's: whole periods at a time, the state carried, the last segment padded.
TEST_CASE("pooled: forward_in_periods over the tape equals the float64 reference, in one segment and in many",
          "[pooled]") {
    for (const PoolCase& k : kCases) {
        const Model m = pooled_model(k);
        const int period = m.config().pool_period();
        for (const int64_t L : {int64_t(1), int64_t(period - 1), int64_t(3 * period + 2), int64_t(13 * period + period / 2 + 1)}) {
            const std::vector<int32_t> tok = test::random_tokens(L, k.seed + 11 + uint64_t(L));
            const std::vector<float> want = to_float(reference_logits(m, tok));
            for (const int64_t segment : {int64_t(1), int64_t(2 * period), int64_t(1) << 20}) {
                INFO(k.name << ", L " << L << ", segments of " << segment);
                // segments of `segment` samples rounded up to whole periods, none longer than L needs
                const int64_t seg = (std::min(L, segment) + period - 1) / period * period;
                Tape tape(16);
                int calls = 0;
                std::vector<float> got(size_t(L * 256), std::nanf(""));
                pooled::forward_in_periods(m, tok.data(), L, got.data(), segment,
                                           [&](const int32_t* in, int64_t n, const float* st_in, float* out, float* st_out) {
                                               CHECK(n % period == 0);
                                               CHECK(n <= seg);
                                               ++calls;
                                               tape.forward_tokens(m, in, n, st_in, out, st_out);
                                           });
                CHECK(calls == (L + seg - 1) / seg);
                CHECK(test::rel_error(got, want) <= 1e-5);
            }
        }
    }
    const Model m = pooled_model(kCases[0]);
    const int32_t tok[3] = {1, 2, 3};
    std::vector<float> out(3 * 256);
    const pooled::SegmentForward none = [](const int32_t*, int64_t, const float*, float*, float*) {};
    CHECK_THROWS_WITH(pooled::forward_in_periods(m, tok, 3, out.data(), 0, none), Catch::Contains("segment 0 is not positive"));
    const Model flat(make_config(IoKind::mulaw8, 8, 2, 16));
    CHECK_THROWS_WITH(pooled::forward_in_periods(flat, tok, 3, out.data(), 8, none), Catch::Contains("not pooled"));
}

TEST_CASE("pooled: the forward in segments and in calls gives the same floats as in one piece", "[pooled]") {
    const Model m = pooled_model(kCases[0]);
    const int period = m.config().pool_period();
    const int64_t L = 20 * period + 5;
    const std::vector<int32_t> tok = test::random_tokens(L, 61);
    std::vector<float> whole(size_t(L * 256)), parts(size_t(L * 256));
    pooled::forward_tokens(m, tok.data(), L, whole.data(), nullptr);
    pooled::Forward small(m, 2 * period + 1);  // rounded up to 3 periods: seven segments
    small.run(tok.data(), L, parts.data(), nullptr);
    CHECK(parts == whole);
    // two calls continue one another; one that ends inside a frame wants a reset() next
    small.reset();
    const int64_t cut = 7 * period;
    small.run(tok.data(), cut, parts.data(), nullptr);
    small.run(tok.data() + cut, L - cut, parts.data() + cut * 256, nullptr);
    CHECK(parts == whole);
    CHECK_THROWS_WITH(small.run(tok.data(), period, parts.data(), nullptr), Catch::Contains("reset() first"));
    small.reset();
    std::fill(parts.begin(), parts.end(), 0.0f);
    small.run(tok.data(), L, parts.data(), nullptr);
    CHECK(parts == whole);
    const std::vector<int32_t> bad{1, 2, 300};
    small.reset();
    CHECK_THROWS_WITH(small.run(bad.data(), 3, parts.data(), nullptr), Catch::Contains("token 300"));
}

TEST_CASE("pooled: no output hears a later sample", "[pooled]") {
    const Model m = pooled_model(kCases[0]);
    const int period = m.config().pool_period();
    const int64_t L = 6 * period;
    std::vector<int32_t> tok = test::random_tokens(L, 31);
    std::vector<float> base(static_cast<size_t>(L * 256)), moved(static_cast<size_t>(L * 256));
    pooled::forward_tokens(m, tok.data(), L, base.data(), nullptr);
    // change one sample at every place in a frame of the deepest level: the logits up to it stay
    // exactly, the ones from it on change
    for (int64_t j = 2 * period; j < 3 * period; ++j) {
        std::vector<int32_t> t2 = tok;
        t2[size_t(j)] = (t2[size_t(j)] + 128) % 256;
        pooled::forward_tokens(m, t2.data(), L, moved.data(), nullptr);
        INFO("sample " << j << " changed");
        CHECK(std::equal(base.begin(), base.begin() + j * 256, moved.begin()));
        CHECK(!std::equal(base.begin() + j * 256, base.begin() + (j + 1) * 256, moved.begin() + j * 256));
        CHECK(!std::equal(base.begin() + (L - 1) * 256, base.end(), moved.begin() + (L - 1) * 256));
    }
}

TEST_CASE("pooled: gradients match float64 finite differences", "[pooled][backward]") {
    for (const PoolCase& k : kCases) {
        Model m = pooled_model(k);
        const int period = m.config().pool_period();
        const int64_t L = 5 * period - 1;  // one sample short of whole periods: the last frame of every level cut short
        const std::vector<int32_t> tok = test::random_tokens(L, k.seed + 40), target = test::random_tokens(L, k.seed + 41);
        // a carried state: the reference's after a prefix of two periods
        const int64_t S = m.state_floats_per_stream();
        std::vector<double> st_d(static_cast<size_t>(S));
        reference_logits(m, test::random_tokens(2 * period, k.seed + 42), nullptr, st_d.data());
        const std::vector<float> st = to_float(st_d);
        std::vector<double> st_exact(st.begin(), st.end());
        auto loss = [&]() {  // mean cross-entropy of the reference
            const std::vector<double> lg = reference_logits(m, tok, st_exact.data());
            double l = 0;
            for (int64_t t = 0; t < L; ++t) {
                const double* r = &lg[size_t(t * 256)];
                const double mx = *std::max_element(r, r + 256);
                double z = 0;
                for (int v = 0; v < 256; ++v) z += std::exp(r[v] - mx);
                l += mx + std::log(z) - r[target[size_t(t)]];
            }
            return l / double(L);
        };
        Tape tape(16);
        Model g = zeros_like(m);
        std::vector<float> lg(static_cast<size_t>(L * 256)), dl(static_cast<size_t>(L * 256));
        tape.forward_tokens(m, tok.data(), L, st.data(), lg.data(), nullptr);
        for (int64_t t = 0; t < L; ++t) {
            const float* r = &lg[size_t(t * 256)];
            const double mx = *std::max_element(r, r + 256);
            double z = 0;
            for (int v = 0; v < 256; ++v) z += std::exp(double(r[v]) - mx);
            for (int v = 0; v < 256; ++v)
                dl[size_t(t * 256 + v)] =
                    float((std::exp(double(r[v]) - mx) / z - (v == target[size_t(t)] ? 1.0 : 0.0)) / double(L));
        }
        tape.backward(dl.data(), g);

        std::mt19937_64 rng(k.seed + 43);
        double worst = 0;
        for (const TensorSpec& spec : m.tensors()) {
            const int64_t n = spec.numel();
            std::set<int64_t> picks;
            const bool embed = spec.name == "backbone.embeddings.weight";
            while (int64_t(picks.size()) < std::min<int64_t>(5, n)) {
                // the embeddings: rows of tokens that occur (the others have no gradient but the head's)
                const int64_t i = embed ? int64_t(tok[size_t(rng() % uint64_t(L))]) * spec.shape[1] +
                                              int64_t(rng() % uint64_t(spec.shape[1]))
                                        : int64_t(rng() % uint64_t(n));
                picks.insert(i);
            }
            float* w = m.tensor(spec.name);
            const float* gw = g.tensor(spec.name);
            std::vector<double> fd;
            // (a step of 1e-4, not test_backward.cpp's 1e-3: a tied embedding enters twice, at the
            // input and in the head, and its third derivative made 1e-3's truncation error reach 1e-3)
            for (int64_t i : picks) fd.push_back(test::central_difference(w + i, loss, 1e-4));
            double scale = 0;
            for (double f : fd) scale = std::max(scale, std::fabs(f));
            INFO(k.name << ": " << spec.name);
            CHECK(scale > 0);  // a sampled tensor with no gradient at all checks nothing
            size_t j = 0;
            for (int64_t i : picks) {
                const double err = std::fabs(double(gw[i]) - fd[j]) / std::max({std::fabs(fd[j]), 0.01 * scale, 1e-12});
                INFO("[" << i << "]: tape " << gw[i] << ", finite difference " << fd[j]);
                CHECK(err <= 1e-3);
                worst = std::max(worst, err);
                ++j;
            }
        }
        std::printf("%s: worst relative gradient error %.2e\n", k.name, worst);
    }
}

TEST_CASE("pooled: files round-trip, and bad configs are refused clearly", "[pooled][model_file]") {
    const Model m = pooled_model(kCases[0]);
    test::TempDir dir;
    const std::string path = dir.file("pooled.safetensors");
    save_model(m, path);
    const Model back = load_model(path);
    CHECK(back.config().pool == m.config().pool);
    CHECK_THAT(config_to_json(m.config()), Catch::Contains("\"format_version\": 3"));  // older builds ask to update
    CHECK(back.config().pool_expand == 2);
    CHECK(back.parameter_count() == m.parameter_count());
    CHECK(std::equal(m.data(), m.data() + m.parameter_count(), back.data()));
    // the flat paths refuse it with a message that says why
    CHECK_THROWS_WITH(m.view(), Catch::Contains("pooled model"));

    ModelConfig c = m.config();
    c.n_layers = 7;  // five stacks
    CHECK_THROWS_WITH(Model(c), Catch::Contains("expected a multiple of 5"));
    c = m.config();
    c.pool = {1};
    CHECK_THROWS_WITH(Model(c), Catch::Contains("pool[0]"));
    c.pool = {64, 64, 2};
    c.n_layers = 7;
    CHECK_THROWS_WITH(Model(c), Catch::Contains("period of 8192"));
    c = make_config(IoKind::continuous, 16, 3, 16);
    c.pool = {4};
    CHECK_THROWS_WITH(Model(c), Catch::Contains("pooled models are generators"));
}

TEST_CASE("pooled: a model stored as F16 steps on halves, bit for bit the forward's floats", "[pooled][f16]") {
    // digits_large's case: every weight a half, so each stack's step reads half-precision copies
    // (kernels::PrepareOptions) at d_model 64, 128 and 256, shapes of no fixed kind but 64
    PoolCase k{"D64, pools 4 and 4, one layer a stack", 64, 1, {4, 4}, {}, 3};
    Model m = pooled_model(k);
    for (int64_t i = 0; i < m.parameter_count(); ++i) m.data()[i] = kernels::round_to_half(m.data()[i]);
    const int64_t L = 3 * m.config().pool_period() + 5;
    const std::vector<int32_t> tok = test::random_tokens(L, 11);
    std::vector<float> scan(static_cast<size_t>(L * 256));
    pooled::forward_tokens(m, tok.data(), L, scan.data(), nullptr);
    for (bool halves : {true, false}) {
        INFO("halves " << halves);
        auto w = pooled::prepare(m, {.half_weights = halves});
        if (kernels::active_isa() != kernels::Isa::baseline) CHECK((pooled::half_weight_count(*w) > 0) == halves);
        pooled::Stepper step(w, 1);
        std::vector<float> got(static_cast<size_t>(L * 256));
        for (int64_t t = 0; t < L; ++t) step.step(&tok[size_t(t)], got.data() + t * 256);
        CHECK(got == scan);
    }
    CHECK(test::rel_error(scan, to_float(reference_logits(m, tok))) <= 1e-4);
}
