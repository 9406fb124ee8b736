// The real-time engine (dsp/realtime.h) and its resampler (dsp/resampler.h): agreement with the
// offline engine, the real-time rules (no allocation, denormals, NaN), model hand-over under
// load, exact latency, and the resampler's measured quality.
#include "alloc_trap.h"
#include "test_util.h"

#include "dsp/denormals.h"
#include "dsp/mulaw.h"
#include "dsp/realtime.h"
#include "dsp/resampler.h"
#include "model/engine.h"
#include "model/pooled.h"
#include "model/sampling.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <thread>
#include <vector>

using namespace mw;
using mw::dsp::RealtimeModelPtr;

namespace {

constexpr double kPi = 3.14159265358979323846;

using Planar = std::vector<std::vector<float>>;  // [channels][frames]

Planar random_audio(int channels, int64_t frames, uint64_t seed, float level = 0.5f) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-level, level);
    Planar a(static_cast<size_t>(channels), std::vector<float>(size_t(frames)));
    for (auto& ch : a)
        for (auto& x : ch) x = u(rng);
    return a;
}

// An effect model whose output is exactly its input: skip on, head weights and bias zero.
Model identity_effect(double rate_hz, uint64_t seed = 5) {
    Model m = test::random_model(IoKind::continuous, 16, 2, 16, seed, 0, true);
    m.mutable_config().sample_rate_hz = rate_hz;
    std::fill_n(m.tensor("head.weight"), 16, 0.0f);
    m.tensor("head.bias")[0] = 0.0f;
    return m;
}

Model effect_model(uint64_t seed, int n_cond = 2, double rate_hz = 48000) {
    Model m = test::random_model(IoKind::continuous, 16, 2, 16, seed, n_cond, true);
    m.mutable_config().sample_rate_hz = rate_hz;
    return m;
}

Model generator_model(uint64_t seed, double rate_hz = 8000) {
    Model m = test::random_model(IoKind::mulaw8, 16, 2, 16, seed);
    m.mutable_config().sample_rate_hz = rate_hz;
    return m;
}

// A pooled generator (model/pooled.h) of generator_model's sizes, one layer a stack, at 8 kHz.
Model pooled_generator(uint64_t seed, std::vector<int> pool) {
    ModelConfig c = generator_model(seed).config();
    c.pool = std::move(pool);
    c.n_layers = c.stacks();
    Model m(c);
    m.init_random(seed, 0.3f);
    return m;
}

// Runs the effect engine over the whole input in blocks of the given sizes (cycled).
// Returns the allocations counted inside process() when `trap` is set.
int64_t run_effect(dsp::EffectEngine& e, const Planar& in, Planar& out, const std::vector<int>& sizes,
                   bool trap = false) {
    const int C = int(in.size());
    const int64_t L = int64_t(in[0].size());
    out.assign(size_t(C), std::vector<float>(size_t(L)));
    std::vector<const float*> ip(static_cast<size_t>(C));
    std::vector<float*> op(static_cast<size_t>(C));
    int64_t allocations = 0;
    size_t k = 0;
    for (int64_t t = 0; t < L;) {
        const int n = int(std::min<int64_t>(sizes[k++ % sizes.size()], L - t));
        for (int c = 0; c < C; ++c) {
            ip[size_t(c)] = in[size_t(c)].data() + t;
            op[size_t(c)] = out[size_t(c)].data() + t;
        }
        if (trap) test::arm_alloc_trap();
        e.process(ip.data(), op.data(), C, n);
        if (trap) allocations += test::disarm_alloc_trap();
        t += n;
    }
    return allocations;
}

Planar run_offline_step(const Model& m, const Planar& in, const std::vector<float>& controls) {
    const int C = int(in.size());
    const int64_t L = int64_t(in[0].size());
    EffectRunner runner(m, Path::step, C);
    if (!controls.empty()) runner.set_controls(controls.data());
    Planar out(static_cast<size_t>(C), std::vector<float>(size_t(L)));
    std::vector<const float*> ip;
    std::vector<float*> op;
    for (int c = 0; c < C; ++c) {
        ip.push_back(in[size_t(c)].data());
        op.push_back(out[size_t(c)].data());
    }
    runner.process(ip.data(), op.data(), L);
    return out;
}

bool all_finite(const Planar& a) {
    for (const auto& ch : a)
        for (float x : ch)
            if (!std::isfinite(x)) return false;
    return true;
}

double max_abs_diff(const Planar& a, const Planar& b, int64_t from = 0) {
    double m = 0;
    for (size_t c = 0; c < a.size(); ++c)
        for (size_t t = size_t(from); t < a[c].size(); ++t)
            m = std::max(m, std::fabs(double(a[c][t]) - double(b[c][t])));
    return m;
}

// ---- resampler measurement -------------------------------------------------------------------

// Pushes `in` through a fresh resampler in blocks of 256 and returns everything it output.
std::vector<float> resample_all(double in_hz, double out_hz, const std::vector<float>& in,
                                const std::vector<int>& blocks = {256}) {
    dsp::Resampler r;
    const int max_push = *std::max_element(blocks.begin(), blocks.end());
    r.prepare(in_hz, out_hz, 1, max_push, dsp::Resampler::DelayUnit::input);
    std::vector<float> out, buf(static_cast<size_t>(max_push) * size_t(std::ceil(out_hz / in_hz) + 2) + 8);
    size_t k = 0;
    for (size_t t = 0; t < in.size();) {
        const int n = int(std::min<size_t>(size_t(blocks[k++ % blocks.size()]), in.size() - t));
        const float* ip = in.data() + t;
        r.push(&ip, n);
        float* op = buf.data();
        const int got = r.read(&op, r.ready());
        out.insert(out.end(), buf.begin(), buf.begin() + got);
        t += size_t(n);
    }
    return out;
}

struct ToneFit {
    double gain = 0;      // fitted amplitude / input amplitude
    double residual = 0;  // RMS of what is not the tone, relative to the input amplitude
    double rms = 0;       // RMS of the whole output, relative to the input amplitude
};

// A sine of f_hz at in_hz through the resampler; the tone is fitted at the output rate over
// the settled middle of the output.
ToneFit measure_tone(double in_hz, double out_hz, double f_hz) {
    const double amp = 0.5;
    const int64_t L = int64_t(in_hz * 0.25);
    std::vector<float> in(static_cast<size_t>(L));
    for (int64_t t = 0; t < L; ++t) in[size_t(t)] = float(amp * std::sin(2 * kPi * f_hz * double(t) / in_hz));
    const std::vector<float> out = resample_all(in_hz, out_hz, in);
    const size_t a = out.size() / 5, b = out.size() - out.size() / 10;
    const double w = 2 * kPi * f_hz / out_hz;
    double ss = 0, sc = 0, cc = 0, ys = 0, yc = 0, yy = 0;
    for (size_t t = a; t < b; ++t) {
        const double s = std::sin(w * double(t)), c = std::cos(w * double(t)), y = out[t];
        ss += s * s; sc += s * c; cc += c * c; ys += y * s; yc += y * c; yy += y * y;
    }
    const double det = ss * cc - sc * sc;
    ToneFit fit;
    const double n = double(b - a);
    fit.rms = std::sqrt(yy / n) / (amp / std::sqrt(2.0));
    if (f_hz >= 0.5 * out_hz || std::fabs(det) < 1e-9 * n * n) return fit;  // no tone at the output
    const double ka = (ys * cc - yc * sc) / det, kb = (yc * ss - ys * sc) / det;
    double res = 0;
    for (size_t t = a; t < b; ++t) {
        const double e = out[t] - (ka * std::sin(w * double(t)) + kb * std::cos(w * double(t)));
        res += e * e;
    }
    fit.gain = std::hypot(ka, kb) / amp;
    fit.residual = std::sqrt(res / n) / (amp / std::sqrt(2.0));
    return fit;
}

