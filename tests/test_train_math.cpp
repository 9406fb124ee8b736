// The trainer's own math: loss gradients against float64 finite differences, AdamW against
// the update written out by hand, the schedule and clipping at known points.
#include "kernels/counter_draws.h"
#include "kernels/harmonic_decay.h"
#include "kernels/thread_pool.h"
#include "model/losses.h"
#include "model/optim.h"
#include "model/model.h"
#include "model/engine.h"
#include "model/safetensors.h"
#include "model/trainer.h"
#include "temp_dir.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <tuple>
#include <functional>
#include <iterator>
#include <random>
#include <thread>
#include <vector>

using namespace mw;

namespace {
std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}
} // namespace

TEST_CASE("ESR and pre-emphasised ESR gradients match finite differences", "[train]") {
    const int64_t L = 57;
    for (double a : {0.0, 0.95}) {
        for (int64_t skip : {0, 5}) {
            std::vector<float> y = randn(L, 1), t = randn(L, 2);
            // Loss over one sequence with its own signal as the denominator.
            const double S = esr_sums(y.data(), t.data(), L, a, skip).signal;
            auto loss = [&](const std::vector<float>& yy) {
                return esr_sums(yy.data(), t.data(), L, a, skip).error / S;
            };
            std::vector<float> g(L);
            esr_grad(y.data(), t.data(), L, a, skip, S, g.data());
            double worst = 0;
            for (int64_t i = 0; i < L; ++i) {
                std::vector<float> yp = y, ym = y;
                const float h = 1e-2f;  // the loss is quadratic in y: central differences are exact
                yp[size_t(i)] += h;
                ym[size_t(i)] -= h;
                const double fd = (loss(yp) - loss(ym)) / (2.0 * h);
                worst = std::max(worst, std::abs(fd - g[size_t(i)]) / (std::abs(fd) + 1e-6));
                if (i < skip - 1) CHECK(g[size_t(i)] == 0.0f);
            }
            INFO("a=" << a << " skip=" << skip << " worst relative error " << worst);
            CHECK(worst < 1e-4);
        }
    }
}

TEST_CASE("ESR of a perfect output is 0, of silence is 1, and sums add up over pieces", "[train]") {
    std::vector<float> t = randn(100, 3);
    std::vector<float> zero(100, 0.0f);
    CHECK(esr_sums(t.data(), t.data(), 100, 0.95).esr() == 0.0);
    CHECK(esr_sums(zero.data(), t.data(), 100, 0.0).esr() == Approx(1.0));
    std::vector<float> y = randn(100, 4);
    const EsrSums whole = esr_sums(y.data(), t.data(), 100, 0.0);
    EsrSums parts = esr_sums(y.data(), t.data(), 40, 0.0);
    parts += esr_sums(y.data() + 40, t.data() + 40, 60, 0.0);
    CHECK(parts.esr() == Approx(whole.esr()).epsilon(1e-12));
}

TEST_CASE("multi-resolution STFT loss: gradient matches finite differences, zero on a perfect output", "[train]") {
    const int64_t L = 300;
    const std::vector<float> t = randn(L, 21);
    std::vector<float> y = randn(L, 22);
    for (int64_t i = 0; i < L; ++i) y[size_t(i)] = 0.6f * y[size_t(i)] + 0.5f * t[size_t(i)];
    StftLossParams p;
    p.sizes = {32, 64, 512};  // 512 > L: left out
    const double scale = 0.7;
    std::vector<float> g(L);
    const double loss = mrstft_loss(y.data(), t.data(), L, p, scale, g.data());
    CHECK(loss > 0.0);
    CHECK(mrstft_loss(y.data(), t.data(), L, p, scale, nullptr) == loss);
    // Only the sizes that fit count: the same as asking for those alone.
    StftLossParams fit = p;
    fit.sizes = {32, 64};
    CHECK(mrstft_loss(y.data(), t.data(), L, fit, scale, nullptr) == Approx(loss).epsilon(1e-12));
    double worst = 0, worst_abs = 0, gmax = 0;
    for (float v : g) gmax = std::max(gmax, double(std::abs(v)));
    for (int64_t i = 0; i < L; ++i) {
        std::vector<float> yp = y, ym = y;
        const float h = 1e-4f;  // small: |ln|Y| - ln|T|| has a kink where a bin's magnitudes meet
        yp[size_t(i)] += h;
        ym[size_t(i)] -= h;
        const double fd = (mrstft_loss(yp.data(), t.data(), L, p, scale, nullptr) -
                           mrstft_loss(ym.data(), t.data(), L, p, scale, nullptr)) / (double(yp[size_t(i)]) - ym[size_t(i)]);
        worst = std::max(worst, std::abs(fd - g[size_t(i)]) / (std::abs(fd) + 1e-3));
        worst_abs = std::max(worst_abs, std::abs(fd - g[size_t(i)]));
    }
    INFO("worst relative error " << worst << ", worst absolute " << worst_abs << " of max |g| " << gmax);
    CHECK(worst < 2e-3);
    // A perfect output: loss 0 and gradient 0.
    CHECK(mrstft_loss(t.data(), t.data(), L, p, 1.0, g.data()) == 0.0);
    CHECK(*std::max_element(g.begin(), g.end()) == 0.0f);
    CHECK(*std::min_element(g.begin(), g.end()) == 0.0f);
    // Too short for every size: 0. Not a power of two: refused.
    CHECK(mrstft_loss(y.data(), t.data(), 20, p, 1.0, g.data()) == 0.0);
    StftLossParams odd;
    odd.sizes = {48};
    CHECK_THROWS_WITH(mrstft_loss(y.data(), t.data(), L, odd, 1.0, nullptr), Catch::Contains("48"));
}

TEST_CASE("cross-entropy gradient matches finite differences and bits are nats / ln 2", "[train]") {
    const int64_t L = 9;
    const int V = 7;
    std::vector<float> z = randn(size_t(L * V), 5, 2.0f);
    std::vector<int32_t> tok(L);
    for (int64_t i = 0; i < L; ++i) tok[size_t(i)] = int32_t((i * 5 + 3) % V);
    std::vector<float> dz(size_t(L * V));
    const NllSums s = cross_entropy(z.data(), tok.data(), L, V, 2, dz.data(), 1.0);
    CHECK(s.count == L - 2);
    double worst = 0;
    for (size_t i = 0; i < z.size(); ++i) {
        std::vector<float> zp = z, zm = z;
        const float h = 1e-2f;
        zp[i] += h;
        zm[i] -= h;
        const double fd = (cross_entropy(zp.data(), tok.data(), L, V, 2, nullptr, 1).nats -
                           cross_entropy(zm.data(), tok.data(), L, V, 2, nullptr, 1).nats) / (2 * h);
        worst = std::max(worst, std::abs(fd - dz[i]) / (std::abs(fd) + 1e-3));
    }
    INFO("worst relative error " << worst);
    CHECK(worst < 2e-3);
    // Uniform logits: exactly log2(V) bits per prediction.
    std::vector<float> flat(size_t(L * V), 0.25f);
    CHECK(cross_entropy(flat.data(), tok.data(), L, V, 0, nullptr, 1).bits_per_sample() ==
          Approx(std::log2(double(V))).epsilon(1e-9));
}

TEST_CASE("AdamW takes the textbook step, with decoupled weight decay where the mask says", "[train]") {
    AdamWParams p;
    p.lr = 0.1;
    p.weight_decay = 0.5;
    AdamW opt(2, p);
    std::vector<float> w = {1.0f, -2.0f};
    const std::vector<uint8_t> mask = {1, 0};
    const std::vector<float> g1 = {0.5f, -0.25f}, g2 = {-1.0f, 0.75f};
    opt.step(w.data(), g1.data(), p.lr, mask.data());
    // Step 1: m̂ = g, v̂ = g², update = lr·g/(|g| + eps) = ±lr; decay first: w·(1 − lr·wd).
    CHECK(w[0] == Approx(1.0 * (1 - 0.05) - 0.1).epsilon(1e-6));
    CHECK(w[1] == Approx(-2.0 + 0.1).epsilon(1e-6));
    opt.step(w.data(), g2.data(), p.lr, mask.data());
    // Step 2, element 0, written out: moments, bias corrections, decay, update.
    const double m0 = 0.9 * 0.05 + 0.1 * -1.0, v0 = 0.999 * 0.00025 + 0.001 * 1.0;
    const double w0 = (1.0 * 0.95 - 0.1) * (1 - 0.05) - 0.1 * (m0 / 0.19) / (std::sqrt(v0 / (1 - 0.998001)) + 1e-8);
    CHECK(w[0] == Approx(w0).epsilon(1e-5));
    CHECK(opt.steps_taken() == 2);
}

