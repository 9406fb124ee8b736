// Sampling the next mu-law class from logits: temperature, top-p (nucleus), a seed.
// Reproducible across platforms: our own PRNG and arithmetic, no std:: distributions.
#pragma once

#include "kernels/counter_draws.h"  // mix64

#include <cstdint>
#include <vector>

namespace mw {

struct SamplerParams {
    float temperature = 1.0f;  // 0 = greedy (argmax)
    float top_p = 1.0f;        // keep the smallest set of classes whose mass reaches top_p
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(SamplerParams params, int vocab = 256);
    // Picks a class from logits [V]. Allocation-free (scratch sized in the constructor).
    int sample(const float* logits);
    const SamplerParams& params() const { return params_; }
    // Starts over as a new Sampler(params) would, without allocating (the real-time engine
    // re-seeds a voice on the audio thread).
    void reset(const SamplerParams& params);
    // Changes temperature and top-p, keeping the random stream (allocation-free).
    void set_temperature_top_p(float temperature, float top_p);
    // Uniform in [0, 1) from the sampler's stream (xoshiro256**).
    double next_uniform();

private:
    SamplerParams params_;
    int vocab_;
    uint64_t s_[4];
    std::vector<float> probs_;  // [V]
    std::vector<int> order_;    // [V]
    std::vector<uint64_t> keys_;  // [V] top-p's sort keys: probability bits, class
};

// Label guidance (docs/DIGITS.md): the logits a clip asked for label c is drawn from,
//   out[v] = (1 + w)·lp[c][v] − w·log( (1/K) Σ_k exp(lp[k][v]) ),
// where lp [K][V] are the K labels' log-softmaxed next-class logits, each label's stream fed
// the same clip. The average is what the model predicts when no label is preferred, so w
// pushes each class towards what label c makes likelier than the labels do on average
// (classifier-free guidance, with the label-averaged prediction standing in for an
// unconditional model); w = 0 gives lp[c]. In double inside.
void label_guidance_logits(const float* lp, int K, int V, int c, float w, float* out);
// Guidance against the null label (a model trained with label dropout, ModelConfig::label_null):
//   out[v] = (1 + w)·a[v] − w·b[v],
// a and b [V] the next-class logits of the label's stream and of the null label's stream, fed
// the same clip: the null label's prediction is the unconditional one that
// label_guidance_logits estimates by the labels' average. Raw logits serve as well as
// log-softmaxes: the two differ by a constant per stream, which moves out by a constant, and a
// softmax (the sampler's) does not see constants. w = 0 gives a. In double inside.
void null_guidance_logits(const float* lp_label, const float* lp_null, int V, float w, float* out);
// logits [V] -> log-softmax [V] (in double inside), in place allowed.
void log_softmax(const float* logits, int V, float* out);

} // namespace mw
