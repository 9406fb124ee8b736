// Label guidance (model/sampling.h label_guidance_logits, model/engine.h GuidedGenerator;
// docs/DIGITS.md): the formula in float64, and the generator's streams against a loop written
// out here, one stepper per label.
#include "test_util.h"

#include "model/engine.h"
#include "model/pooled.h"
#include "model/sampling.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <set>
#include <vector>

using namespace mw;

namespace {

// A labelled generator: flat (d_model 16 × 2) or pooled (factor 4, one layer a stack).
Model labelled_generator(uint64_t seed, bool pooled_model, std::vector<std::string> labels, int prefix,
                         bool null_label = false) {
    ModelConfig c = test::random_model(IoKind::mulaw8, 16, 2, 8, seed).config();
    if (pooled_model) {
        c.pool = {4};
        c.n_layers = c.stacks();
    }
    c.labels = std::move(labels);
    c.label_prefix = prefix;
    c.label_null = null_label;
    Model m(c);
    m.init_random(seed, 0.3f);
    return m;
}

std::vector<double> log_softmax64(const std::vector<float>& x) {
    double top = x[0];
    for (float v : x) top = std::max(top, double(v));
    double total = 0;
    for (float v : x) total += std::exp(double(v) - top);
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = double(x[i]) - top - std::log(total);
    return out;
}

} // namespace

TEST_CASE("guidance: the guided logits push label c against the labels' average, in float64", "[sampling][guidance]") {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    const int K = 4, V = 9;
    for (int trial = 0; trial < 20; ++trial) {
        INFO("trial " << trial);
        std::vector<float> lp(static_cast<size_t>(K * V));
        for (int k = 0; k < K; ++k) {
            std::vector<float> raw(static_cast<size_t>(V), 0.0f);
            for (float& v : raw) v = normal(rng) - 50.0f;  // (log_softmax removes any offset)
            log_softmax(raw.data(), V, &lp[size_t(k * V)]);
            const std::vector<double> want = log_softmax64(raw);
            for (int v = 0; v < V; ++v) REQUIRE(lp[size_t(k * V + v)] == Approx(want[size_t(v)]).margin(1e-6));
        }
        const int c = trial % K;
        const float w = 0.5f * float(trial % 5);
        std::vector<float> out(static_cast<size_t>(V));
        label_guidance_logits(lp.data(), K, V, c, w, out.data());
        for (int v = 0; v < V; ++v) {
            // the labels' average probability of v, and c's own
            double mean = 0;
            for (int k = 0; k < K; ++k) mean += std::exp(double(lp[size_t(k * V + v)])) / K;
            const double own = lp[size_t(c * V + v)];
            CHECK(out[size_t(v)] == Approx(own + double(w) * (own - std::log(mean))).margin(1e-5));
        }
        // w = 0: the label's own log-probabilities
        label_guidance_logits(lp.data(), K, V, c, 0.0f, out.data());
        for (int v = 0; v < V; ++v) CHECK(out[size_t(v)] == lp[size_t(c * V + v)]);
    }
    // Labels that agree leave nothing to push: the guided logits are lp[c] at any weight.
    std::vector<float> same(static_cast<size_t>(K * V));
    for (size_t i = 0; i < same.size(); ++i) same[i] = -std::log(float(V)) + 0.1f * float((i % size_t(V)) % 3) - 0.1f;
    std::vector<float> out(static_cast<size_t>(V));
    label_guidance_logits(same.data(), K, V, 2, 3.0f, out.data());
    for (int v = 0; v < V; ++v) CHECK(out[size_t(v)] == Approx(same[size_t(2 * V + v)]).margin(1e-6));
    // Far-apart log-probabilities (one label sure, the others not) stay finite.
    std::vector<float> apart(static_cast<size_t>(K * V), -80.0f);
    for (int v = 0; v < V; ++v) apart[size_t(v)] = v == 0 ? 0.0f : -90.0f;
    label_guidance_logits(apart.data(), K, V, 1, 4.0f, out.data());
    for (float x : out) CHECK(std::isfinite(x));
}