TEST_CASE("the update and the norm shared out over threads give the one-thread floats", "[train]") {
    // several blocks and a ragged end, random gradients over six orders of magnitude, half the
    // weights decayed; three steps so that the moments matter
    const int64_t n = 3 * kUpdateBlock + 1237;
    std::mt19937 rng(20261206);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f), mag(-6.0f, 0.0f);
    std::vector<float> w0(static_cast<size_t>(n));
    std::vector<uint8_t> mask(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        w0[size_t(i)] = uni(rng);
        mask[size_t(i)] = uint8_t(rng() & 1);
    }
    std::vector<std::vector<float>> grads(3, std::vector<float>(static_cast<size_t>(n)));
    for (auto& g : grads)
        for (float& x : g) x = uni(rng) * std::pow(10.0f, mag(rng));
    AdamWParams p;
    p.weight_decay = 0.1;
    auto run = [&](kernels::ThreadPool* pool, std::vector<double>& norms) {
        AdamW opt(n, p);
        std::vector<float> w = w0;
        for (auto g : grads) {
            norms.push_back(clip_grad_norm(g.data(), n, 0.5, pool));
            opt.step(w.data(), g.data(), 1e-3, mask.data(), pool);
        }
        return w;
    };
    std::vector<double> norms1, norms2, norms3;
    const std::vector<float> serial = run(nullptr, norms1);
    kernels::ThreadPool two(2), three(3);
    CHECK(run(&two, norms2) == serial);
    CHECK(run(&three, norms3) == serial);
    CHECK(norms2 == norms1);
    CHECK(norms3 == norms1);
    // the norm itself, against a plain float64 sum
    double sum = 0;
    for (const float x : grads[0]) sum += double(x) * x;
    CHECK(norms1[0] == Approx(std::sqrt(sum)).epsilon(1e-12));
    // and the update against the textbook formula, element by element, for the first step
    AdamW opt(n, p);
    std::vector<float> w = w0, g = grads[0];
    const double norm = clip_grad_norm(g.data(), n, 0.5, &two);
    opt.step(w.data(), g.data(), 1e-3, mask.data(), &two);
    double worst = 0;
    for (int64_t i = 0; i < n; i += 97) {
        const double gi = double(grads[0][size_t(i)]) * 0.5 / norm;  // clipped
        const double wd = mask[size_t(i)] ? double(w0[size_t(i)]) * (1 - 1e-3 * 0.1) : double(w0[size_t(i)]);
        const double expect = wd - 1e-3 * gi / (std::abs(gi) + 1e-8);
        worst = std::max(worst, std::abs(double(w[size_t(i)]) - expect));
    }
    CHECK(worst < 1e-6);
}

TEST_CASE("the schedule warms up linearly, then follows a cosine to the final ratio", "[train]") {
    CHECK(scheduled_lr(1.0, 0, 10, 110) == Approx(0.1));
    CHECK(scheduled_lr(1.0, 9, 10, 110) == Approx(1.0));
    CHECK(scheduled_lr(1.0, 10, 10, 110) == Approx(1.0));
    CHECK(scheduled_lr(1.0, 60, 10, 110) == Approx(0.1 + 0.9 * 0.5));
    CHECK(scheduled_lr(1.0, 110, 10, 110) == Approx(0.1));
    CHECK(scheduled_lr(1.0, 500, 10, 110) == Approx(0.1));
}

TEST_CASE("clipping scales to the maximum norm and leaves small gradients alone", "[train]") {
    std::vector<float> g = {3.0f, 4.0f};
    CHECK(clip_grad_norm(g.data(), 2, 1.0) == Approx(5.0));
    CHECK(g[0] == Approx(0.6f));
    CHECK(g[1] == Approx(0.8f));
    CHECK(clip_grad_norm(g.data(), 2, 10.0) == Approx(1.0));
    CHECK(g[0] == Approx(0.6f));
}

TEST_CASE("weight decay applies to projections and embeddings, not norms, biases, A_log or D", "[train]") {
    Model m = test::random_model(IoKind::continuous, 16, 2, 16, 3, 1, true);
    const std::vector<uint8_t> mask = decay_mask(m);
    REQUIRE(int64_t(mask.size()) == m.parameter_count());
    auto at = [&](const std::string& name) { return mask[size_t(m.tensor(name) - m.data())]; };
    CHECK(at("backbone.layers.0.mixer.in_proj.weight") == 1);
    CHECK(at("backbone.layers.1.mixer.out_proj.weight") == 1);
    CHECK(at("stem.weight") == 1);
    CHECK(at("backbone.layers.0.mixer.A_log") == 0);
    CHECK(at("backbone.layers.0.mixer.D") == 0);
    CHECK(at("backbone.layers.0.norm.weight") == 0);
    CHECK(at("backbone.norm_f.weight") == 0);
    CHECK(at("head.bias") == 0);
}

namespace {
// Two effect pairs of the same input: one loud target and one 40 dB quieter.
TrainData loud_and_quiet(int64_t L) {
    const std::vector<float> in = randn(size_t(L), 21, 0.3f);
    TrainData d;
    for (float gain : {1.0f, 0.01f}) {
        EffectSequence s;
        s.name = gain == 1.0f ? "loud" : "quiet";
        s.input = in;
        s.target = randn(size_t(L), gain == 1.0f ? 22 : 23, 0.3f * gain);
        s.controls = {0.5f};
        d.effect_train.push_back(s);
        d.effect_val.push_back(s);
    }
    return d;
}

// One thread (so runs are exact) and every sample in the loss.
TrainOptions exact_options(bool balance_lanes) {
    TrainOptions o;
    o.threads = 1;
    o.warmup = 0;
    o.balance_lanes = balance_lanes;
    return o;
}

// One clip of a labelled generator: a label prefix of 12 samples of token 5 (its predictions
// unscored), then a random walk of 300 classes.
TokenSequence prefixed_walk() {
    TokenSequence s;
    s.name = "5_synth_0.wav";
    s.tokens.assign(12, 5);
    std::mt19937 rng(9);
    for (int32_t v = 128, t = 0; t < 300; ++t) s.tokens.push_back(v = std::clamp(v + int32_t(rng() % 9) - 4, 0, 255));
    s.unscored = 11;
    return s;
}

// Exact options for one step of one lane over a whole prefixed_walk(), at the full rate.
TrainOptions one_lane_step_options() {
    TrainOptions o = exact_options(false);
    o.batch = 1;
    o.segment = 512;
    o.steps = 1;
    o.lr_warmup_steps = 0;
    return o;
}

// A checkpoint's trainer metadata (JSON text) and a rewrite of it with the same tensors.
nlohmann::json checkpoint_meta(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    return nlohmann::json::parse(safetensors::parse(path, bytes.data(), bytes.size()).metadata.at("mambawave_trainer"));
}
void rewrite_checkpoint_meta(const std::string& path, const std::string& new_meta) {
    std::vector<uint8_t> good;
    {
        std::ifstream in(path, std::ios::binary);
        good.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const safetensors::File f = safetensors::parse(path, good.data(), good.size());
    std::vector<std::vector<float>> store;
    store.reserve(f.tensors.size());
    std::vector<safetensors::TensorToWrite> tensors;
    for (const auto& [name, info] : f.tensors) {
        store.emplace_back(size_t(info.numel));
        f.read_floats(info, store.back().data());
        tensors.push_back({name, safetensors::DType::F32, info.shape, store.back().data()});
    }
    const std::vector<uint8_t> bytes = safetensors::to_bytes({{"mambawave_trainer", new_meta}}, tensors);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}
} // namespace

TEST_CASE("balanced validation is the mean of the pairs' own ESRs, pooled is one ESR over all", "[train]") {
    const int64_t L = 3000;
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 31, 1, false);
    double per_pair_sum = 0;
    EsrSums pooled;
    for (const EffectSequence& s : loud_and_quiet(L).effect_val) {
        std::vector<float> x, y(static_cast<size_t>(L));
        for (int64_t t = 0; t < L; ++t) x.insert(x.end(), {s.input[size_t(t)], m.config().controls[0].normalise(0.5f)});
        forward_continuous(m, Path::reference, x.data(), L, y.data(), 1);
        const EsrSums e = esr_sums(y.data(), s.target.data(), L, 0.0);
        per_pair_sum += e.esr();
        pooled += e;
    }
    const double balanced = Trainer(m, loud_and_quiet(L), exact_options(true)).validate().metric;
    const double pooled_metric = Trainer(m, loud_and_quiet(L), exact_options(false)).validate().metric;
    CHECK(balanced == Approx(per_pair_sum / 2).epsilon(1e-4));
    CHECK(pooled_metric == Approx(pooled.esr()).epsilon(1e-4));
    // The quiet pair's ESR is huge (the model's output is louder than its target): pooling hides it.
    CHECK(balanced > 10 * pooled_metric);
}

