// The reamp signal: the fixed test part (sync impulses, sweeps, noise, decays, level steps)
// and the synthesised music (Karplus-Strong plucked strings). Layout in capture_signal.h.
#include "dsp/capture_signal.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace mw::dsp {

namespace {

constexpr double kPi = 3.14159265358979323846;

// ---- fixed layout (seconds) --------------------------------------------------------------
constexpr double kLeadInSeconds = 0.5;
constexpr double kSyncSeconds = 1.0;
constexpr std::array<double, 3> kSyncOffsetsSeconds = {0.0, 0.25, 0.625};
constexpr double kSyncAmplitude = 0.5;  // -6 dBFS
constexpr double kGapSeconds = 0.5;
constexpr std::array<double, 4> kLevelsDbfs = {-38, -26, -14, -2};
constexpr double kTopDbfs = -2.0;  // the loudest sweeps, noise and music
constexpr double kSweepSeconds = 3.0;
constexpr double kSweepLowHz = 20.0;
constexpr double kSweepHighHz = 20000.0;  // or 0.45 x rate, whichever is lower
constexpr double kNoiseSeconds = 1.0;
constexpr double kNoiseGapSeconds = 0.5;
constexpr double kDecayToneHz = 110.0;
constexpr double kDecayToneSeconds = 3.0;
constexpr double kDecayToneDbPerSecond = 30.0;
constexpr double kDecayNoiseSeconds = 2.0;
constexpr double kDecayNoiseDbPerSecond = 60.0;
constexpr double kDecaySilenceSeconds = 1.0;
constexpr double kStepsToneHz = 220.0;
constexpr int kSteps = 16;
constexpr double kStepSeconds = 0.25;
constexpr double kStepDb = 3.0;
constexpr double kFadeSeconds = 0.005;  // raised-cosine edges: no clicks but the sync impulses
constexpr double kMinMusicSeconds = 10.0;

constexpr double kFixedSeconds = kLeadInSeconds + kSyncSeconds + kGapSeconds +
                                 kLevelsDbfs.size() * (kSweepSeconds + kGapSeconds) +
                                 2 * kLevelsDbfs.size() * (kNoiseSeconds + kNoiseGapSeconds) +
                                 (kDecayToneSeconds + kDecaySilenceSeconds) +
                                 (kDecayNoiseSeconds + kDecaySilenceSeconds) +
                                 (kSteps * kStepSeconds + kGapSeconds) +
                                 kGapSeconds + kSyncSeconds + kGapSeconds;

double db_to_gain(double db) { return std::pow(10.0, db / 20.0); }

// splitmix64: seeded, and the same numbers on every platform (the std:: distributions are
// not specified bit for bit, so they are not used).
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    double range(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    int below(int n) { return int(next() % uint64_t(n)); }
    bool chance(double p) { return uniform() < p; }
    // Box-Muller
    double gaussian() {
        const double u1 = 1.0 - uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
    }
    template <class T>
    const T& pick(const std::vector<T>& v) { return v[size_t(below(int(v.size())))]; }
};

// Scales x[begin, end) so that its peak is `peak` (silence stays silence).
void normalise_peak(std::vector<float>& x, int64_t begin, int64_t end, double peak) {
    float m = 0;
    for (int64_t t = begin; t < end; ++t) m = std::max(m, std::abs(x[size_t(t)]));
    if (m <= 0) return;
    const double k = peak / m;
    for (int64_t t = begin; t < end; ++t) x[size_t(t)] = float(x[size_t(t)] * k);
}

// Raised-cosine fade-in and fade-out of `fade` frames at the ends of x[begin, end).
void fade_edges(std::vector<float>& x, int64_t begin, int64_t end, int64_t fade) {
    fade = std::min(fade, (end - begin) / 2);
    for (int64_t i = 0; i < fade; ++i) {
        const double w = 0.5 - 0.5 * std::cos(kPi * double(i) / double(fade));
        x[size_t(begin + i)] = float(x[size_t(begin + i)] * w);
        x[size_t(end - 1 - i)] = float(x[size_t(end - 1 - i)] * w);
    }
}

// One-pole DC blocker: y[n] = x[n] - x[n-1] + r·y[n-1], corner about `hz`.
void dc_block(std::vector<float>& x, int64_t begin, int64_t end, double hz, double rate) {
    const double r = std::exp(-2.0 * kPi * hz / rate);
    double x1 = 0, y1 = 0;
    for (int64_t t = begin; t < end; ++t) {
        const double v = x[size_t(t)];
        y1 = v - x1 + r * y1;
        x1 = v;
        x[size_t(t)] = float(y1);
    }
}

// Gaussian white noise, clamped at 4 sigma.
void white_noise(std::vector<float>& x, int64_t begin, int64_t end, Rng& rng) {
    for (int64_t t = begin; t < end; ++t) x[size_t(t)] = float(std::clamp(rng.gaussian(), -4.0, 4.0));
}

// Pink (1/f) noise by the Voss-McCartney method: 16 random rows, row k redrawn every 2^k
// samples (the row whose bit flips in the sample counter), summed with a white row.
void pink_noise(std::vector<float>& x, int64_t begin, int64_t end, Rng& rng) {
    constexpr int kRows = 16;
    std::array<double, kRows> rows{};
    double sum = 0;
    for (double& r : rows) {
        r = rng.range(-1, 1);
        sum += r;
    }
    for (int64_t t = begin; t < end; ++t) {
        const uint64_t n = uint64_t(t - begin) + 1;
        const int k = std::min(kRows - 1, std::countr_zero(n));
        sum -= rows[size_t(k)];
        rows[size_t(k)] = rng.range(-1, 1);
        sum += rows[size_t(k)];
        x[size_t(t)] = float(sum + rng.range(-1, 1));
    }
}

// ---- plucked strings (Karplus-Strong with a tunable loop filter) ---------------------------

double midi_hz(double note) { return 440.0 * std::pow(2.0, (note - 69.0) / 12.0); }

struct Pluck {
    double f0_hz = 110;
    double amplitude = 0.5;     // of the excitation
    double brightness = 0.7;    // 0 soft finger, dark .. 1 hard pick, bright
    double t60_seconds = 2.5;   // ring time while the note is held
    double hold_seconds = 1.0;  // then the string is damped (the hand lifts or mutes)
    double release_t60_seconds = 0.06;
    double pick_position = 0.13;    // fraction of the string length from the bridge
    double pickup_position = 0.08;  // where the string is "heard" (a comb on the output)
    double pickup_hz = 4000;        // the pickup's resonance: a 2-pole low-pass
    double pickup_q = 1.2;
};

// Adds one plucked note to out from `start`:
//   y[n] = x[n] + g · ((1-s)·y(n-D) + s·y(n-D-1))      loop filter: one zero, delay s samples
//   D    = P - s,  P = rate / f0                       so the loop is exactly one period
//   g    = 10^(-3 / (T60 · f0))                        -60 dB after T60 (T60·f0 trips)
//   out += H((y[n] - y[n-Q]) / 2),  Q = pickup · P     the pickup's comb, then its resonance
//   H: 2-pole low-pass at pickup_hz with pickup_q (bilinear transform of 1 / (s² + s/Q + 1))
// x: one period of noise, low-passed by (1 - brightness) and combed at the pick position.
void add_pluck(std::vector<float>& out, int64_t start, const Pluck& p, double rate, Rng& rng) {
    const double period = rate / p.f0_hz;
    const double s_hold = 0.5 - 0.45 * p.brightness, s_release = 0.5;
    const double g_hold = std::pow(10.0, -3.0 / (p.t60_seconds * p.f0_hz));
    const double g_release = std::pow(10.0, -3.0 / (p.release_t60_seconds * p.f0_hz));
    const int64_t hold = int64_t(std::min(p.hold_seconds, 1.5 * p.t60_seconds) * rate);
    const int64_t total = std::min<int64_t>(hold + int64_t(1.3 * p.release_t60_seconds * rate),
                                            int64_t(out.size()) - start);
    if (total <= 0) return;

    // Excitation: [period] samples.
    const int64_t n_exc = std::max<int64_t>(2, std::llround(period));
    std::vector<double> exc(static_cast<size_t>(n_exc));  // [n_exc]
    const double c = 0.05 + 0.6 * p.brightness * p.brightness;
    double lp = 0;
    for (double& e : exc) {
        lp += c * (rng.range(-1, 1) - lp);
        e = lp;
    }
    const int64_t comb = std::max<int64_t>(1, std::llround(p.pick_position * period));
    for (int64_t i = n_exc - 1; i >= comb; --i) exc[size_t(i)] -= exc[size_t(i - comb)];
    double mean = 0, peak = 0;
    for (double e : exc) mean += e / double(n_exc);
    for (double& e : exc) peak = std::max(peak, std::abs(e -= mean));
    const double k = peak > 0 ? p.amplitude / peak : 0;

    // History of y: a ring buffer of a power of two >= period + 4.
    size_t size = 8;
    while (double(size) < period + 4) size *= 2;
    const size_t mask = size - 1;
    std::vector<double> y(size, 0.0);  // [size]
    const int64_t q = std::max<int64_t>(1, std::llround(p.pickup_position * period));
    // H(z) = (b0 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2), prewarped to pickup_hz
    const double w = 2 * kPi * std::min(p.pickup_hz, 0.45 * rate) / rate, alpha = std::sin(w) / (2 * p.pickup_q);
    const double a0 = 1 + alpha, b1 = (1 - std::cos(w)) / a0, b0 = 0.5 * b1, b2 = b0;
    const double a1 = -2 * std::cos(w) / a0, a2 = (1 - alpha) / a0;
    double x1 = 0, x2 = 0, h1 = 0, h2 = 0;  // the filter's last inputs and outputs
    double prev_delayed = 0;
    for (int64_t n = 0; n < total; ++n) {
        const bool held = n < hold;
        const double s = held ? s_hold : s_release, g = held ? g_hold : g_release;
        const double d = period - s;
        const int64_t di = int64_t(d);
        const double frac = d - double(di);
        // y(n-D), linear interpolation between y[n-di] and y[n-di-1]
        const double delayed = (1 - frac) * y[size_t(n - di) & mask] + frac * y[size_t(n - di - 1) & mask];
        const double v = (n < n_exc ? k * exc[size_t(n)] : 0.0) + g * ((1 - s) * delayed + s * prev_delayed);
        prev_delayed = delayed;
        y[size_t(n) & mask] = v;
        const double x0 = 0.5 * (v - y[size_t(n - q) & mask]);
        const double h0 = b0 * x0 + b1 * x1 + b2 * x2 - a1 * h1 - a2 * h2;
        x2 = x1;
        x1 = x0;
        h2 = h1;
        h1 = h0;
        out[size_t(start + n)] += float(h0);
    }
}

// Guitar: open strings E2 A2 D3 G3 B3 E4; bass: E1 A1 D2 G2 (MIDI numbers).
constexpr std::array<int, 6> kGuitarOpen = {40, 45, 50, 55, 59, 64};
constexpr std::array<int, 4> kBassOpen = {28, 33, 38, 43};
using Shape = std::array<int, 6>;  // fret per string, -1 = not played

// Open chords, and movable shapes (power chords, barre chords) placed at a random fret.
const std::vector<Shape>& open_chords() {
    static const std::vector<Shape> v = {
        {0, 2, 2, 1, 0, 0},     // E
        {-1, 0, 2, 2, 2, 0},    // A
        {-1, -1, 0, 2, 3, 2},   // D
        {3, 2, 0, 0, 0, 3},     // G
        {-1, 3, 2, 0, 1, 0},    // C
        {0, 2, 2, 0, 0, 0},     // Em
        {-1, 0, 2, 2, 1, 0},    // Am
        {-1, -1, 0, 2, 3, 1},   // Dm
        {0, 2, 0, 1, 0, 0},     // E7
        {-1, 0, 2, 0, 2, 0},    // A7
    };
    return v;
}
Shape movable_chord(Rng& rng) {
    const int fret = 1 + rng.below(10);
    switch (rng.below(4)) {
    case 0: return {fret, fret + 2, fret + 2, fret + 1, fret, fret};   // E-shape major barre
    case 1: return {fret, fret + 2, fret + 2, fret, fret, fret};       // E-shape minor barre
    case 2: return {-1, fret, fret + 2, fret + 2, fret + 2, fret};     // A-shape major barre
    default: return {-1, fret, fret + 2, fret + 2, fret + 1, fret};    // A-shape minor barre
    }
}
Shape power_chord(Rng& rng, bool low_string_root) {
    const int fret = rng.below(10);
    return low_string_root ? Shape{fret, fret + 2, fret + 2, -1, -1, -1}
                           : Shape{-1, fret, fret + 2, fret + 2, -1, -1};
}
Shape any_chord(Rng& rng) { return rng.chance(0.5) ? rng.pick(open_chords()) : movable_chord(rng); }

// The phrase being written: the buffer, where it starts and ends, its tempo and level.
struct Phrase {
    std::vector<float>& out;
    double rate;
    int64_t start, end;
    double beat_seconds;
    double gain;  // the phrase's level (a linear factor on every note's amplitude)
    Rng& rng;
    double pickup_hz = 4000, pickup_q = 1.2;  // the phrase's "instrument": its pickup's tone

