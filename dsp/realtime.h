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
// Effects run each stream's block through the kernels' scan on the audio thread (one thread,
// no allocation), with the controls smoothed per sample as the rows' inputs: the same floats
// as stepping sample by sample, in less time, since a block's rows are in flight together.
// Generators step, as they must (each sample feeds the next).
//
// Models: a new model is loaded and prepared off the audio thread, handed over atomically (the
// audio thread picks it up at the start of its next block, or when a running crossfade ends;
// a model set again before that replaces the waiting one), crossfaded with the old one over
// kCrossfadeSeconds so a swap does not click (both run during the fade; no fade when nothing
// has been processed since prepare()), and the old one is freed off the audio thread by
// collect_garbage(). The audio thread never drops the last reference to a model: retired
// models wait in a lock-free queue (16 deep; while it is full no new model is taken).
//
// Sample rates: when the host rate differs from the model's rate the engine resamples around
// the model (see RateMode); latency_samples() is exact, in host samples (0 when the rates match).
// The resampler (dsp/resampler.h) is a polyphase Kaiser-windowed sinc: 96 taps at the lower
// rate, passband to 0.433·f_low, stopband from 0.5·f_low; its measured ripple and stopband
// attenuation are in docs/LIVE.md. Rates must be whole Hz with a reduced ratio of at most
// 4096 phases (every common pair is); otherwise prepare()/set_model() throw
// std::invalid_argument saying so.
//
// Signal path of the effect, per channel (gains, mix and bypass smoothed over kSmoothingSeconds):
//   wet = output_gain · model(input_gain · in)      (resampled around the model when needed)
//   out = mix · wet + (1 − mix) · dry               dry = in, delayed by the latency
// bypass ramps the mix to 0.
#pragma once

#include "kernels/fast.h"
#include "model/model.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace mw::pooled { struct Prepared; }  // model/pooled.h

namespace mw::dsp {

// A model ready for the audio thread: weights, the kernels' prepared layout, and where it came
// from. Immutable once made; shared between threads by shared_ptr (released off the audio
// thread only).
struct RealtimeModel {
    Model model;
    kernels::PreparedModelPtr prepared;  // null for a pooled generator, which has:
    std::shared_ptr<const pooled::Prepared> pooled;  // its weights, shared by its voices' pooled::Steppers
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
// How delta is done: no kernel hook is needed. With α = model_rate / host_rate,
//   exp(αΔ·A) = exp(Δ·(αA))  and  (αΔ)·u·B = Δ·u·(αB),
// so the engine runs a copy of the model with A_log += ln α and the B rows of x_proj scaled by
// α, which is exactly the SSM with every Δ scaled by α (the kernel's Δ clamp follows A). The
// causal conv, the gates and the projections still see samples at the host rate: that is the
// approximation. Latency 0. Effects only: the SynthEngine always resamples (a generator's
// sampled token stream has no continuous-time reading).

constexpr double kCrossfadeSeconds = 0.020;
constexpr double kSmoothingSeconds = 0.020;   // gains, mix, bypass, controls, synth level
constexpr double kReleaseSeconds = 0.050;     // synth note-off fade
// A synth voice that has drawn the silence class (mu-law 0.0, what `train --pad-end` teaches a
// generator to end its clips with) this long in a row has finished: it stops stepping, and so
// costs nothing, until its key is pressed again.
constexpr double kSilentEndSeconds = 0.5;
// A voice that has said nothing (see kSpokenLevel) in its first
// kSilentEndSeconds starts again, primed afresh with its own sampler drawing on, up to this many
// times: a generator sometimes draws silence or a faint hiss from the start (at temperature 1,
// the self-fed presets of 2026-12-07: 161 of 1800 presses of digits_large spoke only after a
// retry, 2 not at all; docs/DIGITS.md), and a key pressed should say its word.
constexpr int kSilentRestarts = 2;
// "Said something": kSpokenSeconds of samples (not necessarily in a row) at least kSpokenLevel
// loud. The level is below any take of the FSDD training split (their peaks: 0.0105 at the
// least, under 0.05 for 16% of them), since a generator reproduces quietly recorded speakers
// too: at 0.05 and a single sample, the rule until 2026-12-07, the Synth started 10% of
// digits_large's presses again mid-word, and a lone click counted as a word (docs/DIGITS.md,
// "The Synth's own knobs").
constexpr float kSpokenLevel = 0.01f;
constexpr double kSpokenSeconds = 0.005;
constexpr int kMaxControls = 8;

// A labelled generator (trained with --label-prefix; docs/DIGITS.md) is told by the note which
// label to make: kFirstLabelNote (60, middle C, "C4") plays label 0, each key up the next label,
// wrapping every n_labels keys up and down the keyboard. Ten digits: C4..A4 play 0..9, A#4
// plays 0 again, B3 plays 9. Returns 0..n_labels-1 (n_labels >= 1).
constexpr int kFirstLabelNote = 60;
constexpr int label_for_note(int note, int n_labels) noexcept {
    const int k = (note - kFirstLabelNote) % n_labels;
    return k < 0 ? k + n_labels : k;
}
// That map in one line for people, say "C4 plays 0 ... A4 plays 9, every 10 keys"; empty for a
// model without labels.
std::string label_keys_text(const ModelConfig& config);
std::string note_name(int note);  // 60: "C4", 61: "C#4"
// The inverse: "C4", "c#4", "Db4", "A-1" or a MIDI number "60" -> 0..127; -1 for anything else.
int parse_note_name(const std::string& text);

// The Synth's sampling until the user turns its knobs (the plugin's parameter defaults, and
// `mambawave synth`'s): temperature, top-p, and the guidance weight for a labelled model that
// declares none (ModelConfig::guidance; one that declares a weight gets it when picked).
// Temperature 1 and no nucleus cut, as `generate` and `live` draw: the digits presets played so
// at each key were clearer to both judges than at 0.9 and 0.95, the Synth's defaults until
// 2026-12-07, and fell silent less often (docs/DIGITS.md, "The Synth's own knobs").
constexpr float kSynthTemperatureDefault = 1.0f;
constexpr float kSynthTopPDefault = 1.0f;
constexpr float kSynthGuidanceDefault = 3.0f;

struct EngineStats {
    int64_t nonfinite_events = 0;   // blocks where a stream was reset for NaN/Inf
    int64_t model_swaps = 0;        // hand-overs completed on the audio thread
    double load = 0;                // time in process() / real time of the block (smoothed)
    float peak_in = 0, peak_out = 0;// since the last stats() call (meters), linear
    double load_peak = 0;           // the highest one-block load since the last stats() call
    int64_t dropped_events = 0;     // synth: note events beyond the per-block queue (256)
    int64_t silent_restarts = 0;    // synth: voices primed again for saying nothing (kSilentRestarts)
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
    // Throws std::invalid_argument when the host rate cannot be resampled to the model's rate
    // (see above); the engine is then left prepared with no model (dry).
    void prepare(double host_rate_hz, int max_block_samples, int channels);
    // Message thread, any time (also while audio runs). nullptr unloads (output = dry input).
    // Before prepare() it only records the model. Throws std::invalid_argument for a generator
    // model or rates that cannot be resampled (the running model stays).
    void set_model(RealtimeModelPtr model);
    RealtimeModelPtr model() const;   // the one most recently set
    // Message thread; a change rebuilds the running model's slot and crossfades to it.
    void set_rate_mode(RateMode mode);
    RateMode rate_mode() const;
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

