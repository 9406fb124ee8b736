// The reamp signal (`capture-signal`): seeded, in range, and laid out where its sidecar says.
#include "dsp/capture_signal.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace mw;
using json = nlohmann::json;

namespace {

constexpr double kRate = 48000;

const dsp::CaptureSignal& shortest_signal() {
    static const dsp::CaptureSignal sig =
        dsp::make_capture_signal({kRate, dsp::capture_signal_min_seconds(), 7});
    return sig;
}

double peak_dbfs(const std::vector<float>& x, int64_t begin, int64_t end) {
    float m = 0;
    for (int64_t t = begin; t < end; ++t) m = std::max(m, std::abs(x[size_t(t)]));
    return 20 * std::log10(double(m));
}

double rms_dbfs(const std::vector<float>& x, int64_t begin, int64_t end) {
    double e = 0;
    for (int64_t t = begin; t < end; ++t) e += double(x[size_t(t)]) * x[size_t(t)];
    return 10 * std::log10(e / double(end - begin));
}

// Mean frequency of x over [centre - half, centre + half] from its interpolated zero crossings.
double zero_crossing_hz(const std::vector<float>& x, double centre, double half, double rate) {
    std::vector<double> crossings;  // in samples
    for (int64_t t = int64_t(centre - half); t < int64_t(centre + half); ++t) {
        const double a = x[size_t(t)], b = x[size_t(t + 1)];
        if ((a < 0) != (b < 0)) crossings.push_back(double(t) + a / (a - b));
    }
    REQUIRE(crossings.size() >= 3);
    return (double(crossings.size()) - 1) / (2 * (crossings.back() - crossings.front())) * rate;
}

} // namespace

TEST_CASE("capture signal: the same parameters give the same samples, another seed other music", "[capture]") {
    const dsp::CaptureSignal& a = shortest_signal();
    const dsp::CaptureSignal b = dsp::make_capture_signal({kRate, dsp::capture_signal_min_seconds(), 7});
    CHECK(a.samples == b.samples);
    CHECK(dsp::capture_signal_json(a) == dsp::capture_signal_json(b));

    const dsp::CaptureSignal c = dsp::make_capture_signal({kRate, dsp::capture_signal_min_seconds(), 8});
    REQUIRE(c.frames() == a.frames());
    CHECK(c.samples != a.samples);
    // The fixed part's layout does not depend on the seed (the sweeps do not either).
    CHECK(c.sync_start_frames == a.sync_start_frames);
    CHECK(c.sync_end_frames == a.sync_end_frames);
    for (const dsp::CaptureSegment& s : a.segments)
        if (s.kind == "sweep")
            CHECK(std::equal(a.samples.begin() + s.start_frame, a.samples.begin() + s.end_frame,
                             c.samples.begin() + s.start_frame));
}

TEST_CASE("capture signal: length, finite samples and peaks within -12..-1 dBFS at several rates", "[capture]") {
    for (double rate : {44100.0, 48000.0, 96000.0}) {
        for (double seconds : {dsp::capture_signal_min_seconds(), 61.3}) {
            const dsp::CaptureSignal sig = dsp::make_capture_signal({rate, seconds, 3});
            CAPTURE(rate, seconds);
            CHECK(sig.frames() == std::llround(seconds * rate));
            CHECK(std::all_of(sig.samples.begin(), sig.samples.end(), [](float v) { return std::isfinite(v); }));
            const double peak = peak_dbfs(sig.samples, 0, sig.frames());
            CHECK(peak <= -1.0);
            CHECK(peak >= -12.0);
            // Segments tile the file in order, and the music fills what the fixed part leaves.
            REQUIRE(!sig.segments.empty());
            CHECK(sig.segments.front().start_frame == 0);
            CHECK(sig.segments.back().end_frame == sig.frames());
            double music_frames = 0;
            for (size_t i = 0; i < sig.segments.size(); ++i) {
                CHECK(sig.segments[i].end_frame > sig.segments[i].start_frame);
                if (i > 0) CHECK(sig.segments[i].start_frame == sig.segments[i - 1].end_frame);
                if (sig.segments[i].kind == "music")
                    music_frames += double(sig.segments[i].end_frame - sig.segments[i].start_frame);
            }
            CHECK(music_frames / rate == Approx(seconds - (dsp::capture_signal_min_seconds() - 10)).margin(1e-3));
        }
    }
}

