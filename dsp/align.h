// Alignment and level checks for effect captures: a recording of the input played through
// gear comes back late by the interface's round-trip latency, and a model trained on a
// misaligned pair learns a delay it cannot produce (it is causal) and smears everything.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mw::dsp {

struct AlignResult {
    int64_t lag = 0;            // target[t + lag] lines up with input[t] (positive: target late)
    double correlation = 0;     // normalised cross-correlation at that lag, in [-1, 1]
    double second_best = 0;     // the best normalised correlation more than 8 samples away
};

// Finds the lag in [-max_lag, max_lag] that maximises the normalised cross-correlation of
// input and target over their loudest `window` samples. Effects that distort still keep a
// clear peak at the true lag (their output follows the input's zero crossings).
AlignResult find_lag(const std::vector<float>& input, const std::vector<float>& target,
                     int64_t max_lag, int64_t window = 48000);

// Shifts target by -lag (drops the first `lag` samples and pads the end with zeros, or the
// reverse for a negative lag), so that target[t] lines up with input[t].
void apply_lag(std::vector<float>& target, int64_t lag);

// Peak level in dBFS (-inf for silence).
double peak_dbfs(const std::vector<float>& x);
// RMS level in dBFS.
double rms_dbfs(const std::vector<float>& x);
// Fraction of samples at or above `threshold` in magnitude (clipping check).
double clipped_fraction(const std::vector<float>& x, float threshold = 0.999f);

} // namespace mw::dsp