TEST_CASE("guidance: against the null label, (1 + w) lp_label - w lp_null in float64", "[sampling][guidance]") {
    std::mt19937 rng(6);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    const int V = 11;
    std::vector<float> raw(static_cast<size_t>(2 * V)), lp(static_cast<size_t>(2 * V)), out(static_cast<size_t>(V));
    for (int trial = 0; trial < 10; ++trial) {
        for (float& v : raw) v = normal(rng);
        log_softmax(raw.data(), V, lp.data());
        log_softmax(raw.data() + V, V, lp.data() + V);
        const float w = 0.75f * float(trial);
        null_guidance_logits(lp.data(), lp.data() + V, V, w, out.data());
        for (int v = 0; v < V; ++v)
            CHECK(out[size_t(v)] == Approx((1.0 + w) * lp[size_t(v)] - w * lp[size_t(V + v)]).margin(1e-5));
        null_guidance_logits(lp.data(), lp.data() + V, V, 0.0f, out.data());
        for (int v = 0; v < V; ++v) CHECK(out[size_t(v)] == lp[size_t(v)]);
        // raw logits: out moves by a constant, so its softmax is the same
        std::vector<float> from_raw(static_cast<size_t>(V)), lp_out(static_cast<size_t>(V)), lp_raw(static_cast<size_t>(V));
        null_guidance_logits(lp.data(), lp.data() + V, V, w, out.data());
        null_guidance_logits(raw.data(), raw.data() + V, V, w, from_raw.data());
        log_softmax(out.data(), V, lp_out.data());
        log_softmax(from_raw.data(), V, lp_raw.data());
        for (int v = 0; v < V; ++v) CHECK(lp_raw[size_t(v)] == Approx(lp_out[size_t(v)]).margin(1e-4));
    }
}

TEST_CASE("guidance: GuidedGenerator equals its streams stepped one by one, written out", "[guidance]") {
    const bool pooled_model = GENERATE(false, true);
    const GuidanceContrast contrast = GENERATE(GuidanceContrast::labels, GuidanceContrast::null_label);
    const bool null = contrast == GuidanceContrast::null_label;
    INFO((pooled_model ? "pooled" : "flat") << " generator, guided against " << (null ? "the null label" : "the labels"));
    const Model m = labelled_generator(31, pooled_model, {"a", "b", "c"}, 5, true);
    const int V = 256, clips = 2, label = 1, n = 300;
    // the streams of a clip and the label each is primed with: every label, or the asked and the null
    const std::vector<int> stream_labels = null ? std::vector<int>{label, 3} : std::vector<int>{0, 1, 2};
    const int K = int(stream_labels.size());
    REQUIRE(GuidedGenerator::streams_per_clip(m.config(), contrast) == K);
    const float w = 2.0f;
    const SamplerParams params{0.9f, 0.95f, 40};
    const std::vector<int32_t> prime = {120, 140, 135};

    GuidedGenerator g(m, clips, label, w, params, contrast, 2);  // (a clip on each of two threads)
    g.prime(prime.data(), int64_t(prime.size()));
    std::vector<int32_t> got(static_cast<size_t>(clips * n));
    g.generate(n / 2, got.data());  // in two calls: the second continues the first
    std::vector<int32_t> rest(static_cast<size_t>(clips * (n - n / 2)));
    g.generate(n - n / 2, rest.data());

    for (int c = 0; c < clips; ++c) {
        INFO("clip " << c);
        std::vector<pooled::Stepper> pooled_steps;
        std::vector<kernels::PreparedModelPtr> prepared;
        std::vector<kernels::StepStatePtr> states;
        std::vector<std::vector<float>> logits(static_cast<size_t>(K), std::vector<float>(static_cast<size_t>(V)));
        auto step = [&](int k, int32_t token) {
            if (pooled_model) pooled_steps[size_t(k)].step(&token, logits[size_t(k)].data());
            else kernels::step_tokens(*prepared[size_t(k)], *states[size_t(k)], &token, logits[size_t(k)].data());
        };
        for (int k = 0; k < K; ++k) {
            if (pooled_model) {
                pooled_steps.emplace_back(m, 1);
            } else {
                prepared.push_back(kernels::prepare_model(m.view()));
                states.push_back(kernels::make_state(*prepared.back(), 1));
            }
            for (int32_t t : m.config().label_tokens(stream_labels[size_t(k)])) step(k, t);
        }
        std::vector<float> lp(static_cast<size_t>(K * V)), guided(static_cast<size_t>(V));
        for (int32_t x : prime)
            for (int k = 0; k < K; ++k) step(k, x);
        SamplerParams p = params;
        p.seed = params.seed + uint64_t(c);
        Sampler sampler(p);
        for (int t = 0; t < n; ++t) {
            if (null) {  // raw logits: the same softmax as log-softmaxes (null_guidance_logits)
                null_guidance_logits(logits[0].data(), logits[1].data(), V, w, guided.data());
            } else {
                for (int k = 0; k < K; ++k) log_softmax(logits[size_t(k)].data(), V, &lp[size_t(k * V)]);
                label_guidance_logits(lp.data(), K, V, label, w, guided.data());
            }
            const int32_t x = sampler.sample(guided.data());
            const int32_t have = t < n / 2 ? got[size_t(c * (n / 2) + t)] : rest[size_t(c * (n - n / 2) + t - n / 2)];
            REQUIRE(have == x);
            for (int k = 0; k < K; ++k) step(k, x);
        }
    }
}

