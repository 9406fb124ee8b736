// The training losses and the metrics `eval` reports, each with its gradient.
//
// Effects: the error-to-signal ratio, ESR = Σ(y−t)² / Σt², optionally on first-order
// pre-emphasised signals p(x)_t = x_t − a·x_{t−1} (a high-pass that weights the treble the ear
// hears in distortion). Generators: cross-entropy of the next mu-law class, reported in bits
// per sample.
#pragma once

#include <cstdint>
#include <vector>

namespace mw {

constexpr double kPreemphasis = 0.95;  // the `esr_preemph` metric's coefficient

// Sums over one sequence, so that a batch (or a long file in pieces) adds them up and divides
// once: ESR = error / signal.
struct EsrSums {
    double error = 0;   // Σ (p(y) − p(t))²
    double signal = 0;  // Σ p(t)²
    EsrSums& operator+=(const EsrSums& o) {
        error += o.error;
        signal += o.signal;
        return *this;
    }
    double esr() const { return error / (signal > 0 ? signal : 1e-30); }
};

// ESR sums of y against target over [L], pre-emphasis coefficient a (0 = plain). The first
// `skip` samples are left out (a warm-up after a state reset); the first counted sample's
// pre-emphasis still uses the sample before it (x_{-1} = 0 at the start of the sequence).
EsrSums esr_sums(const float* y, const float* target, int64_t L, double a, int64_t skip = 0);

// dLoss/dy [L] for Loss = error / signal_total, where error is this sequence's part of the
// numerator (as esr_sums counts it) and signal_total the denominator of the whole batch.
// Writes (not adds) d_y; the skipped samples get 0.
void esr_grad(const float* y, const float* target, int64_t L, double a, int64_t skip,
              double signal_total, float* d_y);

// Multi-resolution STFT loss (after Yamamoto et al. 2020, "Parallel WaveGAN"), an optional term
// for effects: for each FFT size N (Hann window, hop N/4, frames wholly inside [0, L)), the
// spectral convergence ‖ |Y| − |T| ‖ / ‖ |T| ‖ plus the mean |ln|Y| − ln|T||, averaged over
// the sizes that fit in L. Magnitudes are smoothed, |Y| = sqrt(Re² + Im² + eps²), so the loss
// is differentiable everywhere. Returns scale · loss; with d_y (not null) writes (not adds)
// scale · dloss/dy there. Sizes must be powers of two; those longer than L are left out, and
// with none left the loss is 0.
struct StftLossParams {
    std::vector<int> sizes{128, 512, 2048};
    double eps = 1e-5;
};
double mrstft_loss(const float* y, const float* target, int64_t L, const StftLossParams& p, double scale,
                   float* d_y);

// Next-class cross-entropy: logits [L][V] at position t predict next_tokens[t] (the class
// that follows the input at t). Positions t < skip are left out. Returns Σ −ln p in nats and
// the count; with d_logits (not null) writes scale·(softmax − onehot) there, zero at skipped
// positions.
struct NllSums {
    double nats = 0;
    int64_t count = 0;
    NllSums& operator+=(const NllSums& o) {
        nats += o.nats;
        count += o.count;
        return *this;
    }
    double bits_per_sample() const;
};
NllSums cross_entropy(const float* logits, const int32_t* next_tokens, int64_t L, int V,
                      int64_t skip, float* d_logits, double scale);

} // namespace mw