    double length_seconds() const { return double(end - start) / rate; }
    void note(double at_seconds, Pluck p) {
        const int64_t at = start + int64_t(at_seconds * rate);
        if (at >= end) return;
        p.amplitude *= gain;
        p.pickup_hz = pickup_hz;
        p.pickup_q = pickup_q;
        add_pluck(out, at, p, rate, rng);
    }
    // A strum: strings low to high (down) or high to low (up), a few ms apart.
    void strum(double at, const Shape& shape, bool down, double velocity, double hold, double brightness,
               double t60) {
        const double spread = rng.range(0.006, 0.025);
        int k = 0;
        for (int i = 0; i < 6; ++i) {
            const int string = down ? i : 5 - i;
            if (shape[size_t(string)] < 0) continue;
            if (!down && k >= 4) break;  // up-strums catch the top strings
            Pluck p;
            p.f0_hz = midi_hz(kGuitarOpen[size_t(string)] + shape[size_t(string)]);
            p.amplitude = velocity * rng.range(0.8, 1.0) * (1.0 - 0.4 * k / 6.0);
            p.brightness = brightness;
            p.t60_seconds = t60;
            p.hold_seconds = hold - k * spread;
            p.pick_position = rng.range(0.08, 0.2);
            note(at + k * spread, p);
            ++k;
        }
    }
};

// Eighth-note strum patterns: D down, U up, . rest.
const std::vector<std::string>& strum_patterns() {
    static const std::vector<std::string> v = {"D.DUD.DU", "D.D.D.D.", "D.DU.UDU", "DDDUDDDU", "D...D.DU",
                                               "D..UD..U"};
    return v;
}

void phrase_strum(Phrase& ph) {
    const std::string& pattern = ph.rng.pick(strum_patterns());
    const double eighth = ph.beat_seconds / 2, t60 = ph.rng.range(1.5, 3.5);
    const double brightness = ph.rng.range(0.4, 0.95);
    Shape chord = any_chord(ph.rng);
    for (int bar = 0; bar * 8 * eighth < ph.length_seconds(); ++bar) {
        if (bar > 0) chord = any_chord(ph.rng);
        for (int i = 0; i < 8; ++i) {
            const char c = pattern[size_t(i)];
            if (c == '.') continue;
            int next = i + 1;
            while (next < 8 && pattern[size_t(next)] == '.') ++next;
            const double accent = i == 0 ? 1.0 : i % 2 == 0 ? 0.75 : 0.55;
            ph.strum((bar * 8 + i) * eighth, chord, c == 'D', accent * ph.rng.range(0.7, 1.0),
                     (next - i) * eighth + 0.01, brightness, t60);
        }
    }
}

// Palm-muted chugs on the low strings (short, dark decays) with open accents.
void phrase_palm_mute(Phrase& ph) {
    const bool sixteenths = ph.rng.chance(0.4);
    const double step = ph.beat_seconds / (sixteenths ? 4 : 2);
    const int steps_per_bar = sixteenths ? 16 : 8;
    Shape chord = power_chord(ph.rng, true);
    for (int i = 0; i * step < ph.length_seconds(); ++i) {
        if (i % steps_per_bar == 0) chord = power_chord(ph.rng, ph.rng.chance(0.7));
        const bool accent = i % steps_per_bar == 0 && ph.rng.chance(0.5);
        if (!accent && ph.rng.chance(0.12)) continue;  // a rest
        if (accent) {
            ph.strum(i * step, chord, true, ph.rng.range(0.8, 1.0), 2 * step, 0.8, 2.0);
            continue;
        }
        // only the root (sometimes with its fifth), muted by the palm at the bridge
        for (int string = 0; string < 6; ++string) {
            if (chord[size_t(string)] < 0) continue;
            Pluck p;
            p.f0_hz = midi_hz(kGuitarOpen[size_t(string)] + chord[size_t(string)]);
            p.amplitude = ph.rng.range(0.45, 0.9);
            p.brightness = ph.rng.range(0.2, 0.45);
            p.t60_seconds = ph.rng.range(0.1, 0.3);
            p.hold_seconds = step;
            p.release_t60_seconds = 0.03;
            p.pick_position = 0.05;
            ph.note(i * step + string * 0.003, p);
            if (ph.rng.chance(0.5)) break;
        }
    }
}

// The minor pentatonic of `key` (0 = E) from `low` to `high` (MIDI).
std::vector<int> pentatonic(int key, int low, int high) {
    std::vector<int> notes;
    for (int n = low; n <= high; ++n) {
        const int degree = ((n - 40 - key) % 12 + 12) % 12;
        if (degree == 0 || degree == 3 || degree == 5 || degree == 7 || degree == 10) notes.push_back(n);
    }
    return notes;
}

// A single-note line over the pentatonic in one register, varied rhythm and velocity.
void phrase_lead(Phrase& ph) {
    const int key = ph.rng.below(12);
    const int low = 40 + ph.rng.below(28);
    const std::vector<int> scale = pentatonic(key, low, low + 19);
    const double brightness = ph.rng.range(0.4, 0.95), t60 = ph.rng.range(1.2, 3.0);
    const std::vector<double> lengths = {0.25, 0.5, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0};  // beats
    int i = ph.rng.below(int(scale.size()));
    double t = 0;
    while (t < ph.length_seconds()) {
        const double len = ph.rng.pick(lengths) * ph.beat_seconds;
        if (ph.rng.chance(0.1)) {  // a rest
            t += len;
            continue;
        }
        i = std::clamp(i + ph.rng.below(5) - 2, 0, int(scale.size()) - 1);
        Pluck p;
        p.f0_hz = midi_hz(scale[size_t(i)]);
        p.amplitude = ph.rng.range(0.3, 1.0);
        p.brightness = brightness;
        p.t60_seconds = t60;
        p.hold_seconds = len * ph.rng.range(0.6, 1.0);
        p.pick_position = ph.rng.range(0.08, 0.25);
        ph.note(t, p);
        t += len;
    }
}

// Fingerpicked chord tones, one per eighth, left ringing to the end of the bar.
void phrase_arpeggio(Phrase& ph) {
    const double eighth = ph.beat_seconds / 2;
    const std::vector<std::array<int, 8>> orders = {
        {0, 2, 3, 4, 5, 4, 3, 2}, {0, 3, 4, 5, 0, 3, 4, 5}, {1, 3, 2, 4, 3, 5, 4, 2}, {0, 4, 3, 5, 1, 4, 3, 5}};
    const std::array<int, 8>& order = orders[size_t(ph.rng.below(int(orders.size())))];
    const double brightness = ph.rng.range(0.1, 0.5);
    for (int bar = 0; bar * 8 * eighth < ph.length_seconds(); ++bar) {
        const Shape chord = any_chord(ph.rng);
        for (int i = 0; i < 8; ++i) {
            int string = order[size_t(i)];
            while (chord[size_t(string)] < 0) ++string;  // every shape plays its top strings
            Pluck p;
            p.f0_hz = midi_hz(kGuitarOpen[size_t(string)] + chord[size_t(string)]);
            p.amplitude = ph.rng.range(0.25, 0.7) * (i == 0 ? 1.2 : 1.0);
            p.brightness = brightness;
            p.t60_seconds = ph.rng.range(2.0, 4.0);
            p.hold_seconds = (8 - i) * eighth;
            p.pick_position = ph.rng.range(0.15, 0.3);
            ph.note((bar * 8 + i) * eighth, p);
        }
    }
}

// A bass line: root, fifth, octave over a changing root; fingers (dark) or a pick (bright),
// with ghost notes.
void phrase_bass(Phrase& ph) {
    ph.pickup_hz = ph.rng.range(1500, 4000);
    const bool pick = ph.rng.chance(0.4);
    const double step = ph.beat_seconds / (ph.rng.chance(0.6) ? 2 : 1);
    const double brightness = pick ? ph.rng.range(0.65, 0.9) : ph.rng.range(0.1, 0.35);
    const std::vector<int> intervals = {0, 0, 7, 12, 0, 10, 7, 5};
    int root = 28 + ph.rng.below(12);
    for (int i = 0; i * step < ph.length_seconds(); ++i) {
        if (i % 8 == 0 && i > 0) root = 28 + ph.rng.below(12);
        const bool ghost = ph.rng.chance(0.12);
        Pluck p;
        p.f0_hz = midi_hz(root + intervals[size_t(i % 8)] + (ph.rng.chance(0.2) ? 12 : 0));
        p.amplitude = ghost ? 0.15 : ph.rng.range(0.5, 1.0);
        p.brightness = brightness;
        p.t60_seconds = ph.rng.range(2.5, 5.0);
        p.hold_seconds = ghost ? 0.04 : step * ph.rng.range(0.5, 1.0);
        p.release_t60_seconds = 0.05;
        p.pick_position = pick ? 0.08 : 0.2;
        p.pickup_position = 0.15;
        ph.note(i * step, p);
    }
}

// Slap bass: bright thumb notes on the low strings, popped octaves, muted ghosts.
void phrase_slap(Phrase& ph) {
    ph.pickup_hz = ph.rng.range(3000, 6000);
    const double sixteenth = ph.beat_seconds / 4;
    const std::string pattern = ph.rng.pick(std::vector<std::string>{"T.gPT.gPTgT.P.gP", "T..PT.gPT..P.TgP"});
    int root = 28 + ph.rng.below(10);
    for (int i = 0; i * sixteenth < ph.length_seconds(); ++i) {
        if (i % 16 == 0 && i > 0) root = 28 + ph.rng.below(10);
        const char c = pattern[size_t(i % 16)];
        if (c == '.') continue;
        Pluck p;
        p.f0_hz = midi_hz(root + (c == 'P' ? 12 : 0));
        p.amplitude = c == 'g' ? 0.2 : c == 'P' ? ph.rng.range(0.8, 1.0) : ph.rng.range(0.7, 1.0);
        p.brightness = c == 'g' ? 0.3 : 0.95;
        p.t60_seconds = c == 'g' ? 0.05 : 1.5;
        p.hold_seconds = c == 'g' ? 0.03 : sixteenth * 1.5;
        p.release_t60_seconds = 0.04;
        p.pick_position = c == 'T' ? 0.4 : 0.05;  // the thumb strikes over the neck
        p.pickup_position = 0.15;
        ph.note(i * sixteenth, p);
    }
}

// The same chord or riff note repeated from very soft to full: the level dependence.
void phrase_swell(Phrase& ph) {
    const bool chord = ph.rng.chance(0.5);
    const Shape shape = any_chord(ph.rng);
    const int note = 40 + ph.rng.below(30);
    const int hits = std::max(4, int(ph.length_seconds() / ph.beat_seconds));
    for (int i = 0; i < hits; ++i) {
        const double level = db_to_gain(-36.0 + 36.0 * i / std::max(1, hits - 2));
        const double at = i * ph.beat_seconds;
        if (i == hits - 1) {  // and a sudden soft one at the end
            ph.strum(at, shape, true, 0.05, ph.beat_seconds, 0.6, 2.0);
            break;
        }
        if (chord) {
            ph.strum(at, shape, true, level, ph.beat_seconds, 0.7, 2.0);
        } else {
            Pluck p;
            p.f0_hz = midi_hz(note);
            p.amplitude = level;
            p.hold_seconds = ph.beat_seconds;
            ph.note(at, p);
        }
    }
}

// Bars alternating loud and soft (+-18 dB) of a power-chord riff.
void phrase_dynamics(Phrase& ph) {
    const double eighth = ph.beat_seconds / 2;
    for (int i = 0; i * eighth < ph.length_seconds(); ++i) {
        const bool loud = (i / 8) % 2 == 0;
        if (i % 2 == 1 && ph.rng.chance(0.5)) continue;
        const Shape chord = power_chord(ph.rng, true);
        ph.strum(i * eighth, chord, true, (loud ? 1.0 : 0.125) * ph.rng.range(0.8, 1.0), eighth, 0.8, 1.5);
    }
}

// One chord (sometimes with a bass note under it) left to ring into silence.
void phrase_ring_out(Phrase& ph) {
    const double t60 = std::min(3.0, 0.8 * ph.length_seconds());
    // (one draw per statement: the order of evaluation of arguments is unspecified)
    const Shape chord = any_chord(ph.rng);
    const double velocity = ph.rng.range(0.7, 1.0);
    const double brightness = ph.rng.range(0.4, 0.9);
    ph.strum(0, chord, true, velocity, 10.0, brightness, t60);
    if (ph.rng.chance(0.5)) {
        Pluck p;
        p.f0_hz = midi_hz(kBassOpen[size_t(ph.rng.below(4))]);
        p.amplitude = 0.8;
        p.brightness = 0.3;
        p.t60_seconds = t60;
        p.hold_seconds = 10.0;
        ph.note(0.0, p);
    }
}

struct PhraseKind {
    const char* name;
    void (*write)(Phrase&);
};
constexpr std::array<PhraseKind, 9> kPhraseKinds = {{{"strum", phrase_strum},
                                                     {"palm_mute", phrase_palm_mute},
                                                     {"lead", phrase_lead},
                                                     {"arpeggio", phrase_arpeggio},
                                                     {"bass", phrase_bass},
                                                     {"slap_bass", phrase_slap},
                                                     {"swell", phrase_swell},
                                                     {"dynamics", phrase_dynamics},
                                                     {"ring_out", phrase_ring_out}}};

// Appends segments in time order; frames are rounded from cumulative seconds so that the
// layout's times hold at every rate.
struct LayoutBuilder {
    CaptureSignal& sig;
    double seconds = 0;