TEST_CASE("guidance: weight 0 draws what BatchGenerator draws after the label's prefix", "[guidance]") {
    // (pooled: both step through the prefix; a flat BatchGenerator scans it, other floats)
    const Model m = labelled_generator(32, true, {"x", "y"}, 7);
    const SamplerParams params{1.0f, 1.0f, 9};
    const int clips = 3, n = 400;
    GuidedGenerator g(m, clips, 1, 0.0f, params);
    std::vector<int32_t> a(static_cast<size_t>(clips * n)), b(static_cast<size_t>(clips * n));
    g.generate(n, a.data());
    BatchGenerator plain(m, Device::cpu, clips, params);
    const std::vector<int32_t> prefix = m.config().label_tokens(1);
    plain.prime(prefix.data(), int64_t(prefix.size()));
    plain.generate(n, b.data());
    CHECK(a == b);
    // and guidance changes the draws
    GuidedGenerator pushed(m, clips, 1, 4.0f, params);
    std::vector<int32_t> c(static_cast<size_t>(clips * n));
    pushed.generate(n, c.data());
    CHECK(c != a);
}

TEST_CASE("generation on several threads draws the classes it draws on one", "[guidance][sampling]") {
    // BatchGenerator and GuidedGenerator step their streams in a group per thread; the kernels
    // step each stream alone, so no class may change with the split (uneven splits included).
    const bool pooled_model = GENERATE(false, true);
    INFO((pooled_model ? "pooled" : "flat") << " generator");
    const Model m = labelled_generator(34, pooled_model, {"a", "b", "c"}, 5, true);
    const SamplerParams params{0.95f, 0.97f, 77};
    const std::vector<int32_t> prime = {128, 131, 125, 140};
    const int n = 240;
    auto plain = [&](int threads) {
        const int streams = 5;
        BatchGenerator b(m, Device::cpu, streams, params, threads);
        b.prime(prime.data(), int64_t(prime.size()));
        std::vector<int32_t> out(static_cast<size_t>(streams * n)), more(static_cast<size_t>(streams * n));
        b.generate(n, out.data());
        b.generate(n, more.data());
        out.insert(out.end(), more.begin(), more.end());
        return out;
    };
    auto guided = [&](int threads, GuidanceContrast contrast) {
        const int clips = 5;
        GuidedGenerator g(m, clips, 2, 2.5f, params, contrast, threads);
        g.prime(prime.data(), int64_t(prime.size()));
        std::vector<int32_t> out(static_cast<size_t>(clips * n));
        g.generate(n, out.data());
        return out;
    };
    const std::vector<int32_t> one = plain(1);
    CHECK(std::set<int32_t>(one.begin(), one.end()).size() > 20);  // (a model that draws something)
    for (int threads : {2, 3}) {
        INFO(threads << " threads");
        CHECK(plain(threads) == one);
        for (GuidanceContrast contrast : {GuidanceContrast::labels, GuidanceContrast::null_label})
            CHECK(guided(threads, contrast) == guided(1, contrast));
    }
}

