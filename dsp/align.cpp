#include "dsp/align.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mw::dsp {

namespace {
// Start of the `window`-sample stretch with the most energy (steps of window/4).
int64_t loudest_window(const std::vector<float>& x, int64_t window) {
    const int64_t n = int64_t(x.size());
    if (n <= window) return 0;
    int64_t best = 0;
    double best_energy = -1;
    const int64_t hop = std::max<int64_t>(1, window / 4);
    for (int64_t start = 0; start + window <= n; start += hop) {
        double e = 0;
        for (int64_t t = start; t < start + window; ++t) e += double(x[size_t(t)]) * x[size_t(t)];
        if (e > best_energy) {
            best_energy = e;
            best = start;
        }
    }
    return best;
}
} // namespace

AlignResult find_lag(const std::vector<float>& input, const std::vector<float>& target,
                     int64_t max_lag, int64_t window) {
    const int64_t n = int64_t(std::min(input.size(), target.size()));
    AlignResult r;
    if (n < 2) return r;
    window = std::min(window, n);
    max_lag = std::min(max_lag, n / 2);
    // Keep the window inside both signals at every lag tried.
    int64_t start = loudest_window(input, window);
    start = std::clamp(start, max_lag, std::max(max_lag, n - window - max_lag));
    const int64_t len = std::min(window, n - start - max_lag);
    if (len < 16) return r;
    double ein = 0;
    for (int64_t t = start; t < start + len; ++t) ein += double(input[size_t(t)]) * input[size_t(t)];
    std::vector<double> corr(size_t(2 * max_lag + 1));
    for (int64_t lag = -max_lag; lag <= max_lag; ++lag) {
        double dot = 0, et = 0;
        for (int64_t t = start; t < start + len; ++t) {
            const double b = target[size_t(t + lag)];
            dot += double(input[size_t(t)]) * b;
            et += b * b;
        }
        corr[size_t(lag + max_lag)] = (ein > 0 && et > 0) ? dot / std::sqrt(ein * et) : 0.0;
    }
    r.correlation = -std::numeric_limits<double>::infinity();
    for (int64_t lag = -max_lag; lag <= max_lag; ++lag) {
        if (corr[size_t(lag + max_lag)] > r.correlation) {
            r.correlation = corr[size_t(lag + max_lag)];
            r.lag = lag;
        }
    }
    r.second_best = -1;
    for (int64_t lag = -max_lag; lag <= max_lag; ++lag)
        if (std::abs(lag - r.lag) > 8) r.second_best = std::max(r.second_best, corr[size_t(lag + max_lag)]);
    return r;
}

int64_t onset_lag(const std::vector<float>& input, const std::vector<float>& target,
                  const std::vector<int64_t>& event_frames, int64_t max_lag) {
    const int64_t n = int64_t(std::min(input.size(), target.size()));
    std::vector<int64_t> lags;
    for (int64_t f : event_frames) {
        if (f < 0 || f + max_lag >= n) continue;
        float peak = 0;
        for (int64_t t = f; t <= f + max_lag; ++t) peak = std::max(peak, std::abs(target[size_t(t)]));
        double noise = 0;  // RMS of the target just before the event
        const int64_t q0 = std::max<int64_t>(0, f - 2000), q1 = std::max<int64_t>(0, f - 16);
        for (int64_t t = q0; t < q1; ++t) noise += double(target[size_t(t)]) * target[size_t(t)];
        noise = q1 > q0 ? std::sqrt(noise / double(q1 - q0)) : 0.0;
        const double threshold = std::max(0.05 * peak, 4.0 * noise);
        if (peak <= 0 || threshold >= peak) continue;  // no response above the noise
        for (int64_t t = f; t <= f + max_lag; ++t) {
            if (std::abs(target[size_t(t)]) > threshold) {
                lags.push_back(t - f);
                break;
            }
        }
    }
    if (lags.empty()) return -1;
    std::sort(lags.begin(), lags.end());
    return lags[lags.size() / 2];
}

int64_t first_transient(const std::vector<float>& input) {
    float peak = 0;
    for (float v : input) peak = std::max(peak, std::abs(v));
    if (peak <= 0) return -1;
    for (int64_t t = 0; t < int64_t(input.size()); ++t) {
        if (std::abs(input[size_t(t)]) <= 0.1f * peak) continue;
        // Quiet before it (its own attack, the last 50 samples, may rise through the 1%).
        for (int64_t q = std::max<int64_t>(0, t - 2000); q < t - 50; ++q)
            if (std::abs(input[size_t(q)]) > 0.01f * peak) return -1;
        return t;
    }
    return -1;
}

void apply_lag(std::vector<float>& target, int64_t lag) {
    if (lag == 0 || target.empty()) return;
    const int64_t n = int64_t(target.size());
    if (lag > 0) {
        const int64_t k = std::min(lag, n);
        std::move(target.begin() + k, target.end(), target.begin());
        std::fill(target.end() - k, target.end(), 0.0f);
    } else {
        const int64_t k = std::min(-lag, n);
        std::move_backward(target.begin(), target.end() - k, target.end());
        std::fill(target.begin(), target.begin() + k, 0.0f);
    }
}

double peak_dbfs(const std::vector<float>& x) {
    float peak = 0;
    for (float v : x) peak = std::max(peak, std::abs(v));
    return peak > 0 ? 20.0 * std::log10(double(peak)) : -std::numeric_limits<double>::infinity();
}

double rms_dbfs(const std::vector<float>& x) {
    if (x.empty()) return -std::numeric_limits<double>::infinity();
    double e = 0;
    for (float v : x) e += double(v) * v;
    e /= double(x.size());
    return e > 0 ? 10.0 * std::log10(e) : -std::numeric_limits<double>::infinity();
}

double clipped_fraction(const std::vector<float>& x, float threshold) {
    if (x.empty()) return 0;
    int64_t n = 0;
    for (float v : x) n += std::abs(v) >= threshold;
    return double(n) / double(x.size());
}

} // namespace mw::dsp
