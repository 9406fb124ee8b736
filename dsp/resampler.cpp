#include "dsp/resampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

namespace mw::dsp {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Modified Bessel function of the first kind, order 0, by its power series.
double bessel_i0(double x) {
    double sum = 1.0, term = 1.0;
    const double q = x * x / 4.0;
    for (int k = 1; k < 200; ++k) {
        term *= q / (double(k) * double(k));
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

int64_t floor_div(int64_t a, int64_t b) {  // b > 0
    int64_t q = a / b;
    if ((a % b) != 0 && a < 0) --q;
    return q;
}

bool whole_hz(double hz) { return hz > 0 && hz < 1e7 && std::fabs(hz - std::round(hz)) < 1e-6; }

// Σ c[i]·x[i] over n (a multiple of 8) floats, eight partial sums so it vectorises.
inline float dot8(const float* c, const float* x, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += c[i + j] * x[i + j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

} // namespace

bool Resampler::supported(double in_rate_hz, double out_rate_hz, std::string* why) {
    auto fail = [&](const std::string& text) {
        if (why) *why = text;
        return false;
    };
    if (!whole_hz(in_rate_hz) || !whole_hz(out_rate_hz))
        return fail("the resampler needs whole-Hz rates below 10 MHz (got " +
                    std::to_string(in_rate_hz) + " and " + std::to_string(out_rate_hz) + ")");
    const int64_t in = std::llround(in_rate_hz), out = std::llround(out_rate_hz);
    const int64_t g = std::gcd(in, out);
    if (out / g > kMaxPhases)
        return fail("the ratio " + std::to_string(out) + "/" + std::to_string(in) + " Hz reduces to " +
                    std::to_string(out / g) + "/" + std::to_string(in / g) + ", more than " +
                    std::to_string(kMaxPhases) + " filter phases; use a common rate (44100, 48000, "
                    "88200, 96000, ...) or the delta rate mode");
    return true;
}

void Resampler::prepare(double in_rate_hz, double out_rate_hz, int channels, int max_push,
                        DelayUnit unit) {
    std::string why;
    if (!supported(in_rate_hz, out_rate_hz, &why)) throw std::invalid_argument(why);
    if (channels < 1 || max_push < 1)
        throw std::invalid_argument("Resampler::prepare: channels and max_push must be >= 1");
    const int64_t in = std::llround(in_rate_hz), out = std::llround(out_rate_hz);
    const int64_t g = std::gcd(in, out);
    channels_ = channels;
    L_ = out / g;
    M_ = in / g;
    M_div_ = M_ / L_;
    M_mod_ = M_ % L_;
    // Ticks per sample of the lower rate: R / f_low (R = in·L = out·M).
    const int64_t ticks_low = in <= out ? L_ : M_;
    const int64_t W = int64_t(kHalfWidthLowSamples) * ticks_low;  // half-width, ticks
    look_ahead_ = int((W + L_ - 1) / L_);                           // Jf = ceil(W / L)
    taps_ = 2 * look_ahead_ + 1;
    taps_padded_ = (taps_ + 7) & ~7;
    // Causal: the newest tap of output k is input floor((k·M − D) / L) + Jf, which must not be
    // newer than k's own instant k·M / L; D >= Jf·L guarantees that.
    const int64_t min_delay = int64_t(look_ahead_) * L_;
    delay_ticks_ = unit == DelayUnit::input ? min_delay : ((min_delay + M_ - 1) / M_) * M_;

    // h(τ) = sinc(2·fc·τ) · kaiser(τ / W), fc in cycles per tick; each phase normalised to sum 1.
    const double fc = kCutoff / double(ticks_low);
    const double i0_beta = bessel_i0(kKaiserBeta);
    coefs_.assign(size_t(L_) * size_t(taps_padded_), 0.0f);
    std::vector<double> phase(static_cast<size_t>(taps_));
    for (int64_t p = 0; p < L_; ++p) {
        double sum = 0;
        for (int i = 0; i < taps_; ++i) {
            // coefs[p][i] multiplies x[n0 + i] = x[nc + Jf − (T − 1 − i)], at τ = p + (j − Jf)·L
            const int64_t j = taps_ - 1 - i;
            const double tau = double(p + (j - look_ahead_) * L_);
            const double x = tau / double(W);
            double h = 0;
            if (std::fabs(x) < 1.0) {
                const double a = 2.0 * fc * tau;
                const double sinc = a == 0 ? 1.0 : std::sin(kPi * a) / (kPi * a);
                h = sinc * bessel_i0(kKaiserBeta * std::sqrt(1.0 - x * x)) / i0_beta;
            }
            phase[size_t(i)] = h;
            sum += h;
        }
        for (int i = 0; i < taps_; ++i)
            coefs_[size_t(p) * size_t(taps_padded_) + size_t(i)] = float(phase[size_t(i)] / sum);
    }
    // History: the pre-roll (at most T + ceil(M/L) samples), one push, slack for a pull that
    // leaves outputs unread, and the padding a dot product reads past the newest tap.
    const int64_t steps = (M_ + L_ - 1) / L_;
    capacity_ = int(2 * taps_ + 2 * steps + max_push + taps_padded_ + 16);
    history_.assign(size_t(channels_) * size_t(capacity_), 0.0f);
    reset();
}

void Resampler::reset() noexcept {
    if (L_ == 0) return;
    const int64_t c = -delay_ticks_;
    nc_ = floor_div(c, L_);
    p_ = c - nc_ * L_;
    const int64_t n0 = nc_ + look_ahead_ - taps_ + 1;  // < 0: the first outputs read silence
    base_ = std::min<int64_t>(n0, 0);
    count_ = int(-base_);
    std::fill(history_.begin(), history_.end(), 0.0f);
}

void Resampler::push(const float* const* in, int n) noexcept {
    const int room = capacity_ - taps_padded_ - count_;
    n = std::min(n, std::max(room, 0));  // never happens when used as documented
    for (int ch = 0; ch < channels_; ++ch) {
        float* h = history_.data() + size_t(ch) * size_t(capacity_) + count_;
        const float* x = in[ch];
        for (int t = 0; t < n; ++t) h[t] = std::isfinite(x[t]) ? x[t] : 0.0f;
    }
    count_ += n;
}

int Resampler::ready() const noexcept {
    if (L_ == 0) return 0;
    // Output k' (0 = the next) is ready when its newest tap nc + floor((p + k'·M) / L) + Jf is
    // at most the newest input base + count − 1.
    const int64_t A = base_ + count_ - 1 - look_ahead_ - nc_;
    if (A < 0) return 0;
    const int64_t k = ((A + 1) * L_ - p_ + M_ - 1) / M_;
    return int(std::min<int64_t>(k, 1 << 30));
}

int Resampler::read(float* const* out, int n) noexcept {
    const int r = std::min(n, ready());
    for (int k = 0; k < r; ++k) {
        const int64_t offset = nc_ + look_ahead_ - taps_ + 1 - base_;  // n0 − base >= 0
        const float* c = coefs_.data() + size_t(p_) * size_t(taps_padded_);
        for (int ch = 0; ch < channels_; ++ch)
            out[ch][k] = dot8(c, history_.data() + size_t(ch) * size_t(capacity_) + offset,
                              taps_padded_);
        p_ += M_mod_;
        nc_ += M_div_;
        if (p_ >= L_) {
            p_ -= L_;
            ++nc_;
        }
    }
    for (int ch = 0; ch < channels_; ++ch)
        for (int k = r; k < n; ++k) out[ch][k] = 0.0f;
    // Drop the inputs no later output reads.
    const int64_t drop = std::clamp<int64_t>(nc_ + look_ahead_ - taps_ + 1 - base_, 0, count_);
    if (drop > 0) {
        for (int ch = 0; ch < channels_; ++ch) {
            float* h = history_.data() + size_t(ch) * size_t(capacity_);
            std::memmove(h, h + drop, size_t(count_ - drop) * sizeof(float));
        }
        base_ += drop;
        count_ -= int(drop);
    }
    return r;
}

} // namespace mw::dsp
