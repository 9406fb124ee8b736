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