    // Host samples, exact: of the model most recently set (what the host should report).
    int latency_samples() const;
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

    // As EffectEngine's (throws std::invalid_argument for an effect model or rates that cannot
    // be resampled). Output: the voices summed, mono, copied to every channel.
    void prepare(double host_rate_hz, int max_block_samples, int channels);
    void set_model(RealtimeModelPtr model);
    RealtimeModelPtr model() const;
    void collect_garbage();

    // A voice draws its classes with the temperature and top-p of the moment (changes apply to
    // playing voices at the next block); its random stream is seeded with seed + note at
    // note-on, so a note replays the same way.
    void set_temperature(float t);   // 0.05..2
    void set_top_p(float p);         // 0.05..1
    // Guidance against the null label, for a labelled model trained with label dropout
    // (ModelConfig::label_null; else ignored): a voice that starts with w > 0 runs a second
    // stream, primed with the null label's prefix, and draws from (1 + w)·its label's logits −
    // w·the null stream's (null_guidance_logits): clearer labels at about twice the CPU a voice. The
    // weight applies to playing voices at the next block; a voice started at 0 stays unguided.
    static constexpr float kMaxGuidance = 8.0f;
    void set_guidance(float w);      // 0..8
    void set_level_db(float db);
    void set_seed(uint32_t seed);

    // Audio thread. Events apply at the given sample offset within the next process() block
    // (exactly at equal rates; at the first model sample at or after that instant otherwise).
    // A voice starts from the zero state primed with kPrimeTokens silent classes (a labelled
    // model's voice: with the prefix of the note's label, label_for_note); note-off fades it
    // over kReleaseSeconds. More than kMaxVoices notes steal the oldest voice. A voice that
    // falls silent for kSilentEndSeconds ends by itself (still counted by active_voices() while
    // its key is held; sounding_voices() no longer counts it). One that has said nothing in its
    // first kSilentEndSeconds starts again, kSilentRestarts times at most.
    static constexpr int kPrimeTokens = 4;
    void note_on(int note, float velocity_0_to_1, int sample_offset) noexcept;
    void note_off(int note, int sample_offset) noexcept;
    void all_notes_off() noexcept;
    void process(float* const* out, int channels, int n) noexcept;

    int latency_samples() const;
    int active_voices() const;
    // Voices the model is stepping (after the last block): active ones less those that ended
    // in silence (kSilentEndSeconds).
    int sounding_voices() const;
    EngineStats stats();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace mw::dsp