TEST_CASE("capture signal: bad rates and lengths are refused", "[capture]") {
    CHECK_THROWS_AS(dsp::make_capture_signal({8000, 60, 1}), std::invalid_argument);
    CHECK_THROWS_AS(dsp::make_capture_signal({48000, dsp::capture_signal_min_seconds() - 0.5, 1}),
                    std::invalid_argument);
    CHECK_THROWS_AS(dsp::make_capture_signal({48000, dsp::kCaptureMaxSeconds + 1, 1}), std::invalid_argument);
}

TEST_CASE("capture signal: the sync impulses are where the sidecar says, in silence", "[capture]") {
    const dsp::CaptureSignal& sig = shortest_signal();
    const json j = json::parse(dsp::capture_signal_json(sig));
    CHECK(j["format"] == "mambawave-capture-signal");
    CHECK(j["frames"].get<int64_t>() == sig.frames());
    CHECK(j["sample_rate_hz"].get<double>() == kRate);
    const float amplitude = j["sync"]["amplitude"].get<float>();
    CHECK(20 * std::log10(amplitude) <= -1.0);

    std::vector<int64_t> listed;
    for (const char* key : {"start_frames", "end_frames"}) {
        const auto frames = j["sync"][key].get<std::vector<int64_t>>();
        CHECK(frames.size() == 3);
        listed.insert(listed.end(), frames.begin(), frames.end());
    }
    // Start impulses in the first 2 s, end impulses in the last 2 s, the same spacing.
    CHECK(listed[2] < int64_t(2 * kRate));
    CHECK(listed[3] > sig.frames() - int64_t(2 * kRate));
    for (int i = 1; i < 3; ++i) CHECK(listed[size_t(i)] - listed[0] == listed[size_t(i + 3)] - listed[3]);
    const int64_t quiet = int64_t(0.1 * kRate);  // 100 ms of exact silence on each side
    for (int64_t f : listed) {
        CAPTURE(f);
        CHECK(sig.samples[size_t(f)] == amplitude);
        for (int64_t t = f - quiet; t <= f + quiet; ++t)
            if (t != f && sig.samples[size_t(t)] != 0.0f) FAIL("sample " << t << " near the impulse is not 0");
    }
    // Sync and silence segments hold nothing but the impulses.
    for (const json& s : j["segments"]) {
        if (s["kind"] != "sync" && s["kind"] != "silence") continue;
        for (int64_t t = s["start_frame"].get<int64_t>(); t < s["end_frame"].get<int64_t>(); ++t)
            if (sig.samples[size_t(t)] != 0.0f && std::find(listed.begin(), listed.end(), t) == listed.end())
                FAIL(s["name"].get<std::string>() << ": sample " << t << " is not silent");
    }
}