// Waits (at most two seconds) until the audio thread has taken one more model than `taken`.
template <class Engine>
void wait_for_swap(Engine& e, int64_t& taken) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (e.stats().model_swaps <= taken && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    taken = e.stats().model_swaps;
}

double db(double x) { return 20.0 * std::log10(std::max(x, 1e-30)); }

// ---- a float64 SSM step with Δ scaled by alpha (for the delta mode) --------------------------

// The effect model of DESIGN.md, one stream, every Δ multiplied by alpha. Written from the
// equations, independently of the kernels and of the engine's weight transform.
std::vector<float> reference_delta_scaled(const Model& m, const std::vector<float>& x, double alpha) {
    const ModelConfig& c = m.config();
    const int D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank, I = c.n_in();
    auto silu = [](double v) { return v / (1 + std::exp(-v)); };
    auto softplus = [](double v) { return v > 20 ? v : std::log1p(std::exp(v)); };
    auto rmsnorm = [&](const std::vector<double>& h, const float* w) {
        double ms = 0;
        for (double v : h) ms += v * v;
        const double scale = 1.0 / std::sqrt(ms / D + double(c.norm_eps));
        std::vector<double> o(static_cast<size_t>(D));
        for (int d = 0; d < D; ++d) o[size_t(d)] = h[size_t(d)] * scale * w[d];
        return o;
    };
    struct LayerState { std::vector<double> win, s; };  // [K-1][E], [E][N]
    std::vector<LayerState> st(static_cast<size_t>(c.n_layers));
    for (auto& l : st) {
        l.win.assign(size_t((K - 1) * E), 0.0);
        l.s.assign(size_t(E * N), 0.0);
    }
    const int64_t L = int64_t(x.size()) / I;
    std::vector<float> y(static_cast<size_t>(L));
    for (int64_t t = 0; t < L; ++t) {
        const float* in = x.data() + t * I;
        std::vector<double> h(static_cast<size_t>(D));
        for (int d = 0; d < D; ++d) {
            double v = m.tensor("stem.bias")[d];
            for (int i = 0; i < I; ++i) v += double(m.tensor("stem.weight")[d * I + i]) * in[i];
            h[size_t(d)] = v;
        }
        for (int l = 0; l < c.n_layers; ++l) {
            const std::string p = "backbone.layers." + std::to_string(l) + ".";
            const auto hn = rmsnorm(h, m.tensor(p + "norm.weight"));
            const float* Win = m.tensor(p + "mixer.in_proj.weight");
            std::vector<double> u(static_cast<size_t>(E)), z(static_cast<size_t>(E));
            for (int e = 0; e < E; ++e) {
                double a = 0, b = 0;
                for (int d = 0; d < D; ++d) {
                    a += double(Win[e * D + d]) * hn[size_t(d)];
                    b += double(Win[(E + e) * D + d]) * hn[size_t(d)];
                }
                u[size_t(e)] = a;
                z[size_t(e)] = b;
            }
            LayerState& ls = st[size_t(l)];
            const float* cw = m.tensor(p + "mixer.conv1d.weight");
            const float* cb = c.conv_bias ? m.tensor(p + "mixer.conv1d.bias") : nullptr;
            std::vector<double> uc(static_cast<size_t>(E));
            for (int e = 0; e < E; ++e) {
                double v = cb ? cb[e] : 0.0;
                for (int k = 0; k < K - 1; ++k) v += double(cw[e * K + k]) * ls.win[size_t(k * E + e)];
                v += double(cw[e * K + K - 1]) * u[size_t(e)];
                uc[size_t(e)] = silu(v);
            }
            for (int k = 0; k + 1 < K - 1; ++k)
                for (int e = 0; e < E; ++e) ls.win[size_t(k * E + e)] = ls.win[size_t((k + 1) * E + e)];
            if (K > 1)
                for (int e = 0; e < E; ++e) ls.win[size_t((K - 2) * E + e)] = u[size_t(e)];
            const float* xp = m.tensor(p + "mixer.x_proj.weight");
            std::vector<double> dbc(static_cast<size_t>(R + 2 * N));
            for (int r = 0; r < R + 2 * N; ++r) {
                double v = 0;
                for (int e = 0; e < E; ++e) v += double(xp[r * E + e]) * uc[size_t(e)];
                dbc[size_t(r)] = v;
            }
            const float* dtw = m.tensor(p + "mixer.dt_proj.weight");
            const float* dtb = m.tensor(p + "mixer.dt_proj.bias");
            const float* Alog = m.tensor(p + "mixer.A_log");
            const float* Dv = m.tensor(p + "mixer.D");
            std::vector<double> yy(static_cast<size_t>(E));
            for (int e = 0; e < E; ++e) {
                double r = dtb[e];
                for (int k = 0; k < R; ++k) r += double(dtw[e * R + k]) * dbc[size_t(k)];
                const double delta = softplus(r) * alpha;
                double acc = 0;
                for (int n = 0; n < N; ++n) {
                    const double A = -std::exp(double(Alog[e * N + n]));
                    double& s = ls.s[size_t(e * N + n)];
                    s = std::exp(delta * A) * s + delta * uc[size_t(e)] * dbc[size_t(R + n)];
                    acc += s * dbc[size_t(R + N + n)];
                }
                yy[size_t(e)] = (acc + double(Dv[e]) * uc[size_t(e)]) * silu(z[size_t(e)]);
            }
            const float* Wout = m.tensor(p + "mixer.out_proj.weight");
            for (int d = 0; d < D; ++d) {
                double v = 0;
                for (int e = 0; e < E; ++e) v += double(Wout[d * E + e]) * yy[size_t(e)];
                h[size_t(d)] += v;
            }
        }
        const auto hn = rmsnorm(h, m.tensor("backbone.norm_f.weight"));
        double out = m.tensor("head.bias")[0];
        for (int d = 0; d < D; ++d) out += double(m.tensor("head.weight")[d]) * hn[size_t(d)];
        if (c.skip) out += in[0];
        y[size_t(t)] = float(out);
    }
    return y;
}

} // namespace

// ============================================================================================
// Resampler
// ============================================================================================

TEST_CASE("resampler: passband ripple and stopband attenuation, measured", "[dsp][realtime][resampler]") {
    struct Pair { double in, out; };
    double worst_ripple_db = 0, worst_stop_db = -1000, worst_image_db = -1000;
    for (Pair p : {Pair{44100, 48000}, Pair{48000, 44100}, Pair{8000, 48000}, Pair{48000, 8000}}) {
        const double low = std::min(p.in, p.out);
        // Passband: gain of tones up to the passband edge; what is left besides the tone is
        // aliasing (down) or images (up) plus arithmetic noise.
        for (double f : {0.01, 0.1, 0.2, 0.3, 0.4, dsp::Resampler::kPassband}) {
            const ToneFit fit = measure_tone(p.in, p.out, f * low);
            worst_ripple_db = std::max(worst_ripple_db, std::fabs(db(fit.gain)));
            worst_image_db = std::max(worst_image_db, db(fit.residual));
            INFO(p.in << " -> " << p.out << " Hz, tone " << f * low << " Hz: gain " << db(fit.gain)
                      << " dB, residual " << db(fit.residual) << " dB");
            CHECK(std::fabs(db(fit.gain)) < 0.001);
            CHECK(db(fit.residual) < -90);
        }
        // Stopband: tones from f_low / 2 up to the input's Nyquist must vanish.
        if (p.in > p.out) {
            for (double f = 0.5 * low; f < 0.5 * p.in - 1; f += (0.5 * p.in - 0.5 * low) / 7.0 + 1) {
                const ToneFit fit = measure_tone(p.in, p.out, f);
                worst_stop_db = std::max(worst_stop_db, db(fit.rms));
                INFO(p.in << " -> " << p.out << " Hz, tone " << f << " Hz: output " << db(fit.rms) << " dB");
                CHECK(db(fit.rms) < -90);
            }
        }
    }
    std::printf("resampler (T = %d taps at the lower rate, Kaiser beta %.0f): passband ripple %.5f dB up to "
                "%.3f f_low, aliasing/images in the passband %.1f dB, stopband (>= f_low/2) %.1f dB\n",
                2 * dsp::Resampler::kHalfWidthLowSamples, dsp::Resampler::kKaiserBeta, worst_ripple_db,
                dsp::Resampler::kPassband, worst_image_db, worst_stop_db);
}

