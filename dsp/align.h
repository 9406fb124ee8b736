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

// The latency as the onset of the target's response to clicks or transients of the input at
// `event_frames`: for each, the first target sample within [event, event + max_lag] above 5% of
// that window's peak (and above the noise before the event); returns the median over events,
// or -1 when no event gives a clear onset. Unlike the cross-correlation peak, which lands on
// the effect's group delay (filters in a pedal shift it by tens of samples without any
// latency), the onset is the delay a causal model cannot learn.
int64_t onset_lag(const std::vector<float>& input, const std::vector<float>& target,
                  const std::vector<int64_t>& event_frames, int64_t max_lag);

// The first transient of the input that follows quiet (below 1% of the peak for the 2000
// samples before it, or the start of the file): the frame where it first exceeds 10% of the
// input's peak, or -1.
int64_t first_transient(const std::vector<float>& input);

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
