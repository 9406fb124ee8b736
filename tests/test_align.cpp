// Capture alignment: the lag between a dry signal and its (distorted, delayed) recording.
#include "dsp/align.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

using namespace mw;

namespace {
// A guitar-like test signal: decaying partials plus a little noise.
std::vector<float> dry(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.0f, 0.02f);
    std::vector<float> x(n);
    for (size_t t = 0; t < n; ++t) {
        const double s = double(t % 12000) / 48000.0;
        x[t] = float(0.4 * std::exp(-3 * s) * (std::sin(2 * M_PI * 196 * s) + 0.5 * std::sin(2 * M_PI * 392 * s))) +
               noise(rng);
    }
    return x;
}
std::vector<float> drive(const std::vector<float>& x, int64_t delay) {
    std::vector<float> y(x.size(), 0.0f);
    for (size_t t = 0; t < x.size(); ++t)
        if (int64_t(t) - delay >= 0 && int64_t(t) - delay < int64_t(x.size()))
            y[t] = 0.5f * std::tanh(6.0f * x[size_t(int64_t(t) - delay)]);
    return y;
}
} // namespace

TEST_CASE("find_lag finds the latency of a distorted recording, late or early", "[align]") {
    const std::vector<float> x = dry(60000, 1);
    for (int64_t delay : {0, 1, 37, 480, -25}) {
        const dsp::AlignResult r = dsp::find_lag(x, drive(x, delay), 2400, 24000);
        CAPTURE(delay, r.lag, r.correlation, r.second_best);
        CHECK(r.lag == delay);
        CHECK(r.correlation > 0.8);
        CHECK(r.correlation > r.second_best);
    }
}

TEST_CASE("an unrelated recording (shuffled noise) correlates weakly", "[align]") {
    const std::vector<float> noise_a = [] {
        std::mt19937 rng(3);
        std::normal_distribution<float> d;
        std::vector<float> v(60000);
        for (float& s : v) s = d(rng);
        return v;
    }();
    std::vector<float> noise_b = noise_a;
    std::shuffle(noise_b.begin(), noise_b.end(), std::mt19937(4));
    CHECK(dsp::find_lag(noise_a, noise_b, 2400, 24000).correlation < 0.1);
}

TEST_CASE("apply_lag lines the target up with the input", "[align]") {
    std::vector<float> t = {0, 0, 1, 2, 3};
    dsp::apply_lag(t, 2);
    CHECK(t == std::vector<float>{1, 2, 3, 0, 0});
    dsp::apply_lag(t, -1);
    CHECK(t == std::vector<float>{0, 1, 2, 3, 0});
}

TEST_CASE("levels: peak, RMS and clipping", "[align]") {
    std::vector<float> x = {0.5f, -1.0f, 0.25f, 1.0f};
    CHECK(dsp::peak_dbfs(x) == Approx(0.0).margin(1e-9));
    CHECK(dsp::clipped_fraction(x) == Approx(0.5));
    CHECK(std::isinf(dsp::peak_dbfs(std::vector<float>(10, 0.0f))));
    CHECK(dsp::rms_dbfs(std::vector<float>(10, 0.5f)) == Approx(20 * std::log10(0.5)));
}
