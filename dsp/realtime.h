// The real-time engine: what the plugin (plugin/) and the live app (standalone/live) run on the
// audio thread. One implementation for both. Thin shells above it hold no model math.
//
// Threads:
//   message thread  loads models (load_realtime_model), calls prepare(), set_model(), the
//                   parameter setters, collect_garbage() (e.g. from a 10 Hz timer).
//   audio thread    calls process() only. process() never allocates, locks, throws, logs or
//                   does I/O (tests arm an allocation trap around it).
// Parameter setters are atomics: any thread may call them at any time.
//
// Real-time rules (DESIGN.md): denormals flushed for the block (FTZ/DAZ); a non-finite state or
// output resets that stream's state, outputs silence for the rest of the block, and counts an
// event; NaN/Inf input is treated as silence; NaN never reaches the host.
//
// Models: a new model is loaded and prepared off the audio thread, handed over atomically (the
// audio thread picks it up at the start of its next block), crossfaded with the old one over
// kCrossfadeSeconds so a swap does not click, and the old one is freed off the audio thread
// by collect_garbage().
//
// Sample rates: when the host rate differs from the model's rate the engine resamples around
// the model (see RateMode); latency_samples() is exact, in host samples (0 when the rates match).
#pragma once

#include "kernels/fast.h"
#include "model/model.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace mw::dsp {

// A model ready for the audio thread: weights, the kernels' prepared layout, and where it came
// from. Immutable once made; shared between threads by shared_ptr (released off the audio
// thread only).
struct RealtimeModel {
    Model model;
    kernels::PreparedModelPtr prepared;
    std::string path;          // "" when made in memory
    std::string content_hash;  // hex FNV-1a 64 of the file bytes ("" when made in memory)
};
using RealtimeModelPtr = std::shared_ptr<const RealtimeModel>;

// Loads and prepares a model file (message thread). Throws ModelError naming the file.
RealtimeModelPtr load_realtime_model(const std::string& path);
// Wraps a model already in memory (tests, generated presets).
RealtimeModelPtr make_realtime_model(Model model);

// How a model whose rate differs from the host's is run.
enum class RateMode {
    resample,  // polyphase resampler around the model: exact, documented quality and latency
    delta,     // Δ-scaling: run at the host rate with Δ scaled by model_rate / host_rate
               // (the SSM is continuous-time; the conv is not, so this is an approximation)
};

constexpr double kCrossfadeSeconds = 0.020;
constexpr int kMaxControls = 8;

struct EngineStats {
    int64_t nonfinite_events = 0;   // blocks where a stream was reset for NaN/Inf
    int64_t model_swaps = 0;        // hand-overs completed on the audio thread
    double load = 0;                // time in process() / real time of the block (smoothed)
    float peak_in = 0, peak_out = 0;// since the last stats() call (meters), linear
};

// --- Effect: audio in -> model -> audio out -------------------------------------------------
// A mono effect model runs one stream per channel.
class EffectEngine {
public:
    EffectEngine();
    ~EffectEngine();
    EffectEngine(const EffectEngine&) = delete;
    EffectEngine& operator=(const EffectEngine&) = delete;

    // Message thread, audio stopped (or from the host's prepareToPlay): sizes every buffer.
    void prepare(double host_rate_hz, int max_block_samples, int channels);
    // Message thread, any time (also while audio runs). nullptr unloads (output = dry input).
    void set_model(RealtimeModelPtr model);
    RealtimeModelPtr model() const;   // the one most recently set
    void set_rate_mode(RateMode mode);
    // Frees models the audio thread has let go of. Message thread; cheap; call often.
    void collect_garbage();

    // Parameters (any thread; smoothed on the audio thread over ~20 ms).
    void set_input_gain_db(float db);
    void set_output_gain_db(float db);
    void set_mix(float wet_0_to_1);        // 1 = all model
    void set_bypass(bool bypass);          // crossfaded like the mix
    void set_control(int index, float value_user_units);  // clamped to the model's range

    // Audio thread. in/out: [channels][n], n <= max_block_samples; in == out allowed.
    void process(const float* const* in, float* const* out, int channels, int n) noexcept;

    int latency_samples() const;   // host samples, exact
    EngineStats stats();           // any thread; resets the peak meters

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// --- Synth: a generator model, voices started and stopped by notes -------------------------
// Each voice is one stream of the generator (mu-law classes, sampled with temperature and
// top-p), decoded to audio and resampled to the host rate. A note-on starts (or re-primes) a
// voice, seeded from the seed parameter and the note number; note-off fades it out.
class SynthEngine {
public:
    static constexpr int kMaxVoices = 8;

    SynthEngine();
    ~SynthEngine();
    SynthEngine(const SynthEngine&) = delete;
    SynthEngine& operator=(const SynthEngine&) = delete;

    void prepare(double host_rate_hz, int max_block_samples, int channels);
    void set_model(RealtimeModelPtr model);
    RealtimeModelPtr model() const;
    void collect_garbage();

    void set_temperature(float t);   // 0.05..2
    void set_top_p(float p);         // 0.05..1
    void set_level_db(float db);
    void set_seed(uint32_t seed);

    // Audio thread. Events apply at the given sample offset within the next process() block.
    void note_on(int note, float velocity_0_to_1, int sample_offset) noexcept;
    void note_off(int note, int sample_offset) noexcept;
    void all_notes_off() noexcept;
    void process(float* const* out, int channels, int n) noexcept;

    int latency_samples() const;
    int active_voices() const;
    EngineStats stats();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace mw::dsp
