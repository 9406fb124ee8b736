// The sampler's statistics: softmax(logits / T), the nucleus, greedy at T = 0, and seeds.
#include "model/sampling.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using namespace mw;

namespace {
std::vector<double> frequencies(Sampler& s, const std::vector<float>& logits, int draws) {
    std::vector<double> f(logits.size(), 0.0);
    for (int i = 0; i < draws; ++i) f[size_t(s.sample(logits.data()))] += 1.0 / draws;
    return f;
}
std::vector<double> softmax(const std::vector<float>& logits, double T) {
    std::vector<double> p(logits.size());
    double total = 0;
    for (size_t i = 0; i < p.size(); ++i) total += p[i] = std::exp(logits[i] / T);
    for (double& v : p) v /= total;
    return p;
}
// A skewed distribution over 256 classes, a few of them dominant.
std::vector<float> test_logits() {
    std::vector<float> l(256);
    for (int i = 0; i < 256; ++i) l[size_t(i)] = -0.02f * float((i * 37) % 256);
    l[10] = 3.0f;
    l[200] = 2.5f;
    l[77] = 2.0f;
    return l;
}
} // namespace

TEST_CASE("sampler: frequencies follow softmax(logits / T)", "[sampling]") {
    const auto logits = test_logits();
    for (float T : {1.0f, 0.5f, 2.0f}) {
        Sampler s({T, 1.0f, 1234});
        const int draws = 200000;
        const auto f = frequencies(s, logits, draws);
        const auto p = softmax(logits, T);
        for (size_t i = 0; i < p.size(); ++i) {
            const double sigma = std::sqrt(p[i] * (1 - p[i]) / draws);
            INFO("T " << T << " class " << i << " p " << p[i] << " f " << f[i]);
            CHECK(std::fabs(f[i] - p[i]) <= 5 * sigma + 1e-4);
        }
    }
}

TEST_CASE("sampler: top-p keeps only the nucleus, renormalised", "[sampling]") {
    const auto logits = test_logits();
    const auto p = softmax(logits, 1.0);
    // classes 10, 200, 77 in that order of probability
    const double mass2 = p[10] + p[200];
    Sampler s({1.0f, float(mass2 * 0.99), 99});  // nucleus = {10, 200}
    const auto f = frequencies(s, logits, 100000);
    CHECK(f[10] + f[200] == Approx(1.0));
    CHECK(f[10] == Approx(p[10] / mass2).margin(0.01));
    Sampler one({1.0f, 0.0f, 5});  // top-p 0: only the most probable class
    for (int i = 0; i < 100; ++i) CHECK(one.sample(logits.data()) == 10);
}

TEST_CASE("sampler: temperature 0 is greedy, and seeds reproduce and differ", "[sampling]") {
    const auto logits = test_logits();
    Sampler greedy({0.0f, 1.0f, 1});
    for (int i = 0; i < 50; ++i) CHECK(greedy.sample(logits.data()) == 10);

    Sampler a({1.0f, 0.9f, 42}), b({1.0f, 0.9f, 42}), c({1.0f, 0.9f, 43});
    std::vector<int> sa, sb, sc;
    for (int i = 0; i < 500; ++i) {
        sa.push_back(a.sample(logits.data()));
        sb.push_back(b.sample(logits.data()));
        sc.push_back(c.sample(logits.data()));
    }
    CHECK(sa == sb);
    CHECK(sa != sc);
}

TEST_CASE("sampler: the uniform stream stays within 0..1 with the right mean", "[sampling]") {
    Sampler s({1.0f, 1.0f, 7});
    double sum = 0;
    for (int i = 0; i < 100000; ++i) {
        const double u = s.next_uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        sum += u;
    }
    CHECK(sum / 100000 == Approx(0.5).margin(0.005));
}