TEST_CASE("capture signal: each sweep is at the frequency its law gives at documented times", "[capture]") {
    const dsp::CaptureSignal& sig = shortest_signal();
    const json j = json::parse(dsp::capture_signal_json(sig));
    int sweeps = 0;
    for (const json& s : j["segments"]) {
        if (s["kind"] != "sweep") continue;
        ++sweeps;
        const double f0 = s["f0_hz"], f1 = s["f1_hz"], start = s["start_s"], end = s["end_s"];
        CHECK(f0 == 20.0);
        CHECK(f1 == 20000.0);
        CHECK(peak_dbfs(sig.samples, s["start_frame"], s["end_frame"]) == Approx(s["peak_dbfs"].get<double>()).margin(0.05));
        for (double f : {100.0, 440.0, 1000.0, 5000.0, 12000.0}) {
            // f(t) = f0 (f1/f0)^(t/T)  =>  t = T ln(f/f0) / ln(f1/f0)
            const double t = (end - start) * std::log(f / f0) / std::log(f1 / f0);
            const double centre = (start + t) * kRate;
            const double measured = zero_crossing_hz(sig.samples, centre, std::max(0.002, 3 / f) * kRate, kRate);
            CAPTURE(s["name"].get<std::string>(), f, t, measured);
            CHECK(measured == Approx(f).epsilon(0.01));
            // the struct the sidecar is written from says the same
            for (const dsp::CaptureSegment& seg : sig.segments)
                if (seg.name == s["name"].get<std::string>()) CHECK(dsp::sweep_frequency_hz(seg, kRate, t) == Approx(f).epsilon(1e-9));
        }
    }
    CHECK(sweeps == 4);
}

TEST_CASE("capture signal: levels of noise, steps and decays are as documented", "[capture]") {
    const dsp::CaptureSignal& sig = shortest_signal();
    int noise = 0, music = 0;
    for (const dsp::CaptureSegment& s : sig.segments) {
        CAPTURE(s.name);
        if (s.kind == "white_noise" || s.kind == "pink_noise") {
            ++noise;
            CHECK(peak_dbfs(sig.samples, s.start_frame, s.end_frame) == Approx(s.level_dbfs).margin(0.01));
        }
        if (s.kind == "level_steps") {
            // Each 0.25 s step 3 dB above the last (RMS over its middle half), the top at level - 3 dB
            // (a sine's RMS is its peak - 3.01 dB).
            const int64_t step = int64_t(0.25 * kRate);
            for (int k = 0; k < 16; ++k) {
                const int64_t a = s.start_frame + k * step + step / 4;
                CHECK(rms_dbfs(sig.samples, a, a + step / 2) ==
                      Approx(s.level_dbfs - 3.0 * (15 - k) - 3.01).margin(0.05));
            }
        }
        if (s.kind == "decay_tone") {
            // 30 dB/s: the RMS over 0.2 s windows 1 s apart falls by 30 dB.
            const int64_t w = int64_t(0.2 * kRate);
            const double a = rms_dbfs(sig.samples, s.start_frame + int64_t(0.5 * kRate), s.start_frame + int64_t(0.5 * kRate) + w);
            const double b = rms_dbfs(sig.samples, s.start_frame + int64_t(1.5 * kRate), s.start_frame + int64_t(1.5 * kRate) + w);
            CHECK(a - b == Approx(s.decay_db_per_second).margin(0.5));
        }
        if (s.kind == "music") {
            ++music;
            // Every phrase plays something: above -60 dBFS RMS, not clipped.
            CHECK(rms_dbfs(sig.samples, s.start_frame, s.end_frame) > -60);
            CHECK(peak_dbfs(sig.samples, s.start_frame, s.end_frame) <= -2.0 + 1e-4);
        }
    }
    CHECK(noise == 8);
    CHECK(music >= 2);
}

TEST_CASE("capture signal: a long signal visits every kind of music phrase", "[capture]") {
    const dsp::CaptureSignal sig = dsp::make_capture_signal({kRate, 120, 1});
    std::vector<std::string> kinds;
    for (const dsp::CaptureSegment& s : sig.segments)
        if (s.kind == "music") kinds.push_back(s.name.substr(9));  // "music_03_" + kind
    for (const char* kind : {"strum", "palm_mute", "lead", "arpeggio", "bass", "slap_bass", "swell", "dynamics", "ring_out"})
        CHECK(std::count(kinds.begin(), kinds.end(), kind) >= 1);
    CHECK(kinds.back() == "ring_out");
}