    CaptureSegment& add(const std::string& name, const std::string& kind, double length_seconds,
                        double level_dbfs = -std::numeric_limits<double>::infinity()) {
        CaptureSegment s;
        s.name = name;
        s.kind = kind;
        s.start_frame = std::llround(seconds * sig.sample_rate_hz);
        seconds += length_seconds;
        s.end_frame = std::llround(seconds * sig.sample_rate_hz);
        s.level_dbfs = level_dbfs;
        sig.segments.push_back(s);
        return sig.segments.back();
    }
    void silence(const std::string& name, double length_seconds) { add(name, "silence", length_seconds); }
};

std::string level_name(const std::string& what, double dbfs) {
    return what + "_" + std::to_string(int(std::lround(dbfs))) + "dBFS";
}

void write_sync(CaptureSignal& sig, const CaptureSegment& seg, std::vector<int64_t>& frames) {
    for (double offset : kSyncOffsetsSeconds) {
        const int64_t f = seg.start_frame + std::llround(offset * sig.sample_rate_hz);
        sig.samples[size_t(f)] = kSyncAmplitude;
        frames.push_back(f);
    }
}

void write_sweep(CaptureSignal& sig, const CaptureSegment& seg) {
    // phase(t) = 2π f0 T / ln(f1/f0) · (e^{t ln(f1/f0) / T} - 1), whose derivative / 2π is
    // f(t) = f0 (f1/f0)^{t/T}
    const double rate = sig.sample_rate_hz, T = double(seg.end_frame - seg.start_frame) / rate;
    const double ln_k = std::log(seg.f1_hz / seg.f0_hz), a = db_to_gain(seg.level_dbfs);
    for (int64_t n = seg.start_frame; n < seg.end_frame; ++n) {
        const double t = double(n - seg.start_frame) / rate;
        const double phase = 2 * kPi * seg.f0_hz * T / ln_k * (std::exp(t * ln_k / T) - 1);
        sig.samples[size_t(n)] = float(a * std::sin(phase));
    }
    fade_edges(sig.samples, seg.start_frame, seg.end_frame, std::llround(kFadeSeconds * rate));
}

void write_noise(CaptureSignal& sig, const CaptureSegment& seg, bool pink, double decay_db_per_second, Rng& rng) {
    const double rate = sig.sample_rate_hz;
    (pink ? pink_noise : white_noise)(sig.samples, seg.start_frame, seg.end_frame, rng);
    dc_block(sig.samples, seg.start_frame, seg.end_frame, 10.0, rate);
    if (decay_db_per_second > 0)
        for (int64_t n = seg.start_frame; n < seg.end_frame; ++n)
            sig.samples[size_t(n)] = float(
                sig.samples[size_t(n)] * db_to_gain(-decay_db_per_second * double(n - seg.start_frame) / rate));
    fade_edges(sig.samples, seg.start_frame, seg.end_frame, std::llround(kFadeSeconds * rate));
    normalise_peak(sig.samples, seg.start_frame, seg.end_frame, db_to_gain(seg.level_dbfs));
}

void write_decay_tone(CaptureSignal& sig, const CaptureSegment& seg) {
    const double rate = sig.sample_rate_hz, a = db_to_gain(seg.level_dbfs);
    for (int64_t n = seg.start_frame; n < seg.end_frame; ++n) {
        const double t = double(n - seg.start_frame) / rate;
        sig.samples[size_t(n)] = float(a * db_to_gain(-seg.decay_db_per_second * t) * std::sin(2 * kPi * seg.f0_hz * t));
    }
    fade_edges(sig.samples, seg.start_frame, seg.end_frame, std::llround(kFadeSeconds * rate));
}

// kSteps levels of a continuous sine, 3 dB apart, with raised-cosine ramps between them.
void write_level_steps(CaptureSignal& sig, const CaptureSegment& seg) {
    const double rate = sig.sample_rate_hz;
    const int64_t step = std::llround(kStepSeconds * rate), ramp = std::llround(kFadeSeconds * rate);
    for (int64_t n = seg.start_frame; n < seg.end_frame; ++n) {
        const int64_t i = n - seg.start_frame;
        const int k = int(std::min<int64_t>(kSteps - 1, i / step));
        const int64_t into = i - int64_t(k) * step;
        double db = seg.level_dbfs - kStepDb * (kSteps - 1 - k);
        if (k > 0 && into < ramp) db -= kStepDb * (0.5 + 0.5 * std::cos(kPi * double(into) / double(ramp)));
        sig.samples[size_t(n)] = float(db_to_gain(db) * std::sin(2 * kPi * seg.f0_hz * double(i) / rate));
    }
    fade_edges(sig.samples, seg.start_frame, seg.end_frame, ramp);
}

// Phrases of 4-8 s in a seeded order that visits every kind before repeating one, then a
// final ring_out of up to 5 s into silence. Each phrase's level is drawn from -12..0 dB, and
// the whole music part is then scaled to peak at kTopDbfs.
void write_music(CaptureSignal& sig, LayoutBuilder& layout, double music_seconds, Rng& rng) {
    const double rate = sig.sample_rate_hz;
    const int64_t begin = std::llround(layout.seconds * rate);
    const double ring_out_seconds = std::min(5.0, 0.5 * music_seconds);
    double left = music_seconds - ring_out_seconds;
    std::vector<size_t> order;  // kinds still to visit in this round
    int index = 0;
    auto write_phrase = [&](size_t kind, double length, double gain) {
        char prefix[16];
        std::snprintf(prefix, sizeof prefix, "music_%02d_", index++);
        const CaptureSegment& seg =
            layout.add(prefix + std::string(kPhraseKinds[kind].name), "music", length, kTopDbfs);
        Phrase ph{sig.samples, rate, seg.start_frame, seg.end_frame, 60.0 / rng.range(80, 150), gain, rng};
        ph.pickup_hz = rng.range(2500, 7000);  // humbucker .. bright single coil
        ph.pickup_q = rng.range(0.7, 2.5);
        kPhraseKinds[kind].write(ph);
    };
    while (left > 1e-9) {
        if (order.empty()) {
            for (size_t k = 0; k + 1 < kPhraseKinds.size(); ++k) order.push_back(k);  // all but ring_out
            for (size_t k = order.size(); k > 1; --k) std::swap(order[k - 1], order[size_t(rng.below(int(k)))]);
        }
        double length = rng.range(4.0, 8.0);
        if (left - length < 4.0) length = left;  // no phrase shorter than 4 s (unless all is)
        const size_t kind = order.back();
        order.pop_back();
        write_phrase(kind, length, db_to_gain(-rng.range(0, 12)));
        left -= length;
    }
    write_phrase(kPhraseKinds.size() - 1, ring_out_seconds, 1.0);
    const int64_t end = std::llround(layout.seconds * rate);
    // Notes may ring past the music's end into the silence after it: cut and fade them there.
    std::fill(sig.samples.begin() + end, sig.samples.end(), 0.0f);
    dc_block(sig.samples, begin, end, 10.0, rate);
    normalise_peak(sig.samples, begin, end, db_to_gain(kTopDbfs));
    fade_edges(sig.samples, begin, end, std::llround(0.02 * rate));
}

} // namespace