TEST_CASE("balanced step loss divides each lane by its own energy plus the floor", "[train]") {
    // One lane, so the batch mean energy is the lane's: balanced = pooled / (1 + floor).
    const int64_t L = 2048;
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 32, 1, false);
    TrainData one = loud_and_quiet(L);
    one.effect_train.resize(1);
    auto first_loss = [&](bool balance_lanes) {
        TrainOptions o = exact_options(balance_lanes);
        o.batch = 1;
        o.segment = 1024;
        return Trainer(m, one, o).step().loss;
    };
    const double balanced = first_loss(true);
    const double pooled = first_loss(false);
    CHECK(balanced == Approx(pooled / (1.0 + TrainOptions::kLaneFloor)).epsilon(1e-6));
}

TEST_CASE("the STFT term adds weight x the lane's STFT loss to the step loss, and training with it lowers both", "[train]") {
    const int64_t L = 2048;  // one segment long, so the lane starts at sample 0
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 33, 1, false);
    TrainData one = loud_and_quiet(L);
    one.effect_train.resize(1);
    one.effect_val.resize(1);
    auto options = [](double w) {
        TrainOptions o = exact_options(false);
        o.batch = 1;
        o.segment = 2048;
        o.stft_weight = w;
        return o;
    };
    // The first step's loss, with and without the term, against the term computed here.
    const double plain = Trainer(m, one, options(0)).step().loss;
    const double with = Trainer(m, one, options(0.5)).step().loss;
    const EffectSequence& s = one.effect_train[0];
    std::vector<float> x, y(2048);
    for (int64_t t = 0; t < 2048; ++t) x.insert(x.end(), {s.input[size_t(t)], m.config().controls[0].normalise(0.5f)});
    forward_continuous(m, Path::reference, x.data(), 2048, y.data(), 1);
    const double term = mrstft_loss(y.data(), s.target.data(), 2048, StftLossParams{}, 0.5, nullptr);
    CHECK(term > 0);
    CHECK(with == Approx(plain + term).epsilon(1e-3));

    // A few steps with the term: the loss goes down.
    Trainer tr(m, one, options(0.5));
    const double first = tr.step().loss;
    double last = first;
    for (int i = 0; i < 40; ++i) last = tr.step().loss;
    INFO("first " << first << ", after 41 steps " << last);
    CHECK(last < 0.8 * first);
}

// A learnable effect, 4096 samples of noise: a soft clipper after a one-pole low-pass (the same
// pair for training and validation).
static TrainData lowpass_clip_data(uint32_t seed) {
    TrainData d;
    EffectSequence s;
    s.name = "lowpass-clip";
    s.input = randn(4096, seed, 0.5f);
    float lp = 0;
    for (float x : s.input) {
        lp += 0.2f * (x - lp);
        s.target.push_back(std::tanh(3.0f * lp));
    }
    s.controls = {0.5f};
    d.effect_train.push_back(s);
    d.effect_val.push_back(s);
    return d;
}

TEST_CASE("harmonic decays: training keeps every layer in the form and learns", "[train]") {
    const TrainData d = lowpass_clip_data(41);
    const Model start = test::random_model(IoKind::continuous, 8, 2, 8, 35, 1, false);
    const int E = start.config().d_inner, N = start.config().d_state;
    auto A_log = [](const Model& m, int l) {
        return m.tensor("backbone.layers." + std::to_string(l) + ".mixer.A_log");
    };
    REQUIRE_FALSE(kernels::decays_harmonic(A_log(start, 1), E, N));  // a free start, projected by the trainer
    TrainOptions o = exact_options(false);
    o.batch = 2;
    o.segment = 1024;
    o.steps = 80;
    o.adam.lr = 1e-2;
    o.harmonic_decays = true;
    Trainer tr(start, d, o);
    const std::vector<float> projected(A_log(tr.model(), 1), A_log(tr.model(), 1) + E * N);
    for (int l = 0; l < 2; ++l) CHECK(kernels::decays_harmonic(A_log(tr.model(), l), E, N));
    const double first = tr.step().loss;
    double last = first;
    for (int i = 1; i < 80; ++i) last = tr.step().loss;
    INFO("loss: first step " << first << ", step 80 " << last);
    CHECK(last < 0.5 * first);
    for (int l = 0; l < 2; ++l) CHECK(kernels::decays_harmonic(A_log(tr.model(), l), E, N));
    // the rates were trained, not frozen: every channel's moved
    const float* now = A_log(tr.model(), 1);
    int moved = 0;
    for (int e = 0; e < E; ++e) moved += std::fabs(now[e * N] - projected[size_t(e * N)]) > 1e-4f;
    CHECK(moved == E);
}

TEST_CASE("fixed Δ: training keeps x_proj's Δ rows and dt_proj.weight at zero and learns", "[train]") {
    const TrainData d = lowpass_clip_data(43);
    const Model start = test::random_model(IoKind::continuous, 8, 2, 8, 37, 1, false);
    const int E = start.config().d_inner, R = start.config().dt_rank;
    auto t = [](const Model& m, int l, const char* name) {
        return m.tensor("backbone.layers." + std::to_string(l) + ".mixer." + name);
    };
    auto nonzero = [&](const Model& m) {
        int64_t count = 0;
        for (int l = 0; l < 2; ++l)
            for (const char* name : {"x_proj.weight", "dt_proj.weight"})
                for (int i = 0; i < R * E; ++i) count += t(m, l, name)[i] != 0.0f;
        return count;
    };
    REQUIRE(nonzero(start) == 2 * 2 * R * E);  // a random start: every one of them nonzero
    TrainOptions o = exact_options(false);
    o.batch = 2;
    o.segment = 1024;
    o.steps = 80;
    o.adam.lr = 1e-2;
    o.adam.weight_decay = 0.1;  // decay must not move them either
    o.fixed_dt = true;
    Trainer tr(start, d, o);
    CHECK(nonzero(tr.model()) == 0);
    const std::vector<float> bias0(t(tr.model(), 1, "dt_proj.bias"), t(tr.model(), 1, "dt_proj.bias") + E);
    const double first = tr.step().loss;
    double last = first;
    for (int i = 1; i < 80; ++i) last = tr.step().loss;
    INFO("loss: first step " << first << ", step 80 " << last);
    CHECK(last < 0.5 * first);
    CHECK(nonzero(tr.model()) == 0);
    // Δ's own parameter was trained: the biases moved
    int moved = 0;
    for (int e = 0; e < E; ++e) moved += std::fabs(t(tr.model(), 1, "dt_proj.bias")[e] - bias0[size_t(e)]) > 1e-4f;
    CHECK(moved > E / 2);
}

