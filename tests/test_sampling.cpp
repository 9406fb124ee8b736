// The sampler's statistics: softmax(logits / T), the nucleus, greedy at T = 0, and seeds.
#include "model/sampling.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
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

// The sampler's draw written out plainly: every class sorted by probability (ties: the lower
// class first), the nucleus summed in that order, one uniform from the sampler's stream.
static int full_sort_draw(Sampler& stream, const std::vector<float>& logits, float temperature, float top_p) {
    const int V = int(logits.size());
    const int best = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    std::vector<float> p(static_cast<size_t>(V));
    double total = 0;
    for (int v = 0; v < V; ++v) {
        const float e = std::exp((logits[size_t(v)] - logits[size_t(best)]) / temperature);
        total += p[size_t(v)] = std::isfinite(e) ? e : 0.0f;
    }
    std::vector<int> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    int kept = V;
    if (top_p < 1.0f) {
        std::sort(order.begin(), order.end(), [&](int a, int b) {
            return p[size_t(a)] > p[size_t(b)] || (p[size_t(a)] == p[size_t(b)] && a < b);
        });
        const double target = std::max(0.0f, top_p) * total;
        double mass = 0;
        kept = 0;
        while (kept < V && (kept == 0 || mass < target)) mass += p[size_t(order[size_t(kept++)])];
        total = mass;
    }
    double r = stream.next_uniform() * total;
    for (int i = 0; i < kept; ++i)
        if ((r -= p[size_t(order[size_t(i)])]) < 0) return order[size_t(i)];
    return order[size_t(kept - 1)];
}

TEST_CASE("sampler: top-p sorts only its candidates and draws what sorting every class draws", "[sampling]") {
    std::mt19937 rng(12);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    int draws = 0, distinct_nuclei = 0;
    for (int trial = 0; trial < 400; ++trial) {
        // flat, peaky, with ties (quantised logits) and with classes that underflow to 0
        const float spread = std::vector<float>{0.1f, 1.0f, 4.0f, 30.0f}[size_t(trial % 4)];
        std::vector<float> logits(256);
        for (float& l : logits) l = spread * normal(rng);
        if (trial % 3 == 0)
            for (float& l : logits) l = std::round(l * 2.0f) / 2.0f;
        const float temperature = std::vector<float>{1.0f, 0.9f, 0.3f, 1.7f}[size_t(trial % 4 + trial / 100) % 4];
        const float top_p = std::vector<float>{0.95f, 0.5f, 0.99f, 0.0f, 0.999f, 0.8f}[size_t(trial % 6)];
        const uint64_t seed = 1000 + uint64_t(trial);
        Sampler fast({temperature, top_p, seed}), stream({temperature, top_p, seed});
        std::vector<int> seen;
        for (int i = 0; i < 50; ++i, ++draws) {
            const int want = full_sort_draw(stream, logits, temperature, top_p);
            REQUIRE(fast.sample(logits.data()) == want);
            if (std::find(seen.begin(), seen.end(), want) == seen.end()) seen.push_back(want);
        }
        distinct_nuclei += seen.size() > 1 ? 1 : 0;
    }
    CHECK(draws == 20000);
    CHECK(distinct_nuclei > 100);  // (most trials draw from more than one class)
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