double capture_signal_min_seconds() { return kFixedSeconds + kMinMusicSeconds; }

CaptureSignal make_capture_signal(const CaptureSignalParams& params) {
    const double rate = params.sample_rate_hz;
    if (!(rate >= kCaptureMinRateHz && rate <= kCaptureMaxRateHz))
        throw std::invalid_argument("capture signal: sample rate " + std::to_string(rate) + " Hz, expected " +
                                    std::to_string(int(kCaptureMinRateHz)) + ".." +
                                    std::to_string(int(kCaptureMaxRateHz)) + " Hz");
    if (!(params.length_seconds >= capture_signal_min_seconds() && params.length_seconds <= kCaptureMaxSeconds))
        throw std::invalid_argument("capture signal: length " + std::to_string(params.length_seconds) +
                                    " s, expected " + std::to_string(capture_signal_min_seconds()) + ".." +
                                    std::to_string(kCaptureMaxSeconds) + " s (the fixed test part is " +
                                    std::to_string(kFixedSeconds) + " s, the music at least " +
                                    std::to_string(kMinMusicSeconds) + " s)");
    CaptureSignal sig;
    sig.sample_rate_hz = rate;
    sig.seed = params.seed;
    sig.sync_amplitude = float(kSyncAmplitude);
    sig.samples.assign(size_t(std::llround(params.length_seconds * rate)), 0.0f);
    Rng rng(params.seed);
    LayoutBuilder layout{sig};

    layout.silence("lead_in", kLeadInSeconds);
    write_sync(sig, layout.add("sync_start", "sync", kSyncSeconds, 20 * std::log10(kSyncAmplitude)),
               sig.sync_start_frames);
    layout.silence("gap_after_sync", kGapSeconds);

    const double sweep_high = std::min(kSweepHighHz, 0.45 * rate);
    for (double db : kLevelsDbfs) {
        CaptureSegment& s = layout.add(level_name("sweep", db), "sweep", kSweepSeconds, db);
        s.f0_hz = kSweepLowHz;
        s.f1_hz = sweep_high;
        write_sweep(sig, s);
        layout.silence(level_name("gap_after_sweep", db), kGapSeconds);
    }
    for (bool pink : {false, true})
        for (double db : kLevelsDbfs) {
            const std::string kind = pink ? "pink_noise" : "white_noise";
            write_noise(sig, layout.add(level_name(kind, db), kind, kNoiseSeconds, db), pink, 0, rng);
            layout.silence(level_name("gap_after_" + kind, db), kNoiseGapSeconds);
        }

    CaptureSegment& tone = layout.add("decay_tone", "decay_tone", kDecayToneSeconds, kTopDbfs);
    tone.f0_hz = kDecayToneHz;
    tone.decay_db_per_second = kDecayToneDbPerSecond;
    write_decay_tone(sig, tone);
    layout.silence("silence_after_decay_tone", kDecaySilenceSeconds);
    CaptureSegment& noise = layout.add("decay_noise", "decay_noise", kDecayNoiseSeconds, kTopDbfs);
    noise.decay_db_per_second = kDecayNoiseDbPerSecond;
    write_noise(sig, noise, true, kDecayNoiseDbPerSecond, rng);
    layout.silence("silence_after_decay_noise", kDecaySilenceSeconds);

    CaptureSegment& steps = layout.add("level_steps", "level_steps", kSteps * kStepSeconds, kTopDbfs);
    steps.f0_hz = kStepsToneHz;
    write_level_steps(sig, steps);
    layout.silence("gap_after_level_steps", kGapSeconds);

    const double music_seconds = params.length_seconds - kFixedSeconds;
    write_music(sig, layout, music_seconds, rng);

    layout.silence("gap_after_music", kGapSeconds);
    write_sync(sig, layout.add("sync_end", "sync", kSyncSeconds, 20 * std::log10(kSyncAmplitude)),
               sig.sync_end_frames);
    layout.silence("tail", kGapSeconds);
    // The rounding of the length in seconds and of the last segment's end agree; make sure.
    sig.segments.back().end_frame = sig.frames();
    return sig;
}