// A label prefix's own predictions (TokenSequence::unscored) are left out of the training loss
// and of validation: both equal the cross-entropy over the rest, worked out here from the model.
TEST_CASE("a generator's unscored predictions (a label prefix's) count in neither the loss nor validation",
          "[train]") {
    const Model m = test::random_model(IoKind::mulaw8, 8, 2, 8, 47);
    const TokenSequence s = prefixed_walk();
    const int64_t L = int64_t(s.tokens.size()) - 1;
    std::vector<float> logits(size_t(L) * 256);
    TokenForward(m, 1).run(s.tokens.data(), L, logits.data());
    const NllSums want = cross_entropy(logits.data(), s.tokens.data() + 1, L, 256, 11, nullptr, 1.0);
    REQUIRE(want.count == L - 11);
    const NllSums all = cross_entropy(logits.data(), s.tokens.data() + 1, L, 256, 0, nullptr, 1.0);
    // (the prefix would show: 0.02 bits here, hundreds of times the tolerances below)
    REQUIRE(std::fabs(all.bits_per_sample() - want.bits_per_sample()) > 0.01);
    TrainData d;
    d.token_train.push_back(s);
    d.token_val.push_back(s);
    TrainOptions o = one_lane_step_options();
    Trainer t(m, d, o);
    CHECK(t.validate().metric == Approx(want.bits_per_sample()).epsilon(1e-6));
    const StepStats st = t.step();  // the loss of the forward before the update
    CHECK(st.loss == Approx(want.bits_per_sample()).epsilon(1e-5));
}

// Self-feed (TrainOptions::self_feed): the draws, then the step's loss worked out from the model
// fed its own draws against the clean targets, with validation still clean.
TEST_CASE("self-feed draws replace a class at its chance, from the model's prediction, and repeat", "[train]") {
    // a prediction over four classes: 0.1, 0.2, 0.3, 0.4
    const float logits[4] = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
    const int64_t n = 40000;
    std::vector<int64_t> count(4, 0);
    int64_t repeated = 0, by_seed = 0, by_step = 0, by_lane = 0;
    for (int64_t pos = 0; pos < n; ++pos) {
        const int32_t c = self_fed_class(7, logits, 4, 1.0, 1, 5, 2, pos);  // 7: no class of the four
        REQUIRE((c >= 0 && c < 4));
        ++count[size_t(c)];
        repeated += self_fed_class(7, logits, 4, 1.0, 1, 5, 2, pos) == c;  // a function of its arguments
        by_seed += self_fed_class(7, logits, 4, 1.0, 2, 5, 2, pos) != c;
        by_step += self_fed_class(7, logits, 4, 1.0, 1, 6, 2, pos) != c;
        by_lane += self_fed_class(7, logits, 4, 1.0, 1, 5, 3, pos) != c;
    }
    CHECK(repeated == n);
    for (int k = 0; k < 4; ++k) CHECK(double(count[size_t(k)]) / n == Approx(0.1 * (k + 1)).margin(0.01));
    // two independent draws differ with chance 1 - Σ p² = 0.70
    for (int64_t d : {by_seed, by_step, by_lane}) CHECK(double(d) / n == Approx(0.70).margin(0.02));
    // at chance 0.3 about 30% of the places take a draw; at 0 none does
    int64_t replaced = 0, replaced_at_zero = 0;
    for (int64_t pos = 0; pos < n; ++pos) {
        replaced += self_fed_class(7, logits, 4, 0.3, 1, 0, 0, pos) != 7;
        replaced_at_zero += self_fed_class(7, logits, 4, 0.0, 1, 0, 0, pos) != 7;
    }
    CHECK(double(replaced) / n == Approx(0.3).margin(0.01));
    CHECK(replaced_at_zero == 0);
    // a prediction certain of one class gives that class
    const float sure[4] = {-40.0f, 30.0f, -40.0f, 0.0f};
    for (int64_t pos = 0; pos < 100; ++pos) CHECK(self_fed_class(7, sure, 4, 1.0, 3, 1, 1, pos) == 1);
}

// The GPU draws with draw_class(..., nullptr), computing each exponential again in its second
// pass; the host keeps them in scratch. Both must pick the same class for every u, including u
// that fall exactly on a class boundary of the cumulative mass, and the class must be the first
// whose cumulative mass passes u·total.
TEST_CASE("self-feed's draw picks the same class with and without its scratch, the first past u", "[train]") {
    std::mt19937 rng(31);
    std::normal_distribution<float> logit(0.0f, 3.0f);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    std::vector<float> l(256);
    std::vector<double> scratch(256);
    int64_t same = 0, first_past = 0, trials = 0;
    for (int row = 0; row < 200; ++row) {
        for (float& x : l) x = logit(rng);
        if (row % 10 == 0) l[size_t(row % 256)] = 60.0f;  // a row certain of one class
        float m = l[0];
        for (float x : l) m = std::max(m, x);
        std::vector<double> cum(256);
        double total = 0;
        for (int v = 0; v < 256; ++v) cum[size_t(v)] = total += std::exp(double(l[size_t(v)] - m));
        std::vector<double> us;
        for (int k = 0; k < 50; ++k) us.push_back(uni(rng));
        for (int v : {0, 17, 128, 254})  // on a boundary (u stays below 1, as self_feed_coin's does)
            if (cum[size_t(v)] < total) us.push_back(cum[size_t(v)] / total);
        us.push_back(0.0);
        us.push_back(std::nextafter(1.0, 0.0));
        for (double u : us) {
            ++trials;
            const int32_t a = draw_class(l.data(), 256, u, scratch.data()), b = draw_class(l.data(), 256, u, nullptr);
            same += a == b;
            const double target = u * total;
            first_past += cum[size_t(a)] > target && (a == 0 || cum[size_t(a - 1)] <= target);
        }
    }
    CHECK(same == trials);
    CHECK(first_past == trials);
}

TEST_CASE("self-feed: the step's loss is the model's on its own draws against the clean targets", "[train]") {
    const Model m = test::random_model(IoKind::mulaw8, 8, 2, 8, 47);
    const TokenSequence s = prefixed_walk();
    const int64_t L = int64_t(s.tokens.size()) - 1;
    TrainOptions o = one_lane_step_options();
    o.self_feed = 0.5;
    Model labelled = m;
    labelled.mutable_config().labels = {"5", "6"};
    labelled.mutable_config().label_prefix = 12;
    // what the one lane (lane 0, step 0, the clip from its start) is fed: the prefix as it is,
    // then at each place, at chance 0.5, a draw from the prediction the clean history gives
    std::vector<float> clean_logits(size_t(L) * 256), logits(size_t(L) * 256);
    TokenForward(labelled, 1).run(s.tokens.data(), L, clean_logits.data());
    std::vector<int32_t> fed = s.tokens;
    int replaced = 0;
    for (int64_t i = 12; i < L; ++i) {
        fed[size_t(i)] = self_fed_class(s.tokens[size_t(i)], clean_logits.data() + (i - 1) * 256, 256, 0.5, o.seed,
                                        0, 0, i);
        replaced += fed[size_t(i)] != s.tokens[size_t(i)];
    }
    REQUIRE(replaced > L / 4);  // a random model's draws are far from the walk's classes
    TokenForward(labelled, 1).run(fed.data(), L, logits.data());
    const NllSums want = cross_entropy(logits.data(), s.tokens.data() + 1, L, 256, 11, nullptr, 1.0);
    const NllSums clean = cross_entropy(clean_logits.data(), s.tokens.data() + 1, L, 256, 11, nullptr, 1.0);
    // (the draws show: far above the tolerance below)
    REQUIRE(std::fabs(want.bits_per_sample() - clean.bits_per_sample()) > 1e-3);
    TrainData d;
    d.token_train.push_back(s);
    d.token_val.push_back(s);
    Trainer t(labelled, d, o);
    CHECK(t.validate().metric == Approx(clean.bits_per_sample()).epsilon(1e-6));  // validation is clean
    const StepStats st = t.step();
    CHECK(st.loss == Approx(want.bits_per_sample()).epsilon(1e-5));

    // A checkpoint keeps the option: stopped after one step and resumed, the same run as one
    // without a stop (and not the same once the checkpoint's options lose it).
    o.steps = 3;
    Trainer whole(labelled, d, o);
    for (int i = 0; i < 3; ++i) whole.step();
    test::TempDir dir;
    {
        Trainer first(labelled, d, o);
        first.step();
        first.save_checkpoint(dir.path.string());
    }
    const int64_t P = labelled.parameter_count();
    auto weights = [P](const Trainer& x) { return std::vector<float>(x.model().data(), x.model().data() + P); };
    auto resumed = Trainer::resume(dir.path.string(), d, 0, 1);
    for (int i = 1; i < 3; ++i) resumed->step();
    CHECK(weights(*resumed) == weights(whole));
    const std::string ckpt = dir.file("trainer.safetensors");
    nlohmann::json meta = checkpoint_meta(ckpt);
    REQUIRE(meta.at("options").at("self_feed").get<double>() == 0.5);
    meta["options"]["self_feed"] = 0.0;
    rewrite_checkpoint_meta(ckpt, meta.dump());
    auto clean_resume = Trainer::resume(dir.path.string(), d, 0, 1);
    for (int i = 1; i < 3; ++i) clean_resume->step();
    CHECK(weights(*clean_resume) != weights(whole));

    // and an effect refuses it
    TrainOptions oe = exact_options(true);
    oe.self_feed = 0.2;
    TrainData de;
    de.effect_train.push_back({"x", std::vector<float>(600, 0.1f), std::vector<float>(600, 0.1f), {}});
    de.effect_val = de.effect_train;
    CHECK_THROWS_WITH(Trainer(test::random_model(IoKind::continuous, 8, 2, 8, 47), de, oe),
                      Catch::Contains("self-feed is for generators"));
}