TEST_CASE("resampler: any push sizes give the same output, bit for bit", "[dsp][realtime][resampler]") {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> in(30000);
    for (float& x : in) x = u(rng);
    for (auto rates : {std::pair{44100.0, 48000.0}, std::pair{48000.0, 8000.0}, std::pair{8000.0, 44100.0}}) {
        const auto whole = resample_all(rates.first, rates.second, in, {4096});
        const auto odd = resample_all(rates.first, rates.second, in, {1, 7, 300, 2, 4095, 64});
        REQUIRE(odd.size() == whole.size());
        CHECK(odd == whole);
        // the count is exact: every input instant before the end has its outputs
        const double expected = double(in.size()) * rates.second / rates.first;
        CHECK(std::fabs(double(whole.size()) - expected) <= 1.0);
    }
}

TEST_CASE("resampler: refuses ratios it cannot do, naming them", "[dsp][realtime][resampler]") {
    std::string why;
    CHECK(dsp::Resampler::supported(44100, 48000, &why));
    CHECK_FALSE(dsp::Resampler::supported(44100, 48001, &why));
    CHECK(why.find("48001") != std::string::npos);
    CHECK_FALSE(dsp::Resampler::supported(44100.5, 48000, &why));
    dsp::Resampler r;
    CHECK_THROWS_AS(r.prepare(44100, 48001, 1, 64, dsp::Resampler::DelayUnit::input), std::invalid_argument);
}

// ============================================================================================
// Effect engine
// ============================================================================================

TEST_CASE("effect engine equals the offline step engine sample for sample, blocks 1..4096", "[dsp][realtime]") {
    const Model m = effect_model(11, 2);
    const int C = 2;
    const Planar in = random_audio(C, 24000, 1);
    const std::vector<float> user{0.25f, 0.9f};  // user units (range 0..1)
    const Planar expected = run_offline_step(m, in, user);

    std::mt19937 rng(7);
    std::vector<int> random_sizes;
    for (int i = 0; i < 40; ++i) random_sizes.push_back(1 + int(rng() % 4096));
    for (const std::vector<int>& sizes : std::vector<std::vector<int>>{
             {1}, {2, 3}, {17}, {255, 1, 1000}, {4096}, {4095, 3}, random_sizes}) {
        dsp::EffectEngine e;
        e.set_model(dsp::make_realtime_model(m));
        e.prepare(48000, 4096, C);
        e.set_control(0, user[0]);
        e.set_control(1, user[1]);
        CHECK(e.latency_samples() == 0);
        Planar out;
        run_effect(e, in, out, sizes);
        INFO("first block size " << sizes[0]);
        CHECK(max_abs_diff(out, expected) == 0.0);
    }
    // Blocks longer than prepare()'s maximum are split inside process().
    dsp::EffectEngine e;
    e.set_model(dsp::make_realtime_model(m));
    e.prepare(48000, 64, C);
    e.set_control(0, user[0]);
    e.set_control(1, user[1]);
    Planar out;
    run_effect(e, in, out, {1000, 3});
    CHECK(max_abs_diff(out, expected) == 0.0);
}

TEST_CASE("effect engine: controls are clamped to the model's range, unset ones take their defaults", "[dsp][realtime]") {
    const Model m = effect_model(12, 2);
    const Planar in = random_audio(1, 4000, 2);
    const Planar expected = run_offline_step(m, in, {1.0f, 0.5f});  // 0.5 = the default
    dsp::EffectEngine e;
    e.set_model(dsp::make_realtime_model(m));
    e.prepare(48000, 512, 1);
    e.set_control(0, 7.0f);  // above the range 0..1
    Planar out;
    run_effect(e, in, out, {100});
    CHECK(max_abs_diff(out, expected) == 0.0);
}

TEST_CASE("effect engine: gains, mix and bypass are applied and smoothed", "[dsp][realtime]") {
    const int rate = 48000, ramp = int(dsp::kSmoothingSeconds * rate);
    dsp::EffectEngine e;
    e.set_model(dsp::make_realtime_model(identity_effect(rate)));
    e.prepare(rate, 256, 1);
    Planar in(1, std::vector<float>(size_t(rate / 5), 0.5f)), out;
    e.set_input_gain_db(-6.0f);
    e.set_output_gain_db(+3.0f);
    run_effect(e, in, out, {256});
    const float g = std::pow(10.0f, -3.0f / 20.0f);  // -6 dB in, +3 dB out on the wet path
    CHECK(out[0][0] > 0.49f);                          // ramping, not jumping
    CHECK(out[0].back() == Approx(0.5f * g).epsilon(1e-5));
    // mix 0.5 with the wet path at 0.5·g: the midpoint of wet and dry
    e.set_mix(0.5f);
    run_effect(e, in, out, {256});
    CHECK(out[0].back() == Approx(0.5f * (0.5f * g) + 0.5f * 0.5f).epsilon(1e-5));
    // bypass: exactly the dry input after the ramp
    e.set_bypass(true);
    run_effect(e, in, out, {256});
    for (size_t t = size_t(ramp) + 256; t < out[0].size(); ++t) REQUIRE(out[0][t] == 0.5f);
}

TEST_CASE("effect engine: process() allocates nothing, also across swaps, crossfades and the resampler", "[dsp][realtime]") {
    // host 44.1 kHz, models at 48 kHz (resampled) and 44.1 kHz (not)
    const auto a = dsp::make_realtime_model(effect_model(21, 1, 48000));
    const auto b = dsp::make_realtime_model(effect_model(22, 1, 44100));
    const auto c = dsp::make_realtime_model(effect_model(23, 1, 48000));
    dsp::EffectEngine e;
    e.set_model(a);
    e.prepare(44100, 512, 2);
    CHECK(e.latency_samples() > 0);
    const Planar in = random_audio(2, 44100 / 4, 3);
    Planar out;
    int64_t allocations = run_effect(e, in, out, {512, 33}, true);
    for (auto next : {b, c, a, RealtimeModelPtr()}) {
        e.set_model(next);  // message thread: builds the slot (allocates, outside the trap)
        e.set_control(0, 0.3f);
        e.set_mix(0.7f);
        e.set_input_gain_db(2.0f);
        allocations += run_effect(e, in, out, {512, 7, 200}, true);  // hand-over + crossfade inside
        e.collect_garbage();
    }
    e.set_rate_mode(dsp::RateMode::delta);
    e.set_model(c);
    allocations += run_effect(e, in, out, {512, 100}, true);
    const dsp::EngineStats s = e.stats();
    CHECK(allocations == 0);
    CHECK(s.model_swaps == 5);
    CHECK(s.load > 0);  // measured in process() (steady_clock), smoothed
    CHECK(s.load_peak > 0);
    CHECK(s.peak_in > 0.1f);
    CHECK(s.peak_out > 0.0f);  // b, c, a, none, then c in delta mode (the delta slot of a was replaced unseen)
    CHECK(all_finite(out));
}