TEST_CASE("guidance: clips with labels of their own draw what each label's own run draws for them", "[guidance]") {
    // generate --label random: clip c asked for labels[c] is clip c of a run asking every clip
    // for labels[c], whatever the other clips ask for, at any weight and with either contrast.
    const bool pooled_model = GENERATE(false, true);
    INFO((pooled_model ? "pooled" : "flat") << " generator");
    const Model m = labelled_generator(35, pooled_model, {"a", "b", "c"}, 5, true);
    const SamplerParams params{1.0f, 1.0f, 31};
    const std::vector<int> labels = {2, 0, 2, 1, 0};
    const int clips = int(labels.size()), n = 300;
    for (GuidanceContrast contrast : {GuidanceContrast::labels, GuidanceContrast::null_label})
        for (float w : {0.0f, 2.0f}) {
            INFO("contrast " << (contrast == GuidanceContrast::labels ? "labels" : "null") << ", weight " << w);
            GuidedGenerator mixed(m, labels, w, params, contrast, 2);
            std::vector<int32_t> got(static_cast<size_t>(clips * n));
            mixed.generate(n, got.data());
            for (int label = 0; label < 3; ++label) {
                GuidedGenerator one(m, clips, label, w, params, contrast, 1);
                std::vector<int32_t> want(static_cast<size_t>(clips * n));
                one.generate(n, want.data());
                for (int c = 0; c < clips; ++c)
                    if (labels[size_t(c)] == label) {
                        INFO("clip " << c << ", label " << label);
                        CHECK(std::equal(got.begin() + c * n, got.begin() + (c + 1) * n, want.begin() + c * n));
                    }
            }
            // (the labels matter: clip 0 asked for 2 differs from clip 0 asked for 0)
            GuidedGenerator zero(m, clips, 0, w, params, contrast, 1);
            std::vector<int32_t> all0(static_cast<size_t>(clips * n));
            zero.generate(n, all0.data());
            CHECK_FALSE(std::equal(got.begin(), got.begin() + n, all0.begin()));
        }
    const Model flat = labelled_generator(33, false, {"a", "b"}, 4);
    CHECK_THROWS_WITH(GuidedGenerator(flat, std::vector<int>{0, 2}, 1.0f, params), Catch::Contains("label 2, expected 0..1"));
    CHECK_THROWS_WITH(GuidedGenerator(flat, std::vector<int>{}, 1.0f, params), Catch::Contains("0 clips"));
}

TEST_CASE("guidance: misuse is refused, naming what is wrong", "[guidance]") {
    const Model m = labelled_generator(33, false, {"a", "b"}, 4);
    const SamplerParams params{};
    CHECK_THROWS_WITH(GuidedGenerator(test::random_model(IoKind::mulaw8, 16, 2, 8, 1), 1, 0, 1.0f, params),
                      Catch::Contains("has no labels"));
    CHECK_THROWS_WITH(GuidedGenerator(m, 1, 2, 1.0f, params), Catch::Contains("label 2, expected 0..1"));
    CHECK_THROWS_WITH(GuidedGenerator(m, 1, -1, 1.0f, params), Catch::Contains("label -1"));
    CHECK_THROWS_WITH(GuidedGenerator(m, 0, 0, 1.0f, params), Catch::Contains("0 clips"));
    CHECK_THROWS_WITH(GuidedGenerator(m, 3000, 0, 1.0f, params), Catch::Contains("at most 4096 streams"));
    CHECK_THROWS_WITH(GuidedGenerator(m, 1, 0, -0.5f, params), Catch::Contains("expected >= 0"));
    CHECK_THROWS_WITH(GuidedGenerator(m, 1, 0, std::nanf(""), params), Catch::Contains("expected >= 0"));
    CHECK_THROWS_WITH(GuidedGenerator(m, 1, 0, 1.0f, params, GuidanceContrast::null_label),
                      Catch::Contains("has none") && Catch::Contains("--label-dropout"));
    const Model with_null = labelled_generator(33, false, {"a", "b", "c"}, 4, true);
    CHECK_NOTHROW(GuidedGenerator(with_null, 2048, 0, 1.0f, params, GuidanceContrast::null_label));
    CHECK_THROWS_WITH(GuidedGenerator(with_null, 2049, 0, 1.0f, params, GuidanceContrast::null_label),
                      Catch::Contains("2049 clips of 2 streams"));
}