// TrainOptions::self_feed_ramp: the chance from 0 at the first step to P at the ramp's end, in a
// straight line; a run's step at its midpoint is the step of a run at half the chance.
TEST_CASE("a self-feed ramp raises the chance from 0 in a straight line, and a checkpoint keeps it", "[train]") {
    TrainOptions o = one_lane_step_options();
    o.self_feed = 0.4;
    CHECK(self_feed_chance(o, 0) == 0.4);  // no ramp: P from the first step
    o.self_feed_ramp = 100;
    CHECK(self_feed_chance(o, 0) == 0.0);
    CHECK(self_feed_chance(o, 25) == Approx(0.1));
    CHECK(self_feed_chance(o, 50) == Approx(0.2));
    CHECK(self_feed_chance(o, 100) == 0.4);
    CHECK(self_feed_chance(o, 5000) == 0.4);

    Model m = test::random_model(IoKind::mulaw8, 8, 2, 8, 47);
    m.mutable_config().labels = {"5", "6"};
    m.mutable_config().label_prefix = 12;
    TrainData d;
    d.token_train.push_back(prefixed_walk());
    d.token_val = d.token_train;
    const int64_t P = m.parameter_count();
    auto weights = [P](const Trainer& x) { return std::vector<float>(x.model().data(), x.model().data() + P); };
    // P = 1 over a ramp of 2 steps: chance 0 at step 0, 0.5 at step 1
    TrainOptions ramped = one_lane_step_options();
    ramped.steps = 2;
    ramped.self_feed = 1.0;
    ramped.self_feed_ramp = 2;
    TrainOptions clean = ramped;
    clean.self_feed = 0;
    clean.self_feed_ramp = 0;
    Trainer a(m, d, ramped), c(m, d, clean);
    a.step();
    c.step();
    CHECK(weights(a) == weights(c));  // step 0: nothing replaced
    a.step();
    // step 1 at chance 0.5: a clean first step, then one at 0.5, through a checkpoint whose
    // options are rewritten between them
    test::TempDir dir;
    {
        Trainer first(m, d, clean);
        first.step();
        first.save_checkpoint(dir.path.string());
    }
    const std::string ckpt = dir.file("trainer.safetensors");
    nlohmann::json meta = checkpoint_meta(ckpt);
    meta["options"]["self_feed"] = 0.5;
    rewrite_checkpoint_meta(ckpt, meta.dump());
    auto half = Trainer::resume(dir.path.string(), d, 0, 1);
    half->step();
    CHECK(weights(*half) == weights(a));
    c.step();
    CHECK(weights(c) != weights(a));  // (the draws showed)

    // a checkpoint keeps the ramp: resumed after one step, the same run as a without a stop
    {
        Trainer first(m, d, ramped);
        first.step();
        first.save_checkpoint(dir.path.string());
    }
    REQUIRE(checkpoint_meta(ckpt).at("options").at("self_feed_ramp").get<int64_t>() == 2);
    auto resumed = Trainer::resume(dir.path.string(), d, 0, 1);
    resumed->step();
    CHECK(weights(*resumed) == weights(a));

    // a ramp without a chance to raise is refused
    TrainOptions bad = clean;
    bad.self_feed_ramp = 10;
    CHECK_THROWS_WITH(Trainer(m, d, bad), Catch::Contains("self-feed ramp needs a self-feed chance"));
}

TEST_CASE("label dropout feeds some clips the null label's prefix, and a checkpoint keeps which", "[train]") {
    // Two labels (tokens 0 and 1), a null label (token 2) that no clip holds; embeddings untied,
    // so token 2's embedding row learns only when the null prefix is fed.
    ModelConfig c = test::random_model(IoKind::mulaw8, 8, 2, 8, 48).config();
    c.tie_embeddings = false;
    c.labels = {"a", "b"};
    c.label_prefix = 24;
    Model m(c);
    m.init_random(48);
    TrainData d;
    std::mt19937 rng(4);
    for (int k = 0; k < 6; ++k) {
        TokenSequence s;
        s.name = std::to_string(k);
        s.tokens.assign(24, k % 2);
        for (int32_t v = 128, t = 0; t < 200; ++t) s.tokens.push_back(v = std::clamp(v + int32_t(rng() % 9) - 4, 40, 215));
        s.unscored = 23;
        (k < 4 ? d.token_train : d.token_val).push_back(s);
    }
    TrainOptions o = exact_options(false);
    o.batch = 4;
    o.segment = 16;  // a lane's first two segments hold the prefix: the second one after a resume
    o.steps = 6;
    o.lr_warmup_steps = 0;
    o.adam.weight_decay = 0;
    const int D = c.d_model;
    auto null_row = [&](const Model& x) {
        const float* e = x.view().embed_w + 2 * D;
        return std::vector<float>(e, e + D);
    };
    const std::vector<float> before = null_row(m);

    // Without dropout token 2 is never fed: its row stays as it was, bit for bit.
    {
        Model plain = m;
        Trainer t(plain, d, o);
        for (int i = 0; i < 6; ++i) t.step();
        CHECK(null_row(t.model()) == before);
        // and dropout needs the model to say it has a null label
        TrainOptions od = o;
        od.label_dropout = 0.5;
        CHECK_THROWS_WITH(Trainer(plain, d, od), Catch::Contains("null label"));
    }
    m.mutable_config().label_null = true;
    o.label_dropout = 0.5;
    Trainer whole(m, d, o);
    for (int i = 0; i < 6; ++i) whole.step();
    CHECK(test::max_abs_diff(null_row(whole.model()), before) > 1e-4);  // the null prefix was fed

    // Stopped after one step (every lane in its clip's prefix still) and resumed: the same run.
    test::TempDir dir;
    {
        Trainer first(m, d, o);
        first.step();
        first.save_checkpoint(dir.path.string());
    }
    auto resumed = Trainer::resume(dir.path.string(), d, 0, 1);
    for (int i = 1; i < 6; ++i) resumed->step();
    const int64_t P = m.parameter_count();
    CHECK(std::vector<float>(resumed->model().data(), resumed->model().data() + P) ==
          std::vector<float>(whole.model().data(), whole.model().data() + P));
    // (a checkpoint that lost the lanes' null flags would feed their second segment label
    // prefixes instead and part from the whole run: checked by clearing them)
    const std::string ckpt = dir.file("trainer.safetensors");
    nlohmann::json meta = checkpoint_meta(ckpt);
    int flagged = 0;
    for (auto& lane : meta.at("lanes")) {
        flagged += lane.at("null_label").get<bool>() ? 1 : 0;
        lane["null_label"] = false;
    }
    REQUIRE(flagged > 0);
    rewrite_checkpoint_meta(ckpt, meta.dump());
    auto cleared = Trainer::resume(dir.path.string(), d, 0, 1);
    for (int i = 1; i < 6; ++i) cleared->step();
    CHECK(std::vector<float>(cleared->model().data(), cleared->model().data() + P) !=
          std::vector<float>(whole.model().data(), whole.model().data() + P));
}

