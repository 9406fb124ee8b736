// Counter-based draws that the host and the GPU compute alike: a draw is a pure function of
// (seed, step, lane, place), so it does not depend on the order the draws are made in, nor on
// which processor makes them. Plain C++ that nvcc also compiles for the device (as philox.h).
//
// The trainer's self-feed (TrainOptions::self_feed, docs/DIGITS.md) uses them: with chance p
// the class fed at a place is replaced by a draw from the model's own prediction for it. The
// CPU trainer draws with self_fed_class (model/trainer.h), the GPU trainer in
// kernels::cuda::train_self_feed; both call the functions below, so a GPU draw equals the
// host's whenever the two exponentials agree (CUDA's double exp is within 1 ulp of glibc's,
// which can move a draw only when u·total falls within that rounding of a class boundary).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MW_COUNTER_HD __host__ __device__
#else
#define MW_COUNTER_HD
#endif

namespace mw {

// splitmix64's finaliser: a well-mixed 64-bit hash of z (the seeding of Sampler's stream, and
// counter-based draws such as the trainer's self-feed).
MW_COUNTER_HD inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Self-feed's coin for place `pos` (from its clip's start) of lane `lane` in step `step` (from
// 0) of a run with this seed: drawn with chance p, and then u, uniform in [0, 1), picks the class.
struct SelfFeedCoin {
    bool drawn = false;
    double u = 0;
};
MW_COUNTER_HD inline SelfFeedCoin self_feed_coin(double p, uint64_t seed, int64_t step, int lane, int64_t pos) {
    uint64_t h = mix64(seed ^ 0x73656c66ull);  // "self": a stream apart from the data's
    h = mix64(h ^ uint64_t(step));
    h = mix64(h ^ uint64_t(lane));
    h = mix64(h ^ uint64_t(pos));
    if (double(h >> 11) * 0x1.0p-53 >= p) return {};
    return {true, double(mix64(h) >> 11) * 0x1.0p-53};
}

// The class u picks from softmax(logits[0..V)): the first whose cumulative mass passes u·total,
// the masses exp(logit − max) in double, summed in class order. e: V doubles of scratch that
// keep each exponential for the second pass (the host's), or null to compute it again (the
// GPU's, where a thread's 2 KB would spill): the same values either way.
MW_COUNTER_HD inline int32_t draw_class(const float* logits, int V, double u, double* e) {
    float m = logits[0];
    for (int v = 1; v < V; ++v) m = m < logits[v] ? logits[v] : m;
    double total = 0;
    for (int v = 0; v < V; ++v) {
        const double x = exp(double(logits[v] - m));
        if (e) e[v] = x;
        total += x;
    }
    const double target = u * total;
    double below = 0;
    for (int v = 0; v < V; ++v) {
        below += e ? e[v] : exp(double(logits[v] - m));
        if (below > target) return v;
    }
    return V - 1;
}

} // namespace mw