TEST_CASE("effect engine: NaN and Inf input never give non-finite output", "[dsp][realtime]") {
    for (double model_rate : {48000.0, 44100.0}) {
        dsp::EffectEngine e;
        e.set_model(dsp::make_realtime_model(effect_model(31, 0, model_rate)));
        e.prepare(48000, 256, 2);
        Planar in = random_audio(2, 20000, 4);
        const float bad[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                             -std::numeric_limits<float>::infinity(), 1e30f, -1e30f,
                             std::numeric_limits<float>::denorm_min()};
        for (int t = 0; t < 20000; t += 37) in[size_t(t % 2)][size_t(t)] = bad[(t / 37) % 6];
        Planar out;
        run_effect(e, in, out, {256, 13});
        CHECK(all_finite(out));
        const dsp::EngineStats s = e.stats();
        CHECK(s.peak_in < 1e31f);
        CHECK(std::isfinite(s.peak_out));
    }
}

TEST_CASE("effect engine: a model that makes NaN gives silence and a counted event, then recovers", "[dsp][realtime]") {
    Model poisoned = effect_model(41, 0);
    poisoned.tensor("backbone.layers.0.mixer.out_proj.weight")[3] = std::numeric_limits<float>::quiet_NaN();
    const Model good = effect_model(42, 0);
    const int C = 2, block = 128;
    dsp::EffectEngine e;
    e.set_model(dsp::make_realtime_model(poisoned));
    e.prepare(48000, block, C);
    const Planar in = random_audio(C, 48000 / 2, 5);
    Planar out;
    run_effect(e, in, out, {block});
    for (const auto& ch : out)
        for (float x : ch) REQUIRE(x == 0.0f);
    const int64_t events = e.stats().nonfinite_events;
    CHECK(events >= int64_t(in[0].size() / block) * C);  // each stream, each block

    // A good model: after the crossfade from the silent one, the output is exactly the good
    // model run from the hand-over on, and no more events are counted.
    e.set_model(dsp::make_realtime_model(good));
    run_effect(e, in, out, {block});
    const Planar expected = run_offline_step(good, in, {});
    const int64_t fade = int64_t(dsp::kCrossfadeSeconds * 48000) + block;
    CHECK(max_abs_diff(out, expected, fade) == 0.0);
    bool sound = false;
    for (int64_t t = fade; t < int64_t(out[0].size()); ++t) sound |= out[0][size_t(t)] != 0.0f;
    CHECK(sound);
    // the poisoned model still ran (silently) during the crossfade, then never again
    const int64_t after = e.stats().nonfinite_events;
    CHECK(after - events <= (fade / block + 1) * C);
    e.collect_garbage();
    run_effect(e, in, out, {block});
    CHECK(e.stats().nonfinite_events == after);
    CHECK(all_finite(out));
}

TEST_CASE("effect engine: denormals are flushed inside process() and the FP mode restored", "[dsp][realtime]") {
    if (!dsp::denormals_flush_supported()) {
        WARN("no FTZ/DAZ control on this CPU: denormal test skipped");
        return;
    }
    const uint64_t saved = dsp::fp_control_word();
    dsp::set_fp_control_word(saved & ~dsp::kFlushDenormalBits);  // the host left flushing off
    const uint64_t before = dsp::fp_control_word();
    const float tiny = 1e-39f;  // a denormal
    REQUIRE(std::fpclassify(tiny) == FP_SUBNORMAL);

    // Without flushing, the identity model passes a denormal through (so the check can fail).
    const Model id = identity_effect(48000);
    auto P = kernels::prepare_model(id.view());
    auto S = kernels::make_state(*P, 1, 1);
    float y = 0;
    kernels::step_continuous(*P, *S, &tiny, &y);
    CHECK(y == tiny);

    dsp::EffectEngine e;
    e.set_model(dsp::make_realtime_model(id));
    e.prepare(48000, 64, 1);
    Planar in(1, std::vector<float>(64, tiny)), out;
    run_effect(e, in, out, {64});
    for (float x : out[0]) REQUIRE(x == 0.0f);  // DAZ/FTZ were on inside process()
    // and are off again after it (status flags aside: the step above raised "denormal")
    CHECK((dsp::fp_control_word() & ~dsp::kFpStatusBits) == (before & ~dsp::kFpStatusBits));
    dsp::set_fp_control_word(saved);
}

TEST_CASE("effect engine: latency is exact with the resampler (impulse and band-limited noise)", "[dsp][realtime]") {
    struct Case { double host, model; };
    for (Case k : {Case{44100, 48000}, Case{48000, 44100}, Case{48000, 8000}, Case{96000, 48000}}) {
        dsp::EffectEngine e;
        e.set_model(dsp::make_realtime_model(identity_effect(k.model)));
        e.prepare(k.host, 256, 1);
        const int lat = e.latency_samples();
        INFO("host " << k.host << " Hz, model " << k.model << " Hz, latency " << lat);
        REQUIRE(lat > 0);
        const int64_t L = int64_t(k.host / 4);
        // impulse: the output peaks exactly `lat` samples later
        Planar in(1, std::vector<float>(size_t(L), 0.0f)), out;
        const int64_t at = 1000;
        in[0][size_t(at)] = 1.0f;
        run_effect(e, in, out, {256, 97});
        const auto peak = std::max_element(out[0].begin(), out[0].end(),
                                           [](float a, float b) { return std::fabs(a) < std::fabs(b); });
        CHECK(peak - out[0].begin() == at + lat);
        // band-limited noise (tones below the passband edge): out[t] = in[t - lat]
        dsp::EffectEngine e2;
        e2.set_model(dsp::make_realtime_model(identity_effect(k.model)));
        e2.prepare(k.host, 256, 1);
        std::mt19937 rng(9);
        std::uniform_real_distribution<double> u(0, 1);
        const double low = std::min(k.host, k.model);
        std::vector<std::array<double, 2>> tones;
        for (int i = 0; i < 24; ++i) tones.push_back({u(rng) * 0.42 * low, u(rng) * 2 * kPi});
        for (int64_t t = 0; t < L; ++t) {
            double v = 0;
            for (auto& tone : tones) v += std::sin(2 * kPi * tone[0] * double(t) / k.host + tone[1]);
            in[0][size_t(t)] = float(v / 24.0);
        }
        run_effect(e2, in, out, {256, 31});
        double err = 0, ref = 0;
        for (int64_t t = L / 4; t < L; ++t) {
            const double d = double(out[0][size_t(t)]) - double(in[0][size_t(t - lat)]);
            err += d * d;
            ref += double(in[0][size_t(t - lat)]) * double(in[0][size_t(t - lat)]);
        }
        const double rel_db = 10 * std::log10(err / ref);
        INFO("error at the reported latency: " << rel_db << " dB");
        CHECK(rel_db < -80);
    }
    // no resampling: no latency; delta mode: none either
    dsp::EffectEngine e;
    e.set_model(dsp::make_realtime_model(identity_effect(48000)));
    e.prepare(48000, 256, 1);
    CHECK(e.latency_samples() == 0);
    e.set_model(dsp::make_realtime_model(identity_effect(44100)));
    CHECK(e.latency_samples() > 0);
    e.set_rate_mode(dsp::RateMode::delta);
    CHECK(e.latency_samples() == 0);
}