// The GPU trainer's tests run where a CUDA device is; elsewhere they say so and pass.
static bool gpu_present() {
    if (cuda_available()) return true;
    WARN("no CUDA device: the GPU trainer's test skipped");
    return false;
}

// Effect pairs of uneven length, 2300 and 1500 samples.
static TrainData uneven_pairs() {
    TrainData d = loud_and_quiet(2300);
    d.effect_train[1].input.resize(1500);
    d.effect_train[1].target.resize(1500);
    return d;
}

// `steps` steps of the same run on the CPU and on the GPU, side by side: the losses agree within
// float rounding at the first step and drift apart by the weights' rounding after it.
static void step_side_by_side(Trainer& cpu, Trainer& gpu, int steps) {
    for (int i = 0; i < steps; ++i) {
        const StepStats a = cpu.step(), b = gpu.step();
        INFO("step " << i + 1 << ": CPU loss " << a.loss << ", GPU loss " << b.loss);
        CHECK(b.loss == Approx(a.loss).epsilon(i == 0 ? 1e-5 : 1e-3));
        CHECK(b.samples == a.samples);
    }
}

TEST_CASE("training on the GPU follows training on the CPU and resumes exactly (requires a GPU)", "[train][cuda]") {
    if (!gpu_present()) return;
    // Sequences of uneven length (segments of 512), so lanes reach their ends at different steps
    // and the GPU batch pads its short lanes.
    const TrainData d = uneven_pairs();
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 41, 1, false);
    auto options = [](Device device) {
        TrainOptions o = exact_options(false);
        o.batch = 3;
        o.segment = 512;
        o.warmup = 100;
        o.steps = 12;
        o.device = device;
        return o;
    };
    Trainer cpu(m, d, options(Device::cpu)), gpu(m, d, options(Device::cuda));
    step_side_by_side(cpu, gpu, 12);
    const int64_t P = m.parameter_count();
    const std::vector<float> wc(cpu.model().data(), cpu.model().data() + P);
    const std::vector<float> wg(gpu.model().data(), gpu.model().data() + P);
    CHECK(test::rel_error(wg, wc) < 1e-3);
    CHECK(gpu.validate().metric == Approx(cpu.validate().metric).epsilon(1e-3));

    // Stop after 5 steps, resume on the GPU: the same weights as the 12 steps in one go, bit for bit.
    test::TempDir dir;
    {
        Trainer first(m, d, options(Device::cuda));
        for (int i = 0; i < 5; ++i) first.step();
        first.save_checkpoint(dir.path.string());
    }
    auto resumed = Trainer::resume(dir.path.string(), d, 12, 1, Device::cuda);
    for (int i = 5; i < 12; ++i) resumed->step();
    const std::vector<float> wr(resumed->model().data(), resumed->model().data() + P);
    CHECK(wr == wg);
}

// The STFT term on the GPU (cuFFT over the whole batch, kernels/cuda/stft_cuda.h) trains as the
// CPU's (model/losses.cpp, lane by lane): lanes of uneven length, a warm-up, balanced lanes.
TEST_CASE("an effect trains with the STFT term on the GPU as on the CPU (requires a GPU)", "[train][cuda]") {
    if (!gpu_present()) return;
    const TrainData d = uneven_pairs();
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 42, 1, false);
    auto options = [](Device device, double weight) {
        TrainOptions o = exact_options(true);
        o.batch = 3;
        o.segment = 1024;
        o.warmup = 100;
        o.steps = 8;
        o.stft_weight = weight;
        o.device = device;
        return o;
    };
    Trainer cpu(m, d, options(Device::cpu, 0.5)), gpu(m, d, options(Device::cuda, 0.5));
    Trainer plain(m, d, options(Device::cuda, 0));
    const StepStats first_plain = plain.step();
    const StepStats first_cpu = cpu.step(), first_gpu = gpu.step();
    CHECK(first_gpu.loss == Approx(first_cpu.loss).epsilon(1e-5));
    CHECK(first_gpu.loss > first_plain.loss + 0.01);  // the term is there
    step_side_by_side(cpu, gpu, 7);
    const int64_t P = m.parameter_count();
    const std::vector<float> wc(cpu.model().data(), cpu.model().data() + P);
    const std::vector<float> wg(gpu.model().data(), gpu.model().data() + P);
    CHECK(test::rel_error(wg, wc) < 1e-3);
}

// A flat generator and a pooled one (model/pooled.h: one training tape per stack on the GPU,
// lanes padded to whole pooling periods there).
TEST_CASE("a generator trains on the GPU (cross-entropy there) as on the CPU (requires a GPU)", "[train][cuda]") {
    if (!gpu_present()) return;
    TrainData d;
    std::mt19937 rng(5);
    for (int64_t len : {1300, 900, 2100}) {  // uneven: lanes end at different steps
        TokenSequence s;
        s.name = "clip" + std::to_string(len);
        int32_t v = 128;
        for (int64_t t = 0; t < len; ++t) {  // a random walk: learnable
            v = std::clamp(v + int32_t(rng() % 7) - 3, 0, 255);
            s.tokens.push_back(v);
        }
        d.token_train.push_back(s);
        d.token_val.push_back(s);
    }
    ModelConfig pc = make_config(IoKind::mulaw8, 8, 5, 8);  // pools 2 and 4: 5 stacks of one layer
    pc.pool = {2, 4};
    Model pooled(pc);
    pooled.init_random(44);
    for (const Model& m : {test::random_model(IoKind::mulaw8, 8, 2, 8, 43), pooled}) {
        const bool is_pooled = m.config().pooled();
        INFO((is_pooled ? "pooled model" : "flat model"));
        auto options = [](Device device) {
            TrainOptions o = exact_options(false);
            o.batch = 3;
            o.segment = 512;
            o.steps = 10;
            o.lr_warmup_steps = 0;  // the default 100-step ramp would leave 10 steps nearly still
            o.adam.lr = 1e-2;
            o.device = device;
            return o;
        };
        Trainer cpu(m, d, options(Device::cpu)), gpu(m, d, options(Device::cuda));
        // Learning is judged on the fixed validation clips: two training steps see different crops,
        // so their losses differ by more than 10 small steps change the model.
        const double before = gpu.validate().metric;
        CHECK(before == Approx(cpu.validate().metric).epsilon(1e-5));
        step_side_by_side(cpu, gpu, 10);
        const double after = gpu.validate().metric;
        INFO("validation bits per sample: " << before << " before, " << after << " after 10 steps");
        CHECK(after < before - 0.1);
        CHECK(after == Approx(cpu.validate().metric).epsilon(1e-3));
    }
}

