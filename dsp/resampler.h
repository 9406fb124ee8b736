// A real-time polyphase windowed-sinc resampler for one fixed rational ratio, several channels
// in lock step. prepare() designs the filter and sizes every buffer; push() and read() then
// allocate nothing, lock nothing and do a bounded amount of work: the audio thread runs them.
//
// Time is counted in ticks of the common rate R = in_rate·L = out_rate·M, where L/M is the
// reduced ratio out_rate/in_rate (48000 -> 44100: L = 147, M = 160). Input sample n sits at
// tick n·L, output sample k at tick k·M − D; D is the filter's delay. Output k is
//
//     y[k] = Σ_n h(k·M − D − n·L) · x[n]        h: Kaiser-windowed sinc, |τ| <= W ticks
//
// so the L phases of h (p = (k·M − D) mod L) are tabulated once, each a short FIR over the
// newest T input samples. The filter is designed on the lower of the two rates f_low:
//   half-width   kHalfWidthLowSamples = 48 samples of f_low (96 taps at f_low)
//   window       Kaiser, β = 10 (sidelobes near −100 dB)
//   cutoff       0.4666·f_low at −6 dB; passband to 0.433·f_low (19.1 kHz at 44.1 kHz), stopband
//                from 0.5·f_low (nothing aliases back, no image passes)
// tests/test_dsp_realtime.cpp measures the passband ripple and the stopband attenuation.
// Each phase is normalised to a DC gain of exactly 1.
//
// D is the smallest delay that keeps every output causal (no tap on an input newer than the
// output's own instant) and is a whole number of input samples (DelayUnit::input) or of output
// samples (DelayUnit::output). That makes a round trip host -> model -> host an exact whole
// number of host samples: the first stage's delay counted in its input (host) samples plus the
// second's counted in its output (host) samples.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mw::dsp {

class Resampler {
public:
    static constexpr int kHalfWidthLowSamples = 48;
    static constexpr double kKaiserBeta = 10.0;
    static constexpr double kCutoff = 0.4666;     // of f_low, −6 dB point
    static constexpr double kPassband = 0.4332;   // of f_low
    static constexpr int kMaxPhases = 4096;       // L after reduction

    enum class DelayUnit { input, output };

    // Whether these rates can be resampled: whole Hz, and a reduced ratio of at most
    // kMaxPhases phases. When not, *why (if given) says why.
    static bool supported(double in_rate_hz, double out_rate_hz, std::string* why = nullptr);

    // Designs the filter and sizes the buffers (allocates). max_push: the most input samples
    // per push() call. Throws std::invalid_argument when !supported(). Leaves the resampler
    // reset (its history silent).
    void prepare(double in_rate_hz, double out_rate_hz, int channels, int max_push,
                 DelayUnit unit);
    // Silence in the history, counters back to the start (allocation-free).
    void reset() noexcept;

    // Appends n samples of each channel (in: [channels][n], n <= max_push). Non-finite samples
    // are taken as 0.
    void push(const float* const* in, int n) noexcept;
    // How many outputs the pushed input fully determines.
    int ready() const noexcept;
    // Writes min(n, ready()) outputs of each channel (out: [channels][n]), zeros after them;
    // returns how many were computed.
    int read(float* const* out, int n) noexcept;

    // The delay D: in ticks, and in input or output samples (whole in the chosen unit).
    int64_t delay_ticks() const { return delay_ticks_; }
    int64_t ticks_per_input() const { return L_; }   // L
    int64_t ticks_per_output() const { return M_; }  // M
    double delay_input_samples() const { return double(delay_ticks_) / double(L_); }
    double delay_output_samples() const { return double(delay_ticks_) / double(M_); }
    int taps() const { return taps_; }    // T, per phase
    int phases() const { return int(L_); }
    bool prepared() const { return L_ > 0; }

private:
    int channels_ = 0;
    int64_t L_ = 0, M_ = 0;          // up, down
    int64_t M_div_ = 0, M_mod_ = 0;  // M / L, M % L
    int taps_ = 0, taps_padded_ = 0; // T, T rounded up to 8
    int look_ahead_ = 0;             // Jf: newest tap sits Jf inputs after floor(c / L)
    int64_t delay_ticks_ = 0;
    int capacity_ = 0;               // history floats per channel
    std::vector<float> coefs_;       // [L][Tp] reversed: coefs_[p][i] multiplies x[n0 + i]
    std::vector<float> history_;     // [channels][capacity]

    // Streaming position. Output k: centre c = k·M − D = nc·L + p (0 <= p < L); its taps read
    // inputs n0 .. n0 + T − 1 with n0 = nc + Jf − T + 1.
    int64_t nc_ = 0;
    int64_t p_ = 0;
    int64_t base_ = 0;  // absolute input index of history[0]
    int count_ = 0;     // valid samples in history (per channel)
};

} // namespace mw::dsp