TEST_CASE("effect engine: delta mode is the SSM with every Δ scaled by model/host rate", "[dsp][realtime]") {
    // no skip, so the whole output is the SSM's
    Model m = test::random_model(IoKind::continuous, 16, 2, 16, 51, 1, false);
    m.mutable_config().sample_rate_hz = 8000;
    const double host = 48000, alpha = 8000.0 / host;
    dsp::EffectEngine e;
    e.set_rate_mode(dsp::RateMode::delta);
    e.set_model(dsp::make_realtime_model(m));
    e.prepare(host, 128, 1);
    e.set_control(0, 0.8f);
    CHECK(e.latency_samples() == 0);
    const Planar in = random_audio(1, 3000, 6);
    Planar out;
    run_effect(e, in, out, {128});
    std::vector<float> x;  // [L][I]
    const float ctrl = m.config().controls[0].normalise(0.8f);
    for (float s : in[0]) {
        x.push_back(s);
        x.push_back(ctrl);
    }
    const std::vector<float> scaled = reference_delta_scaled(m, x, alpha);
    const std::vector<float> unscaled = reference_delta_scaled(m, x, 1.0);
    const double err = test::rel_error(out[0], scaled), other = test::rel_error(out[0], unscaled);
    std::printf("delta mode vs float64 reference with dt scaled by %.4f: rel error %.2e (vs unscaled: %.2e)\n",
                alpha, err, other);
    CHECK(err < 1e-4);
    CHECK(other > 1e-3);  // the scaling matters, so the first check means something
    CHECK(other > 1000 * err);
}