// Label dropout on the GPU (TrainOptions::label_dropout): the lanes' tokens, the null prefix
// swapped in where the draw says so, reach the GPU tapes as they reach the CPU ones.
TEST_CASE("label dropout trains on the GPU as on the CPU, flat and pooled (requires a GPU)", "[train][cuda]") {
    if (!gpu_present()) return;
    TrainData d;
    std::mt19937 rng(6);
    for (int k = 0; k < 8; ++k) {  // labels 0 and 1 (tokens 0, 1), each its own walk's range
        TokenSequence s;
        s.name = std::to_string(k);
        s.tokens.assign(16, k % 2);
        for (int32_t v = 128, t = 0; t < 600 + 37 * k; ++t)
            s.tokens.push_back(v = std::clamp(v + int32_t(rng() % 9) - 4, k % 2 ? 130 : 40, k % 2 ? 215 : 125));
        s.unscored = 15;
        (k < 6 ? d.token_train : d.token_val).push_back(s);
    }
    ModelConfig fc = make_config(IoKind::mulaw8, 8, 2, 8);
    ModelConfig pc = make_config(IoKind::mulaw8, 8, 3, 8);  // pool 4: 3 stacks of one layer
    pc.pool = {4};
    for (ModelConfig c : {fc, pc}) {
        c.tie_embeddings = false;  // the null token's row learns only from the null prefix
        c.labels = {"a", "b"};
        c.label_prefix = 16;
        c.label_null = true;
        Model m(c);
        m.init_random(46);
        INFO((c.pooled() ? "pooled model" : "flat model"));
        auto options = [](Device device) {
            TrainOptions o = exact_options(false);
            o.batch = 4;
            o.segment = 64;
            o.steps = 12;
            o.lr_warmup_steps = 0;
            o.adam.lr = 1e-2;
            o.adam.weight_decay = 0;
            o.label_dropout = 0.5;
            o.device = device;
            return o;
        };
        Trainer cpu(m, d, options(Device::cpu)), gpu(m, d, options(Device::cuda));
        step_side_by_side(cpu, gpu, 12);
        const int D = c.d_model;
        const float* before = m.tensor("backbone.embeddings.weight") + 2 * D;
        const float* on_cpu = cpu.model().tensor("backbone.embeddings.weight") + 2 * D;
        const float* on_gpu = gpu.model().tensor("backbone.embeddings.weight") + 2 * D;
        const std::vector<float> b0(before, before + D), rc(on_cpu, on_cpu + D), rg(on_gpu, on_gpu + D);
        CHECK(test::max_abs_diff(rg, b0) > 1e-3);  // the null prefix reached the GPU's lanes
        CHECK(test::max_abs_diff(rg, rc) < 1e-3);  // and it learnt there what it learnt on the CPU
        CHECK(gpu.validate().metric == Approx(cpu.validate().metric).epsilon(1e-3));
    }
}

// Self-feed on the GPU (TrainOptions::self_feed): the first forward's logits come back from the
// GPU tape, the lanes draw from them, and the drawn classes go up for the trained forward. The
// GPU's logits differ from the CPU's in their last bits, which can move a rare draw across a
// class boundary, so the losses are compared at 1e-3 (one moved class of the ~250 drawn moves
// the loss by well under that), and the draws must be seen to change the loss.
TEST_CASE("self-feed trains on the GPU as on the CPU, flat and pooled (requires a GPU)", "[train][cuda]") {
    if (!gpu_present()) return;
    TrainData d;
    std::mt19937 rng(12);
    for (int k = 0; k < 8; ++k) {
        TokenSequence s;
        s.name = std::to_string(k);
        for (int32_t v = 128, t = 0; t < 700 + 29 * k; ++t) s.tokens.push_back(v = std::clamp(v + int32_t(rng() % 9) - 4, 0, 255));
        (k < 6 ? d.token_train : d.token_val).push_back(s);
    }
    ModelConfig fc = make_config(IoKind::mulaw8, 8, 2, 8);
    ModelConfig pc = make_config(IoKind::mulaw8, 8, 3, 8);  // pool 4: 3 stacks of one layer
    pc.pool = {4};
    for (const ModelConfig& c : {fc, pc}) {
        Model m(c);
        m.init_random(48);
        INFO((c.pooled() ? "pooled model" : "flat model"));
        auto options = [](Device device, double self_feed) {
            TrainOptions o = exact_options(false);
            o.batch = 4;
            o.segment = 64;
            o.steps = 8;
            o.lr_warmup_steps = 0;
            o.adam.lr = 1e-2;
            o.adam.weight_decay = 0;
            o.self_feed = self_feed;
            o.device = device;
            return o;
        };
        Trainer cpu(m, d, options(Device::cpu, 0.5)), gpu(m, d, options(Device::cuda, 0.5)),
            plain(m, d, options(Device::cuda, 0.0));
        for (int i = 0; i < 8; ++i) {
            const StepStats a = cpu.step(), b = gpu.step(), p = plain.step();
            INFO("step " << i + 1 << ": CPU loss " << a.loss << ", GPU loss " << b.loss << ", GPU unfed " << p.loss);
            CHECK(b.loss == Approx(a.loss).epsilon(1e-3));
            if (i == 0) CHECK(std::fabs(b.loss - p.loss) > 1e-2);  // the draws reached the GPU's lanes
        }
        CHECK(gpu.validate().metric == Approx(cpu.validate().metric).epsilon(1e-3));
    }
}

// ---- data parallel (model/comm.h) ------------------------------------------------------------

namespace {
struct RunResult {
    std::vector<float> weights;
    std::vector<double> losses;
    double val = 0;
    bool stopped_together = true;
};

// `steps` steps of a run split over `ranks` threads of one process (ranks = 1: no group at all).
// Rank `stopper` asks to stop at the last step; every rank must see it.
RunResult run_ranks(const Model& m, const TrainData& d, TrainOptions o, int ranks, int steps, int stopper = -1) {
    std::vector<RunResult> out(static_cast<size_t>(ranks));
    auto body = [&](int r, std::shared_ptr<Communicator> comm) {
        TrainOptions ro = o;
        ro.comm = std::move(comm);
        Trainer t(m, d, ro);
        RunResult& res = out[size_t(r)];
        for (int i = 0; i < steps; ++i) {
            const StepStats s = t.step(r == stopper && i == steps - 1);
            res.losses.push_back(s.loss);
            if (s.stop != (stopper >= 0 && i == steps - 1)) res.stopped_together = false;
        }
        res.val = t.validate().metric;
        res.weights.assign(t.model().data(), t.model().data() + t.model().parameter_count());
    };
    if (ranks == 1) {
        body(0, nullptr);
    } else {
        const auto group = make_local_group(ranks);
        std::vector<std::thread> threads;
        for (int r = 0; r < ranks; ++r) threads.emplace_back(body, r, group[size_t(r)]);
        for (auto& th : threads) th.join();
        for (int r = 1; r < ranks; ++r) {  // every rank ends with the same model and figures, bit for bit
            CHECK(out[size_t(r)].weights == out[0].weights);
            CHECK(out[size_t(r)].losses == out[0].losses);
            CHECK(out[size_t(r)].val == out[0].val);
            CHECK(out[size_t(r)].stopped_together);
        }
    }
    return out[0];
}

// Exact options (one thread) without the learning-rate ramp, for short data-parallel runs.
TrainOptions parallel_options(bool balanced, int batch, int64_t segment) {
    TrainOptions o = exact_options(balanced);
    o.batch = batch;
    o.segment = segment;
    o.lr_warmup_steps = 0;
    return o;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - double(b[i])));
    return worst;
}
} // namespace

TEST_CASE("data-parallel ranks train as one process with the same global batch", "[train][parallel]") {
    const bool balanced = GENERATE(false, true);
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 31, 1, false);
    const TrainData d = loud_and_quiet(3000);
    TrainOptions o = parallel_options(balanced, 5, 700);  // batch 5: uneven over 2 and 3 ranks
    o.tbptt_segments = 2;
    const RunResult one = run_ranks(m, d, o, 1, 6);
    for (int ranks : {2, 3}) {
        INFO((balanced ? "balanced" : "pooled") << " ESR, " << ranks << " ranks");
        const RunResult many = run_ranks(m, d, o, ranks, 6, ranks - 1);
        CHECK(many.stopped_together);
        REQUIRE(many.losses.size() == one.losses.size());
        // The first step's loss is the same sums in another order; later ones follow the
        // weights, which differ by float rounding of the gradient's sum.
        CHECK(many.losses[0] == Approx(one.losses[0]).epsilon(1e-12));
        for (size_t i = 1; i < one.losses.size(); ++i) CHECK(many.losses[i] == Approx(one.losses[i]).epsilon(1e-4));
        CHECK(max_abs_diff(many.weights, one.weights) < 1e-4);
        CHECK(many.val == Approx(one.val).epsilon(1e-4));
        // and the run moved: an unchanged model would pass the checks above too
        CHECK(max_abs_diff(one.weights, std::vector<float>(m.data(), m.data() + m.parameter_count())) > 1e-3);
    }
}