double sweep_frequency_hz(const CaptureSegment& sweep, double sample_rate_hz, double seconds) {
    const double T = double(sweep.end_frame - sweep.start_frame) / sample_rate_hz;
    return sweep.f0_hz * std::pow(sweep.f1_hz / sweep.f0_hz, seconds / T);
}

std::string capture_signal_json(const CaptureSignal& sig) {
    using json = nlohmann::ordered_json;
    const double rate = sig.sample_rate_hz;
    json segments = json::array();
    for (const CaptureSegment& s : sig.segments) {
        json j = {{"name", s.name},
                  {"kind", s.kind},
                  {"start_frame", s.start_frame},
                  {"end_frame", s.end_frame},
                  {"start_s", double(s.start_frame) / rate},
                  {"end_s", double(s.end_frame) / rate}};
        if (s.kind != "silence") j["peak_dbfs"] = s.level_dbfs;
        if (s.kind == "sweep") {
            j["f0_hz"] = s.f0_hz;
            j["f1_hz"] = s.f1_hz;
            j["law"] = "f(t) = f0 * (f1/f0)^(t/T), t seconds from start_s, T = end_s - start_s";
        }
        if (s.kind == "decay_tone" || s.kind == "level_steps") j["tone_hz"] = s.f0_hz;
        if (s.decay_db_per_second > 0) j["decay_db_per_s"] = s.decay_db_per_second;
        if (s.kind == "level_steps") {
            j["steps"] = kSteps;
            j["step_s"] = kStepSeconds;
            j["step_db"] = kStepDb;
        }
        segments.push_back(j);
    }
    float peak = 0;
    for (float v : sig.samples) peak = std::max(peak, std::abs(v));
    const json doc = {
        {"format", "mambawave-capture-signal"},
        {"version", 1},
        {"generator", "mambawave capture-signal"},
        {"sample_rate_hz", rate},
        {"frames", sig.frames()},
        {"seconds", double(sig.frames()) / rate},
        {"seed", sig.seed},
        {"peak_dbfs", peak > 0 ? 20 * std::log10(double(peak)) : -999.0},
        {"sync",
         {{"amplitude", sig.sync_amplitude},
          {"start_frames", sig.sync_start_frames},
          {"end_frames", sig.sync_end_frames},
          {"note", "single-sample impulses of +amplitude at these frames, silence around them; in a "
                   "recording, lag = found frame - listed frame, drift = end lag - start lag"}}},
        {"segments", segments}};
    return doc.dump(1) + "\n";
}

} // namespace mw::dsp