TEST_CASE("effect engine: thousands of model swaps while another thread runs process()", "[dsp][realtime][stress]") {
    std::vector<RealtimeModelPtr> models;
    for (int i = 0; i < 4; ++i) models.push_back(dsp::make_realtime_model(effect_model(60 + i, 1)));
    models.push_back(dsp::make_realtime_model(effect_model(70, 1, 44100)));  // resampled
    models.push_back(nullptr);
    dsp::EffectEngine e;
    e.set_model(models[0]);
    e.prepare(48000, 64, 2);
    std::atomic<bool> stop{false};
    std::atomic<int64_t> blocks{0};
    std::atomic<bool> finite{true};
    std::thread audio([&] {
        Planar in = random_audio(2, 64, 8), out(2, std::vector<float>(64));
        in[0][5] = std::numeric_limits<float>::quiet_NaN();
        const float* ip[2] = {in[0].data(), in[1].data()};
        float* op[2] = {out[0].data(), out[1].data()};
        while (!stop.load()) {
            e.process(ip, op, 2, 64);
            for (auto& ch : out)
                for (float x : ch)
                    if (!std::isfinite(x)) finite = false;
            ++blocks;
        }
    });
    const int swaps = 3000;
    const auto t0 = std::chrono::steady_clock::now();
    RealtimeModelPtr last;
    int64_t taken = 0;
    for (int i = 0; i < swaps; ++i) {
        // mostly equal-rate models; every 16th the resampled one (its filter design is slower)
        const size_t pick = i % 16 == 15 ? 4 : (i % 9 == 8 ? 5 : size_t(i % 4));
        e.set_model(models[pick]);
        last = models[pick];
        e.set_control(0, float(i % 10) / 10.0f);
        e.set_mix(float(i % 3) / 2.0f);
        if (i % 4 == 0) e.collect_garbage();
        // Every 4th swap, wait for the audio thread to take it (after the crossfade before it),
        // so that many of these hand-overs happen; the others replace a pending model unseen.
        if (i % 4 == 3) wait_for_swap(e, taken);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop = true;
    audio.join();
    e.collect_garbage();
    const dsp::EngineStats s = e.stats();
    std::printf("stress: %d swaps published, %lld taken by the audio thread over %lld blocks in %.1f s\n", swaps,
                static_cast<long long>(s.model_swaps), static_cast<long long>(blocks.load()),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    CHECK(finite.load());
    CHECK(s.model_swaps >= swaps / 4);
    CHECK(blocks.load() > 0);
    // The engine still works and holds the last model set.
    CHECK(e.model() == last);
}

// ============================================================================================
// Synth engine
// ============================================================================================

namespace {

Planar run_synth(dsp::SynthEngine& s, int channels, int64_t frames, int block,
                 const std::function<void(int64_t block_start, int n)>& events, int64_t* allocations = nullptr) {
    Planar out(static_cast<size_t>(channels), std::vector<float>(size_t(frames)));
    std::vector<float*> op(static_cast<size_t>(channels));
    for (int64_t t = 0; t < frames; t += block) {
        const int n = int(std::min<int64_t>(block, frames - t));
        for (int c = 0; c < channels; ++c) op[size_t(c)] = out[size_t(c)].data() + t;
        if (allocations) test::arm_alloc_trap();
        if (events) events(t, n);
        s.process(op.data(), channels, n);
        if (allocations) *allocations += test::disarm_alloc_trap();
    }
    return out;
}

// One voice computed the way the synth documents it: zero state, kPrimeTokens silent classes
// (a labelled model: the prefix of the label the note asks for, or of `label` when given), then
// sample, decode, scale by velocity and the attack ramp, feed back. With guidance w > 0: a
// second stream primed with the null label's prefix and fed the same classes, and each class
// drawn from (1 + w)·the voice's logits − w·the null stream's.
std::vector<float> expected_voice(const Model& m, int note, float velocity, uint32_t seed, float temperature,
                                  float top_p, int64_t frames, int label = -1, float guidance = 0.0f) {
    // a flat model through the kernels' step, a pooled one through its own (model/pooled.h)
    struct Stream {
        kernels::PreparedModelPtr P;
        kernels::StepStatePtr S;
        std::unique_ptr<pooled::Stepper> pooled_step;
        std::vector<float> logits = std::vector<float>(256);
        void step(const int32_t* tok) {
            if (pooled_step) pooled_step->step(tok, logits.data());
            else kernels::step_tokens(*P, *S, tok, logits.data());
        }
    };
    std::array<Stream, 2> streams;  // the voice's, the null label's
    for (Stream& st : streams) {
        if (m.config().pooled()) {
            st.pooled_step = std::make_unique<pooled::Stepper>(m, 1);
        } else {
            st.P = kernels::prepare_model(m.view());
            st.S = kernels::make_state(*st.P, 1, 1);
        }
    }
    const bool guided = guidance > 0.0f;
    auto step = [&](const int32_t* tok) {
        streams[0].step(tok);
        if (guided) streams[1].step(tok);
    };
    Sampler sampler({temperature, top_p, uint64_t(seed) + uint64_t(note)});
    int32_t token = 128;
    const ModelConfig& c = m.config();
    if (c.labelled() && label < 0) label = dsp::label_for_note(note, int(c.labels.size()));
    if (label >= 0) {
        for (int32_t t : c.label_tokens(label)) streams[0].step(&t);
        for (int32_t t : c.label_tokens(c.null_label())) if (guided) streams[1].step(&t);
    } else {
        for (int i = 0; i < dsp::SynthEngine::kPrimeTokens; ++i) step(&token);
    }
    const int attack = int(std::lround(0.002 * m.config().sample_rate_hz));
    std::vector<float> y(static_cast<size_t>(frames)), drawn(256);
    float env = 0;
    for (int64_t t = 0; t < frames; ++t) {
        if (guided) null_guidance_logits(streams[0].logits.data(), streams[1].logits.data(), 256, guidance, drawn.data());
        token = sampler.sample(guided ? drawn.data() : streams[0].logits.data());
        env = std::min(1.0f, env + 1.0f / float(attack));
        y[size_t(t)] = dsp::mulaw_decode(token) * velocity * env;
        step(&token);
    }
    return y;
}

} // namespace

TEST_CASE("synth engine: a voice is the documented sampler chain, sample for sample", "[dsp][realtime]") {
    const bool pooled_model = GENERATE(false, true);  // a pooled generator too (model/pooled.h)
    INFO((pooled_model ? "pooled" : "flat") << " generator");
    const Model m = pooled_model ? pooled_generator(81, {4, 2}) : generator_model(81, 8000);
    dsp::SynthEngine s;
    s.set_model(dsp::make_realtime_model(m));
    s.prepare(8000, 100, 2);  // host at the model's rate: no resampling
    s.set_temperature(0.8f);
    s.set_top_p(0.9f);
    s.set_seed(1234);
    CHECK(s.latency_samples() == 0);
    const int on_at = 137, off_at = 2037;
    const Planar out = run_synth(s, 2, 4000, 100, [&](int64_t t0, int n) {
        if (on_at >= t0 && on_at < t0 + n) s.note_on(60, 0.75f, int(on_at - t0));
        if (off_at >= t0 && off_at < t0 + n) s.note_off(60, int(off_at - t0));
    });
    const std::vector<float> voice = expected_voice(m, 60, 0.75f, 1234, 0.8f, 0.9f, off_at - on_at);
    for (int t = 0; t < on_at; ++t) REQUIRE(out[0][size_t(t)] == 0.0f);
    double diff = 0;
    for (int t = on_at; t < off_at; ++t) diff = std::max(diff, double(std::fabs(out[0][size_t(t)] - voice[size_t(t - on_at)])));
    CHECK(diff == 0.0);
    CHECK(out[1] == out[0]);
    // released: silent once the fade is over, and the voice is free
    const int release = int(dsp::kReleaseSeconds * 8000);
    for (size_t t = size_t(off_at + release + 1); t < out[0].size(); ++t) REQUIRE(out[0][t] == 0.0f);
    CHECK(s.active_voices() == 0);
    bool sound_in_release = false;
    for (int t = off_at; t < off_at + release - 10; ++t) sound_in_release |= out[0][size_t(t)] != 0.0f;
    CHECK(sound_in_release);
}

// A generator that draws every class with fixed chances, whatever came before: its layers add
// nothing (out_proj zero), so the head sees the RMS-normalised embedding of the last class; every
// row is a positive constant, so that is the same vector of ones for every class, and class v's
// logit is d_model times its row's constant. The silence class's row is 5, the others' 0.1 (a
// logit about 78 below), and class `loud` (255: full scale) gets the row that draws it with chance p.
Model fixed_chance_model(double p_loud, int loud = 255) {
    Model m = generator_model(83);
    const int D = m.config().d_model;
    for (int i = 0; i < m.config().n_layers; ++i) {
        float* w = m.tensor("backbone.layers." + std::to_string(i) + ".mixer.out_proj.weight");
        std::fill_n(w, m.config().d_inner * D, 0.0f);
    }
    REQUIRE(m.config().tie_embeddings);
    float* e = m.tensor("backbone.embeddings.weight");
    for (int v = 0; v < 256; ++v) std::fill_n(e + v * D, D, v == 128 ? 5.0f : 0.1f);
    if (p_loud > 0) std::fill_n(e + loud * D, D, float(5.0 - std::log((1 - p_loud) / p_loud) / D));
    std::fill_n(m.tensor("backbone.norm_f.weight"), D, 1.0f);
    return m;
}

TEST_CASE("synth engine: a voice that falls silent ends by itself, a sounding one plays on", "[dsp][realtime]") {
    // A generator that only ever says the silence class. Its voice never says anything, so it
    // starts again kSilentRestarts times before it ends.
    const Model quiet = fixed_chance_model(0.0);
    const int end = int(dsp::kSilentEndSeconds * 8000), rounds = 1 + dsp::kSilentRestarts, again = rounds * end + 1000;
    for (const bool silent : {true, false}) {
        INFO((silent ? "the silent model" : "a random (loud) model"));
        dsp::SynthEngine s;
        s.set_model(dsp::make_realtime_model(silent ? quiet : generator_model(84)));
        s.prepare(8000, 100, 1);
        int64_t allocations = 0;
        std::vector<int> sounding;  // after each block (reserved: the callback runs inside the allocation trap)
        sounding.reserve(200);
        sounding.reserve(size_t(2 * again / 100));
        const Planar out = run_synth(s, 1, 2 * again, 100, [&](int64_t t0, int) {
            if (t0 == 0) s.note_on(60, 1.0f, 0);
            if (t0 == again) s.note_on(60, 1.0f, 0);  // the same key again: a fresh voice
            if (t0 > 0) sounding.push_back(s.sounding_voices());
        }, &allocations);
        CHECK(allocations == 0);
        CHECK(s.active_voices() == 1);  // the key is held all along
        // block k's count is read before block k + 1: sounding through block k ends at sample 100 (k + 1)
        auto sounding_after = [&](int64_t sample) { return sounding[size_t(sample / 100 - 1)]; };
        if (silent) {
            for (float y : out[0]) REQUIRE(std::fabs(y) <= dsp::mulaw_decode(128));
            for (int r = 1; r <= rounds; ++r) {  // silent for half a second each time, started again
                INFO("round " << r);
                CHECK(sounding_after(r * end - 100) == 1);
            }
            CHECK(sounding_after(rounds * end + 100) == 0);  // ended by itself after its restarts
            for (int64_t t = rounds * end + 1; t < again; ++t) REQUIRE(out[0][size_t(t)] == 0.0f);
            CHECK(sounding_after(again + 100) == 1);  // pressed again: it starts over
            CHECK(sounding_after(again + end + 100) == 1);
            CHECK(sounding_after(again + rounds * end + 100) == 0);
        } else {
            for (int64_t t = 200; t <= 2 * again - 100; t += 100) REQUIRE(sounding_after(t) == 1);
            double energy = 0;
            for (int64_t t = 6000; t < 8000; ++t) energy += double(out[0][size_t(t)]) * out[0][size_t(t)];
            CHECK(energy / 2000 > 1e-3);
        }
    }
}

// Presses of one key, each held `held` samples of `span`, a seed each; the engine's count of
// voices started again (EngineStats::silent_restarts) after each.
std::vector<int64_t> restarts_per_note(const Model& m, int notes, int span, int held, Planar* out = nullptr) {
    dsp::SynthEngine s;
    s.set_model(dsp::make_realtime_model(m));
    s.prepare(8000, 100, 1);
    std::vector<int64_t> total;  // after each note (reserved: the callback runs inside the allocation trap)
    total.reserve(size_t(notes));
    int64_t allocations = 0;
    Planar o = run_synth(s, 1, int64_t(notes) * span, 100, [&](int64_t t0, int) {
        if (t0 % span == 0) {
            if (t0 > 0) total.push_back(s.stats().silent_restarts);
            s.set_seed(uint32_t(1000 + t0 / span));
            s.note_on(60, 1.0f, 0);
        }
        if (t0 % span == held) s.note_off(60, 0);
    }, &allocations);
    CHECK(allocations == 0);
    total.push_back(s.stats().silent_restarts);
    std::vector<int64_t> per(total.size());
    for (size_t k = 0; k < total.size(); ++k) per[k] = total[k] - (k ? total[k - 1] : 0);
    if (out) *out = std::move(o);
    return per;
}

TEST_CASE("synth engine: a voice silent from the start tries again, so that a note says something", "[dsp][realtime]") {
    const int end = int(dsp::kSilentEndSeconds * 8000), spoken = int(std::lround(dsp::kSpokenSeconds * 8000));
    const int span = 16000, held = 14000;  // (three tries take 12000 samples)
    SECTION("only silence: every note tries twice more") {
        for (int64_t r : restarts_per_note(fixed_chance_model(0.0), 4, span, held)) CHECK(r == dsp::kSilentRestarts);
    }
    SECTION("a quiet voice is a voice: no retry") {
        // a class about 0.02 loud, as quietly recorded speech peaks (every FSDD take is above 0.0105)
        int quiet = 128;
        while (std::fabs(dsp::mulaw_decode(quiet)) < 0.02f) ++quiet;
        INFO("class " << quiet << ", " << dsp::mulaw_decode(quiet));
        REQUIRE(std::fabs(dsp::mulaw_decode(quiet)) < 0.03f);
        for (int64_t r : restarts_per_note(fixed_chance_model(0.5, quiet), 4, span, held)) CHECK(r == 0);
    }
    SECTION("a lone click is not a word: retried") {
        // full scale with chance 2 / 4000 a sample: about two clicks a try, far fewer than `spoken`
        REQUIRE(spoken >= 20);
        for (int64_t r : restarts_per_note(fixed_chance_model(2.0 / end), 4, span, held)) CHECK(r == dsp::kSilentRestarts);
    }
    SECTION("a voice that says too little in 30% of its tries") {
        // loud samples a try ~ Poisson(lambda): fewer than `spoken` of them with chance 0.30 (lambda ~ 43.4 for
        // spoken = 40). A note tries again with chance 0.30, twice with 0.09: about 23 retries in 60 notes
        // (a standard deviation of about 4); notes that say nothing in all three tries, 0.027 of them
        double lambda = spoken;
        auto below = [&](double l) {  // P(Poisson(l) < spoken)
            double term = std::exp(-l), sum = 0;
            for (int k = 0; k < spoken; ++k) sum += term, term *= l / (k + 1);
            return sum;
        };
        while (below(lambda) > 0.30) lambda += 0.01;
        Planar out;
        const std::vector<int64_t> per = restarts_per_note(fixed_chance_model(lambda / end), 60, span, held, &out);
        int64_t retries = 0;
        for (int64_t r : per) retries += r;
        int silent = 0;  // notes with fewer than `spoken` loud samples while held
        for (int k = 0; k < 60; ++k) {
            int loud = 0;
            for (int64_t t = int64_t(k) * span; t < int64_t(k) * span + held; ++t) loud += std::fabs(out[0][size_t(t)]) >= 0.5f;
            silent += loud < spoken;
        }
        INFO(retries << " retries, " << silent << " of 60 notes said nothing");
        CHECK(retries >= 10);
        CHECK(retries <= 40);
        CHECK(silent <= 5);
    }
}

TEST_CASE("synth engine: keys choose a labelled model's label, wrapping every n keys", "[dsp][realtime]") {
    // the map (ten digits: C4..A4 play 0..9)
    CHECK(dsp::label_for_note(60, 10) == 0);
    CHECK(dsp::label_for_note(69, 10) == 9);
    CHECK(dsp::label_for_note(70, 10) == 0);
    CHECK(dsp::label_for_note(59, 10) == 9);
    CHECK(dsp::label_for_note(0, 10) == 0);
    CHECK(dsp::label_for_note(127, 10) == 7);
    CHECK(dsp::label_for_note(61, 3) == 1);
    CHECK(dsp::label_for_note(57, 3) == 0);
    CHECK(dsp::note_name(60) == "C4");
    CHECK(dsp::note_name(69) == "A4");
    CHECK(dsp::note_name(70) == "A#4");
    CHECK(dsp::note_name(0) == "C-1");
    CHECK(dsp::note_name(127) == "G9");
    // and back (mambawave synth --notes): every MIDI note's name, flats, lower case, numbers
    for (int n = 0; n <= 127; ++n) REQUIRE(dsp::parse_note_name(dsp::note_name(n)) == n);
    CHECK(dsp::parse_note_name("Db4") == 61);
    CHECK(dsp::parse_note_name("c4") == 60);
    CHECK(dsp::parse_note_name("Cb4") == 59);
    CHECK(dsp::parse_note_name("60") == 60);
    CHECK(dsp::parse_note_name("0") == 0);
    for (const char* bad : {"", "H4", "C10", "G#9", "C-2", "128", "-1", "C#", "C4x", "C 4", "Cb-1", "C##4"}) {
        INFO("'" << bad << "'");
        CHECK(dsp::parse_note_name(bad) == -1);
    }

    const bool pooled_model = GENERATE(false, true);
    INFO((pooled_model ? "pooled" : "flat") << " generator");
    Model m = pooled_model ? pooled_generator(83, {4, 2}) : generator_model(83, 8000);
    m.mutable_config().labels = {"a", "b", "c"};
    m.mutable_config().label_prefix = 6;
    CHECK(dsp::label_keys_text(m.config()) == "C4 plays a ... D4 plays c, every 3 keys");
    CHECK(dsp::label_keys_text(generator_model(83).config()).empty());

    // Each note's voice: primed with its label's prefix; notes a key apart ask for other labels,
    // and 63 (D#4) asks for label a again, 59 (B3) for c.
    for (const int note : {62, 63, 59}) {
        INFO("note " << note);
        dsp::SynthEngine s;
        s.set_model(dsp::make_realtime_model(m));
        s.prepare(8000, 64, 1);
        s.set_seed(77);
        const int on_at = 10, frames = 1500;
        int64_t allocations = 0;
        const Planar out = run_synth(s, 1, frames, 64, [&](int64_t t0, int) {
            if (t0 == 0) s.note_on(note, 1.0f, on_at);
        }, &allocations);
        CHECK(allocations == 0);
        const std::vector<float> want = expected_voice(m, note, 1.0f, 77, 1.0f, 1.0f, frames - on_at);
        double diff = 0;
        for (int t = on_at; t < frames; ++t) diff = std::max(diff, double(std::fabs(out[0][size_t(t)] - want[size_t(t - on_at)])));
        CHECK(diff == 0.0);
        // ... and not the voice of another label, nor of the silent prime (the same seed)
        const int label = dsp::label_for_note(note, 3);
        const std::vector<float> other = expected_voice(m, note, 1.0f, 77, 1.0f, 1.0f, frames - on_at, (label + 1) % 3);
        Model unlabelled = m;
        unlabelled.mutable_config().label_prefix = 0;
        unlabelled.mutable_config().labels.clear();
        const std::vector<float> silent = expected_voice(unlabelled, note, 1.0f, 77, 1.0f, 1.0f, frames - on_at);
        CHECK(other != want);
        CHECK(silent != want);
    }
}

TEST_CASE("synth engine: guidance against the null label is the documented two-stream chain", "[dsp][realtime]") {
    const bool pooled_model = GENERATE(false, true);
    INFO((pooled_model ? "pooled" : "flat") << " generator");
    Model m = pooled_model ? pooled_generator(84, {4, 2}) : generator_model(84, 8000);
    m.mutable_config().labels = {"a", "b", "c"};
    m.mutable_config().label_prefix = 6;
    m.mutable_config().label_null = true;
    const int on_at = 10, frames = 1500, note = 61;
    auto play = [&](const Model& model, float guidance_at_start, float guidance_later, int64_t* allocations) {
        dsp::SynthEngine s;
        s.set_model(dsp::make_realtime_model(model));
        s.prepare(8000, 64, 1);
        s.set_seed(78);
        s.set_guidance(guidance_at_start);
        return run_synth(s, 1, frames, 64, [&](int64_t t0, int) {
            if (t0 == 0) s.note_on(note, 1.0f, on_at);
            if (t0 == 64) s.set_guidance(guidance_later);  // applies from the next block
        }, allocations)[0];
    };
    auto voice_diff = [&](const std::vector<float>& out, const std::vector<float>& want) {
        double diff = 0;
        for (int t = on_at; t < frames; ++t) diff = std::max(diff, double(std::fabs(out[size_t(t)] - want[size_t(t - on_at)])));
        return diff;
    };
    int64_t allocations = 0;
    const std::vector<float> guided = play(m, 3.0f, 3.0f, &allocations);
    CHECK(allocations == 0);
    const std::vector<float> want = expected_voice(m, note, 1.0f, 78, 1.0f, 1.0f, frames - on_at, -1, 3.0f);
    CHECK(voice_diff(guided, want) == 0.0);
    const std::vector<float> plain = expected_voice(m, note, 1.0f, 78, 1.0f, 1.0f, frames - on_at);
    CHECK(want != plain);  // guidance changes the draws of the same seed
    // A voice started unguided stays so when guidance is turned up while it plays.
    CHECK(voice_diff(play(m, 0.0f, 3.0f, nullptr), plain) == 0.0);
    // A guided voice follows the weight of the moment: 3 for its first block, then 1.5.
    const std::vector<float> changed = play(m, 3.0f, 1.5f, nullptr);
    CHECK(voice_diff(changed, want) > 0.0);
    double first_block = 0;
    for (int t = on_at; t < 64; ++t) first_block = std::max(first_block, double(std::fabs(changed[size_t(t)] - want[size_t(t - on_at)])));
    CHECK(first_block == 0.0);
    // A model without a null label ignores guidance: its voice is the plain chain.
    Model no_null = m;
    no_null.mutable_config().label_null = false;
    CHECK(voice_diff(play(no_null, 3.0f, 3.0f, nullptr), plain) == 0.0);
}

TEST_CASE("synth engine: resampled to the host, events land at their offset plus the latency", "[dsp][realtime]") {
    const Model m = generator_model(82, 8000);
    dsp::SynthEngine s;
    s.set_model(dsp::make_realtime_model(m));
    s.prepare(48000, 256, 1);
    const int lat = s.latency_samples();
    REQUIRE(lat > 0);
    const int64_t on_at = 1000;
    int64_t allocations = 0;
    const Planar out = run_synth(s, 1, 48000 / 2, 256, [&](int64_t t0, int n) {
        if (on_at >= t0 && on_at < t0 + n) s.note_on(64, 1.0f, int(on_at - t0));
    }, &allocations);
    CHECK(allocations == 0);
    CHECK(all_finite(out));
    // Nothing before the note's first model sample reaches the filter's reach (48 model samples).
    const int64_t reach = dsp::Resampler::kHalfWidthLowSamples * 6 + 6;
    for (int64_t t = 0; t < on_at + lat - reach; ++t) REQUIRE(out[0][size_t(t)] == 0.0f);
    float peak = 0;
    for (float x : out[0]) peak = std::max(peak, std::fabs(x));
    CHECK(peak > 0.01f);
    CHECK(s.active_voices() == 1);
}

TEST_CASE("synth engine: no allocation with notes, voice stealing, swaps and crossfades", "[dsp][realtime]") {
    const bool pooled_model = GENERATE(false, true);  // model a pooled (model/pooled.h), b flat
    INFO((pooled_model ? "pooled" : "flat") << " generator");
    const auto a = dsp::make_realtime_model(pooled_model ? pooled_generator(83, {2, 2}) : generator_model(83, 8000));
    const auto b = dsp::make_realtime_model(generator_model(84, 16000));
    dsp::SynthEngine s;
    s.set_model(a);
    s.prepare(44100, 128, 2);
    int64_t allocations = 0;
    std::mt19937 rng(5);
    auto events = [&](int64_t, int n) {
        for (int k = 0; k < 3; ++k) {
            const int note = 40 + int(rng() % 30);
            if (rng() % 2) s.note_on(note, 0.5f, int(rng() % unsigned(n)));
            else s.note_off(note, int(rng() % unsigned(n)));
        }
    };
    Planar out = run_synth(s, 2, 44100 / 4, 128, events, &allocations);
    s.set_model(b);
    out = run_synth(s, 2, 44100 / 4, 128, events, &allocations);
    s.collect_garbage();
    s.set_model(a);
    s.set_temperature(0.5f);
    out = run_synth(s, 2, 44100 / 4, 128, [&](int64_t t, int n) { events(t, n); if (t > 5000) s.all_notes_off(); },
                    &allocations);
    s.collect_garbage();
    CHECK(allocations == 0);
    CHECK(all_finite(out));
    CHECK(s.stats().model_swaps == 2);
    CHECK(s.active_voices() <= dsp::SynthEngine::kMaxVoices);
}

TEST_CASE("synth engine: a model that makes NaN gives silence and counted events, then recovers", "[dsp][realtime]") {
    Model poisoned = generator_model(85, 8000);
    poisoned.tensor("backbone.layers.1.mixer.in_proj.weight")[0] = std::numeric_limits<float>::infinity();
    dsp::SynthEngine s;
    s.set_model(dsp::make_realtime_model(poisoned));
    s.prepare(48000, 256, 1);
    Planar out = run_synth(s, 1, 48000 / 4, 256, [&](int64_t t, int) { if (t == 0) s.note_on(60, 1, 0); });
    for (float x : out[0]) REQUIRE(x == 0.0f);
    const int64_t events = s.stats().nonfinite_events;
    CHECK(events >= 40);  // every block, the voice is re-primed and fails again
    s.set_model(dsp::make_realtime_model(generator_model(86, 8000)));  // the held note goes on in it
    out = run_synth(s, 1, 48000 / 4, 256, nullptr);
    const int64_t after = s.stats().nonfinite_events;
    CHECK(after - events <= 2 + int64_t(dsp::kCrossfadeSeconds * 48000 / 256));  // during the fade only
    s.collect_garbage();
    out = run_synth(s, 1, 48000 / 4, 256, nullptr);
    CHECK(all_finite(out));
    float peak = 0;
    for (float x : out[0]) peak = std::max(peak, std::fabs(x));
    CHECK(peak > 0.01f);
    CHECK(s.stats().nonfinite_events == after);
}

TEST_CASE("synth engine: swaps while another thread runs process() with notes", "[dsp][realtime][stress]") {
    std::vector<RealtimeModelPtr> models{dsp::make_realtime_model(generator_model(90, 8000)),
                                         dsp::make_realtime_model(generator_model(91, 8000)), nullptr};
    dsp::SynthEngine s;
    s.set_model(models[0]);
    s.prepare(48000, 64, 2);
    std::atomic<bool> stop{false};
    std::atomic<bool> finite{true};
    std::atomic<int64_t> blocks{0};
    std::thread audio([&] {
        Planar out(2, std::vector<float>(64));
        float* op[2] = {out[0].data(), out[1].data()};
        int k = 0;
        while (!stop.load()) {
            if (k % 50 == 0) s.note_on(48 + k % 24, 0.8f, k % 64);
            if (k % 70 == 0) s.note_off(48 + (k / 2) % 24, 3);
            s.process(op, 2, 64);
            for (auto& ch : out)
                for (float x : ch)
                    if (!std::isfinite(x)) finite = false;
            ++k;
            ++blocks;
        }
    });
    int64_t taken = 0;
    for (int i = 0; i < 1000; ++i) {
        s.set_model(models[size_t(i % 3)]);
        s.set_temperature(0.5f + float(i % 5) / 5.0f);
        if (i % 3 == 0) s.collect_garbage();
        if (i % 4 == 3) wait_for_swap(s, taken);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop = true;
    audio.join();
    s.collect_garbage();
    CHECK(finite.load());
    CHECK(s.stats().model_swaps >= 250);
}

TEST_CASE("engines refuse a model of the other kind, and keep the running one", "[dsp][realtime]") {
    dsp::EffectEngine e;
    e.prepare(48000, 64, 1);
    CHECK_THROWS_AS(e.set_model(dsp::make_realtime_model(generator_model(1))), std::invalid_argument);
    CHECK(e.model() == nullptr);
    dsp::SynthEngine s;
    s.prepare(48000, 64, 1);
    CHECK_THROWS_AS(s.set_model(dsp::make_realtime_model(effect_model(1))), std::invalid_argument);
    // An effect model at a rate the resampler cannot reach is refused with the reason.
    dsp::EffectEngine odd;
    odd.prepare(44100, 64, 1);
    try {
        odd.set_model(dsp::make_realtime_model(effect_model(2, 0, 48001)));
        FAIL("expected a refusal");
    } catch (const std::invalid_argument& err) {
        CHECK(std::string(err.what()).find("48001") != std::string::npos);
    }
}