TEST_CASE("data-parallel generator training (cross-entropy) matches one process", "[train][parallel]") {
    TrainData d;
    std::mt19937 rng(8);
    for (int64_t len : {700, 1100, 500}) {
        TokenSequence s;
        s.name = "walk" + std::to_string(len);
        int32_t v = 100;
        for (int64_t t = 0; t < len; ++t) {
            v = std::clamp(v + int32_t(rng() % 5) - 2, 0, 255);
            s.tokens.push_back(v);
        }
        d.token_train.push_back(s);
        d.token_val.push_back(s);
    }
    const Model m = test::random_model(IoKind::mulaw8, 8, 2, 8, 44);
    const TrainOptions o = parallel_options(false, 4, 256);
    const RunResult one = run_ranks(m, d, o, 1, 5);
    const RunResult two = run_ranks(m, d, o, 2, 5);
    CHECK(two.losses[0] == Approx(one.losses[0]).epsilon(1e-12));
    CHECK(two.losses.back() == Approx(one.losses.back()).epsilon(1e-4));
    CHECK(max_abs_diff(two.weights, one.weights) < 1e-4);
    CHECK(two.val == Approx(one.val).epsilon(1e-5));
    // with self-feed: each rank draws its lanes' classes as one process draws them
    TrainOptions fed = o;
    fed.self_feed = 0.3;
    const RunResult one_fed = run_ranks(m, d, fed, 1, 5);
    const RunResult two_fed = run_ranks(m, d, fed, 2, 5);
    CHECK(std::fabs(one_fed.losses[0] - one.losses[0]) > 1e-6);  // the draws are fed
    CHECK(two_fed.losses[0] == Approx(one_fed.losses[0]).epsilon(1e-12));
    CHECK(max_abs_diff(two_fed.weights, one_fed.weights) < 1e-4);
}

TEST_CASE("a data-parallel checkpoint holds every lane's state and resumes in one process", "[train][parallel]") {
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 33, 1, false);
    const TrainData d = loud_and_quiet(3000);
    TrainOptions o = parallel_options(false, 4, 500);
    o.tbptt_segments = 3;
    test::TempDir single_dir, parallel_dir;
    {
        Trainer t(m, d, o);
        for (int i = 0; i < 3; ++i) t.step();
        t.save_checkpoint(single_dir.path.string());
    }
    {
        const auto group = make_local_group(2);
        std::vector<std::thread> threads;
        for (int r = 0; r < 2; ++r)
            threads.emplace_back([&, r] {
                TrainOptions ro = o;
                ro.comm = group[size_t(r)];
                Trainer t(m, d, ro);
                for (int i = 0; i < 3; ++i) t.step();
                t.save_checkpoint(parallel_dir.path.string());  // only rank 0 writes
            });
        for (auto& th : threads) th.join();
    }
    // Both continue in one process: the lanes' states came back from both ranks (a lost half
    // would restart those lanes from zero and the runs would part by far more than rounding).
    auto a = Trainer::resume(single_dir.path.string(), d, 0, 1);
    auto b = Trainer::resume(parallel_dir.path.string(), d, 0, 1);
    for (int i = 0; i < 2; ++i) {
        const double la = a->step().loss, lb = b->step().loss;
        CHECK(lb == Approx(la).epsilon(1e-4));
    }
    const std::vector<float> wa(a->model().data(), a->model().data() + a->model().parameter_count());
    const std::vector<float> wb(b->model().data(), b->model().data() + b->model().parameter_count());
    CHECK(max_abs_diff(wa, wb) < 1e-4);
}

TEST_CASE("data parallelism refuses a batch smaller than the group", "[train][parallel]") {
    const Model m = test::random_model(IoKind::continuous, 8, 1, 8, 35, 1, false);
    TrainOptions o = exact_options(false);
    o.batch = 2;
    o.comm = make_local_group(3)[0];
    CHECK_THROWS_WITH(Trainer(m, loud_and_quiet(1000), o), Catch::Contains("batch 2") && Catch::Contains("3 data-parallel ranks"));
}

TEST_CASE("data-parallel ranks on the GPU train as one GPU (two ranks sharing it) (requires a GPU)", "[train][cuda][parallel]") {
    if (!gpu_present()) return;
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 37, 1, false);
    const TrainData d = loud_and_quiet(3000);
    TrainOptions o = parallel_options(true, 5, 700);
    o.device = Device::cuda;
    const RunResult one = run_ranks(m, d, o, 1, 5);
    const RunResult two = run_ranks(m, d, o, 2, 5, 0);  // each rank's lanes through its own tape
    CHECK(two.stopped_together);
    CHECK(two.losses[0] == Approx(one.losses[0]).epsilon(1e-6));
    CHECK(two.losses.back() == Approx(one.losses.back()).epsilon(1e-4));
    CHECK(max_abs_diff(two.weights, one.weights) < 1e-4);
    CHECK(two.val == Approx(one.val).epsilon(1e-4));
}

TEST_CASE("a damaged checkpoint is refused with its file named, before it sizes anything", "[train]") {
    const Model m = test::random_model(IoKind::continuous, 8, 2, 8, 35, 1, false);
    const TrainData d = loud_and_quiet(3000);
    test::TempDir dir;
    {
        Trainer t(m, d, parallel_options(false, 4, 500));
        for (int i = 0; i < 2; ++i) t.step();
        t.save_checkpoint(dir.path.string());
    }
    const std::string path = dir.file("trainer.safetensors");
    const nlohmann::json meta = checkpoint_meta(path);
    // the same tensors under other metadata
    auto rewrite = [&](const std::string& new_meta) { rewrite_checkpoint_meta(path, new_meta); };
    auto refused = [&](const std::string& words) {
        try {
            Trainer::resume(dir.path.string(), d, 0, 1);
            FAIL("a damaged checkpoint was resumed; expected an error containing '" << words << "'");
        } catch (const std::runtime_error& e) {
            INFO(e.what());
            CHECK(std::string(e.what()).find(path) != std::string::npos);
            CHECK(std::string(e.what()).find(words) != std::string::npos);
        }
    };
    SECTION("the metadata is not JSON") {
        rewrite(meta.dump().substr(0, 40));
        refused("damaged");
    }
    // one damage to the metadata each, and the words the refusal must hold
    const std::vector<std::tuple<const char*, std::function<void(nlohmann::json&)>, const char*>> damages = {
        {"a field is missing", [](nlohmann::json& j) { j.erase("adam_steps"); }, "damaged"},
        {"a field has the wrong type", [](nlohmann::json& j) { j["step"] = "two"; }, "damaged"},
        {"a lane points outside the training data", [](nlohmann::json& j) { j["lanes"][1]["seq"] = 999; },
         "outside the training data"},
        {"a batch that does not match the lanes' states (refused before it allocates them)",
         [](nlohmann::json& j) { j["options"]["batch"] = 1000000000; }, "does not match"},
        {"the random stream is garbage", [](nlohmann::json& j) { j["rng"] = "not numbers"; }, "random stream"},
    };
    for (const auto& [what, damage, words] : damages) {
        SECTION(what) {
            nlohmann::json j = meta;
            damage(j);
            rewrite(j.dump());
            refused(words);
        }
    }
    SECTION("rewritten intact, it resumes and steps") {
        rewrite(meta.dump());
        auto t = Trainer::resume(dir.path.string(), d, 0, 1);
        CHECK(std::isfinite(t->step().loss));
    }
}

// MW_PROFILE_STEPS=FIRST:LAST (scripts/device_profile_train.sh): the steps a profiler records on
// cuda. Unset or empty: none; a malformed value: an error naming the variable and the value.
TEST_CASE("MW_PROFILE_STEPS reads FIRST:LAST and refuses anything else by name", "[train]") {
    using Steps = std::pair<int64_t, int64_t>;
    CHECK(parse_profile_steps(nullptr) == Steps{0, 0});
    CHECK(parse_profile_steps("") == Steps{0, 0});
    CHECK(parse_profile_steps("21:22") == Steps{21, 22});
    CHECK(parse_profile_steps("1:1") == Steps{1, 1});
    for (const char* bad : {"21", "0:3", "5:4", "a:b", "3:", ":3", "2:3x", "-1:2", "1:2:3", " 1:2"})
        CHECK_THROWS_WITH(parse_profile_steps(bad),
                          Catch::Contains("MW_PROFILE_STEPS") && Catch::Contains(std::string("\"") + bad + "\""));
}
