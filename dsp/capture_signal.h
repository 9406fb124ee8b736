// The reamp signal ("DI") a user plays through their gear and records, so that `train` can
// learn the gear from the pair (this signal, the recording). `mambawave capture-signal` writes
// it; scripts/make_captures.sh runs it through the LV2 pedals. Synthesised here, seeded and
// deterministic: no recorded (copyrighted) audio is shipped.
//
// Layout (times in seconds from the start; the same at every sample rate; docs/DATA.md has
// the table too, and the sidecar JSON lists every segment with its frames):
//
//   start   length  segment
//    0.0     0.5    silence (lead-in)
//    0.5     1.0    sync_start: impulses at 0.5, 0.75, 1.125 s (irregular, so unambiguous)
//    1.5     0.5    silence
//    2.0   4x3.5    log sine sweeps 20 Hz -> 20 kHz (at most 0.45 x rate), 3 s each, peaks
//                   -38, -26, -14, -2 dBFS, each followed by 0.5 s of silence
//   16.0   8x1.5    noise bursts, 1 s each + 0.5 s silence: white at -38, -26, -14, -2 dBFS
//                   peak, then pink at the same four levels
//   28.0     4.0    decay_tone: 110 Hz sine from -2 dBFS falling 30 dB/s (3 s), 1 s silence
//   32.0     3.0    decay_noise: pink noise from -2 dBFS falling 60 dB/s (2 s), 1 s silence
//   35.0     4.5    level_steps: 220 Hz sine in 16 steps of 0.25 s, -47 -> -2 dBFS
//                   (3 dB apart), 0.5 s silence
//   39.5     M      music: plucked-string (Karplus-Strong) guitar and bass phrases: strummed
//                   chords, single-note lines, palm mutes, arpeggios, bass lines, swells
//                   and chords ringing out into silence; M = length - 41.5 s (>= 10 s)
//   end-2.0  0.5    silence
//   end-1.5  1.0    sync_end: impulses at the same offsets as sync_start
//   end-0.5  0.5    silence (tail)
//
// Peaks: sweeps, noise and music peak at -2 dBFS (the loudest), sync impulses are -6 dBFS,
// so the whole file peaks at -2 dBFS, inside the -12..-1 dBFS a reamp signal should use.
// Same parameters (rate, length, seed) -> the same samples with the same build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mw::dsp {

struct CaptureSignalParams {
    double sample_rate_hz = 48000;
    double length_seconds = 120;  // the whole file; at least capture_signal_min_seconds()
    uint64_t seed = 1;            // varies the noise and the music, not the layout's fixed part
};

// One stretch of the signal, [start_frame, end_frame).
struct CaptureSegment {
    std::string name;  // unique, e.g. "sweep_-14dBFS", "music_03_palm_mute"
    std::string kind;  // silence, sync, sweep, white_noise, pink_noise, decay_tone,
                       // decay_noise, level_steps, music
    int64_t start_frame = 0, end_frame = 0;
    double level_dbfs = 0;  // peak level of the segment (ignored for silence)
    // sweep: instantaneous frequency f(t) = f0 * (f1/f0)^(t/T), t seconds from start_frame,
    // T = the segment's length; decay_tone and level_steps: f0 is the tone's frequency.
    double f0_hz = 0, f1_hz = 0;
    double decay_db_per_second = 0;  // decay_tone, decay_noise
};

struct CaptureSignal {
    double sample_rate_hz = 0;
    uint64_t seed = 0;
    std::vector<float> samples;              // [frames], mono
    std::vector<CaptureSegment> segments;    // in time order, covering [0, frames) exactly
    std::vector<int64_t> sync_start_frames;  // single-sample impulses of +sync_amplitude
    std::vector<int64_t> sync_end_frames;
    float sync_amplitude = 0;
    int64_t frames() const { return int64_t(samples.size()); }
};

constexpr double kCaptureMinRateHz = 44100;
constexpr double kCaptureMaxRateHz = 192000;
constexpr double kCaptureMaxSeconds = 3600;
// The fixed part (everything but the music) plus 10 s of music.
double capture_signal_min_seconds();

// Throws std::invalid_argument for a rate outside [kCaptureMinRateHz, kCaptureMaxRateHz] or a
// length outside [capture_signal_min_seconds(), kCaptureMaxSeconds].
CaptureSignal make_capture_signal(const CaptureSignalParams& params);

// A sweep segment's instantaneous frequency `seconds` after its start.
double sweep_frequency_hz(const CaptureSegment& sweep, double sample_rate_hz, double seconds);

// The sidecar (`di.wav.json`): format, rate, frames, seed, sync impulse frames, segments.
std::string capture_signal_json(const CaptureSignal& signal);

} // namespace mw::dsp
