#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace mw {

namespace {
uint64_t splitmix64(uint64_t& x) { return mix64(x += 0x9E3779B97F4A7C15ull); }
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
} // namespace

Sampler::Sampler(SamplerParams params, int vocab)
    : params_(params), vocab_(vocab), probs_(size_t(vocab)), order_(size_t(vocab)), keys_(size_t(vocab)) {
    uint64_t seed = params.seed;
    for (uint64_t& s : s_) s = splitmix64(seed);
}

void Sampler::reset(const SamplerParams& params) {
    params_ = params;
    uint64_t seed = params.seed;
    for (uint64_t& s : s_) s = splitmix64(seed);
}

void Sampler::set_temperature_top_p(float temperature, float top_p) {
    params_.temperature = temperature;
    params_.top_p = top_p;
}

double Sampler::next_uniform() {  // xoshiro256**
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return double(result >> 11) * 0x1.0p-53;
}

int Sampler::sample(const float* logits) {
    const int V = vocab_;
    int best = 0;
    for (int v = 1; v < V; ++v)
        if (logits[v] > logits[best]) best = v;
    if (params_.temperature <= 0.0f || !std::isfinite(logits[best])) return best;

    // p_v ∝ exp((logit_v - max) / T)
    double total = 0;
    for (int v = 0; v < V; ++v) {
        const float p = std::exp((logits[v] - logits[best]) / params_.temperature);
        probs_[size_t(v)] = std::isfinite(p) ? p : 0.0f;
        total += probs_[size_t(v)];
    }
    // Nucleus: the most probable classes (ties: the lower class first) until their mass reaches
    // top_p. Only the candidates with p >= t are sorted, t = (1 - top_p)·total / V (less a
    // little): the classes under t hold less than total - target together, so the nucleus lies
    // among the candidates, and the candidates sorted are the first classes of the whole order
    // sorted (an upper set of it), summed in the same order: the same draw as sorting all V.
    // Keys sort by p descending, then class ascending (p >= 0, so its bits order as integers).
    int kept = V;
    if (params_.top_p < 1.0f) {
        const double top_p = std::max(0.0f, params_.top_p), target = top_p * total;
        auto key = [&](int v) {
            uint32_t bits;
            std::memcpy(&bits, &probs_[size_t(v)], sizeof bits);
            return (uint64_t(~bits) << 32) | uint32_t(v);
        };
        auto nucleus = [&](float t) {  // false when the candidates fall short (rounding): t = 0 then
            int n = 0;
            for (int v = 0; v < V; ++v)
                if (probs_[size_t(v)] >= t) keys_[size_t(n++)] = key(v);
            std::sort(keys_.begin(), keys_.begin() + n);
            double mass = 0;
            kept = 0;
            while (kept < n && (kept == 0 || mass < target)) {
                const int v = int(uint32_t(keys_[size_t(kept++)]));
                order_[size_t(kept - 1)] = v;
                mass += probs_[size_t(v)];
            }
            total = mass;
            return kept > 0 && (mass >= target || n == V);
        };
        const double sum = total;
        if (!nucleus(float((1.0 - top_p) * sum / V * 0.999))) {
            total = sum;
            nucleus(0.0f);
        }
    } else {
        std::iota(order_.begin(), order_.end(), 0);
    }
    double r = next_uniform() * total;
    for (int i = 0; i < kept; ++i) {
        r -= probs_[size_t(order_[size_t(i)])];
        if (r < 0) return order_[size_t(i)];
    }
    return order_[size_t(kept - 1)];
}

void log_softmax(const float* logits, int V, float* out) {
    double top = logits[0];
    for (int v = 1; v < V; ++v) top = std::max(top, double(logits[v]));
    double total = 0;
    for (int v = 0; v < V; ++v) total += std::exp(double(logits[v]) - top);
    const double shift = top + std::log(total);
    for (int v = 0; v < V; ++v) out[v] = float(double(logits[v]) - shift);
}

void label_guidance_logits(const float* lp, int K, int V, int c, float w, float* out) {
    for (int v = 0; v < V; ++v) {
        double top = lp[v];
        for (int k = 1; k < K; ++k) top = std::max(top, double(lp[size_t(k) * size_t(V) + size_t(v)]));
        double mean = 0;  // (1/K) Σ_k p(v | k), scaled by e^-top
        for (int k = 0; k < K; ++k) mean += std::exp(double(lp[size_t(k) * size_t(V) + size_t(v)]) - top);
        mean /= K;
        const double own = lp[size_t(c) * size_t(V) + size_t(v)];
        out[v] = float((1.0 + w) * own - w * (std::log(mean) + top));
    }
}

void null_guidance_logits(const float* a, const float* b, int V, float w, float* out) {
    for (int v = 0; v < V; ++v) out[v] = float((1.0 + w) * double(a[v]) - w * double(b[v]));
}

} // namespace mw
