// `mambawave synth`: a generator played as the Synth plugin plays it, offline. Each key press
// runs through dsp::SynthEngine (the plugin's and the live app's engine: its voices, priming,
// label keys, guidance, release fade and the retries of a voice that says nothing), held for
// --hold seconds and released, into a file of its own. What a user hears from a key, without a
// DAW; and what scripts/digits_score.sh scores with SYNTH=1.
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/progress.h"

#include "dsp/audio_file.h"
#include "dsp/realtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace mw::cli {

namespace {

constexpr int kMaxPresses = 4096;
constexpr int kBlock = 512;  // host samples a process() call, as a DAW's buffer

struct SynthOptions {
    std::string model_path, out_path;
    std::vector<std::string> notes, labels;
    double hold_seconds = 1.5;
    int count = 1;
    float temperature = dsp::kSynthTemperatureDefault;
    float top_p = dsp::kSynthTopPDefault;
    float guidance = 0.0f;
    bool guidance_given = false;  // else the model's own weight, else the Synth's default
    uint32_t seed = 1;
    float level_db = 0.0f;
    double rate_hz = 0;  // 0: the model's own
    int threads = 0;
};

struct Press {
    int note = 0;
    uint32_t seed = 0;
    std::string path;
    float peak = 0;          // of the output, at velocity 1 and the given level
    double onset = -1;       // seconds until it had said something (dsp::kSpokenLevel); -1: never
    int64_t retries = 0;     // times its voice was started again for saying nothing
};

// One key press through a fresh engine: note-on at sample 0, note-off after hold_samples, then
// the release fade. The voice's random stream is seeded with seed + note, as in the plugin.
void play_press(const dsp::RealtimeModelPtr& model, const SynthOptions& o, float guidance, double rate_hz,
                Press& press) {
    dsp::SynthEngine engine;
    engine.set_model(model);
    engine.prepare(rate_hz, kBlock, 1);
    engine.set_temperature(o.temperature);
    engine.set_top_p(o.top_p);
    engine.set_guidance(guidance);
    engine.set_level_db(o.level_db);
    engine.set_seed(press.seed);
    const int64_t hold = std::max<int64_t>(1, std::llround(o.hold_seconds * rate_hz));
    const int64_t frames = hold + std::llround((dsp::kReleaseSeconds + 0.01) * rate_hz) + engine.latency_samples();
    dsp::AudioWriter writer(press.path, rate_hz, 1);
    std::vector<float> block(static_cast<size_t>(kBlock));
    float* planar[] = {block.data()};
    // "said something" as the engine counts it (dsp::kSpokenLevel), on the output at its level
    const float spoken = dsp::kSpokenLevel * std::pow(10.0f, o.level_db / 20.0f);
    const int64_t spoken_samples = std::max<int64_t>(1, std::llround(dsp::kSpokenSeconds * rate_hz));
    int64_t loud = 0;
    for (int64_t t0 = 0; t0 < frames; t0 += kBlock) {
        const int n = int(std::min<int64_t>(kBlock, frames - t0));
        if (t0 == 0) engine.note_on(press.note, 1.0f, 0);
        if (hold >= t0 && hold < t0 + n) engine.note_off(press.note, int(hold - t0));
        engine.process(planar, 1, n);
        for (int i = 0; i < n; ++i) {
            const float a = std::fabs(block[size_t(i)]);
            press.peak = std::max(press.peak, a);
            loud += a >= spoken;
            if (press.onset < 0 && loud >= spoken_samples) press.onset = double(t0 + i) / rate_hz;
        }
        writer.write(planar, n);
    }
    press.retries = engine.stats().silent_restarts;
    writer.commit();
}

// The keys to press: --notes as given, --label as the label's key (C4 plays label 0, ...).
std::vector<int> keys_to_press(const SynthOptions& o, const ModelConfig& c) {
    std::vector<int> keys;
    for (const std::string& n : o.notes) {
        const int note = dsp::parse_note_name(n);
        if (note < 0)
            throw UsageError("--notes: '" + n + "' is not a note: give a name such as C4, F#3 or Bb2 (C4 is middle "
                             "C), or a MIDI number 0..127");
        keys.push_back(note);
    }
    for (const std::string& l : o.labels) {
        if (l == "all" && c.labelled()) {
            for (int i = 0; i < int(c.labels.size()); ++i) keys.push_back(dsp::kFirstLabelNote + i);
            continue;
        }
        keys.push_back(dsp::kFirstLabelNote + label_index_or_throw(c, l, o.model_path));
    }
    if (keys.empty()) {
        if (c.labelled())
            throw UsageError(o.model_path + " was trained with labels: --label NAME (or all) says which to play (" +
                             describe_labels(c) + "; " + dsp::label_keys_text(c) + "), or --notes the keys");
        throw UsageError("give the keys to press: --notes C4,E4,G4 (or MIDI numbers)");
    }
    return keys;
}

// The output file of press k (0-based) of note i of the keys: OUT for a single press; with
// several keys OUT's stem + _<note> (seven_C4.wav); with --count N, + _001 .. _N.
std::string press_path(const std::string& out, const std::vector<int>& keys, size_t i, int k, int count) {
    if (keys.size() == 1) return clip_path(out, k + 1, count);
    std::string name = dsp::note_name(keys[i]);
    std::replace(name.begin(), name.end(), '#', 's');  // (a '#' in a file name trips shells and URLs)
    return clip_path(named_path(out, name), k + 1, count);
}

void run_synth(const SynthOptions& o) {
    const dsp::RealtimeModelPtr model =
        dsp::make_realtime_model(load_model_for(o.model_path, IoKind::mulaw8, "synth", "render"));
    const ModelConfig& c = model->model.config();
    const double rate_hz = o.rate_hz > 0 ? o.rate_hz : c.sample_rate_hz;
    const std::vector<int> keys = keys_to_press(o, c);
    if (int64_t(keys.size()) * o.count > kMaxPresses)
        throw UsageError(std::to_string(keys.size()) + " keys × --count " + std::to_string(o.count) + " is more than " +
                         std::to_string(kMaxPresses) + " presses");
    // The Guidance knob: as the plugin sets it when the model is picked.
    float guidance = o.guidance;
    if (!o.guidance_given) guidance = c.guidance > 0.0f ? c.guidance : dsp::kSynthGuidanceDefault;
    if (!c.label_null) {
        if (o.guidance_given && o.guidance > 0.0f)
            throw UsageError("--guidance " + fmt_g(o.guidance) + ": " + o.model_path +
                             " has no null label (it was not trained with --label-dropout), so the Synth plays it unguided");
        guidance = 0.0f;
    }
    {   // a rate the engine cannot resample to fails here, before any file is written
        dsp::SynthEngine probe;
        probe.set_model(model);
        try {
            probe.prepare(rate_hz, kBlock, 1);
        } catch (const std::invalid_argument& e) {
            throw UsageError("--rate " + fmt_g(rate_hz) + ": " + e.what());
        }
    }
    std::vector<Press> presses;
    for (size_t i = 0; i < keys.size(); ++i)
        for (int k = 0; k < o.count; ++k)
            presses.push_back({keys[i], o.seed + uint32_t(k), press_path(o.out_path, keys, i, k, o.count)});
    note("playing " + std::to_string(presses.size()) + " key press" + (presses.size() == 1 ? "" : "es") + ", each held " +
         fmt_g(o.hold_seconds) + " s, at " + fmt_g(rate_hz) + " Hz: temperature " + fmt_g(o.temperature) + ", top-p " +
         fmt_g(o.top_p) + (c.label_null ? ", guidance " + fmt_g(guidance) + (o.guidance_given ? "" : c.guidance > 0.0f
                                                                                                  ? " (the model's own)"
                                                                                                  : " (the Synth's default)")
                                        : std::string()));

    Stopwatch clock;
    const double press_seconds = o.hold_seconds + dsp::kReleaseSeconds;
    std::atomic<size_t> next{0}, done{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto worker = [&] {
        for (size_t i; (i = next.fetch_add(1)) < presses.size() && !interrupted();) {
            try {
                play_press(model, o, guidance, rate_hz, presses[i]);
            } catch (...) {
                const std::lock_guard<std::mutex> lock(failure_mutex);
                if (!failure) failure = std::current_exception();
                next = presses.size();
            }
            ++done;
        }
    };
    const int threads = std::clamp(o.threads > 0 ? o.threads : int(std::thread::hardware_concurrency()), 1,
                                   int(presses.size()));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    ProgressBar bar("synth", double(presses.size()) * press_seconds);
    while (done.load() < presses.size() && !failure && !interrupted()) {
        bar.update(double(done.load()) * press_seconds);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (std::thread& t : pool) t.join();
    bar.finish();
    if (failure) std::rethrow_exception(failure);
    throw_if_interrupted();

    // What came out: presses that said nothing, and those whose voice was started again.
    int silent = 0, retried = 0;
    std::vector<double> onsets;
    for (const Press& p : presses) {
        retried += p.retries > 0;
        if (p.onset < 0) ++silent;
        else onsets.push_back(p.onset);
    }
    const bool list_each = presses.size() <= 12;
    for (const Press& p : presses)
        if (list_each || p.onset < 0) {
            char line[256];
            const std::string what = (p.onset < 0 ? std::string("said nothing") : "spoke at " + fmt_g(p.onset, 3) + " s") +
                                     (p.retries > 0 ? " (started again " + std::to_string(p.retries) + "x)" : "");
            std::snprintf(line, sizeof line, "  %-4s seed %-6u peak %.3f  %s", dsp::note_name(p.note).c_str(),
                          unsigned(p.seed), double(p.peak), what.c_str());
            std::cout << line << "  -> " << p.path << "\n";
        }
    std::sort(onsets.begin(), onsets.end());
    std::cout << "played " << presses.size() << " key press" << (presses.size() == 1 ? "" : "es") << ", "
              << speed_summary(double(presses.size()) * press_seconds, clock.seconds()) << ": " << silent
              << " said nothing (not " << fmt_g(dsp::kSpokenSeconds * 1000) << " ms of samples at " << fmt_g(dsp::kSpokenLevel)
              << " or louder, at 0 dB)";
    std::cout << ", " << retried << " started again (silent for their first " << fmt_g(dsp::kSilentEndSeconds) << " s)";
    if (!onsets.empty()) std::cout << ", median onset " << fmt_g(onsets[onsets.size() / 2], 3) << " s";
    std::cout << "\n";
}

} // namespace

void add_synth_command(CLI::App& app) {
    auto o = std::make_shared<SynthOptions>();
    CLI::App* sub = app.add_subcommand(
        "synth", "Play a generator as the Synth plugin does, offline: key presses in, one audio file each");
    add_model_option(*sub, o->model_path);
    sub->add_option("--out,-o", o->out_path,
                    "Output audio file (.wav or .flac), mono. Several keys: one file each, named after the key "
                    "(OUT_C4.wav, OUT_Cs4.wav for C#4); --count N: _001 .. _N after that")
        ->required();
    sub->add_option("--label,-l", o->labels,
                    "A labelled model's label to play, by its key (C4 plays the first label, each key up the "
                    "next: the digits' 0 .. 9 are C4 .. A4); several as 0,3,7, or all")
        ->delimiter(',');
    sub->add_option("--notes", o->notes, "Keys to press: names (C4 is middle C, F#3, Bb2) or MIDI numbers, e.g. C4,E4,G4")
        ->delimiter(',');
    sub->add_option("--hold", o->hold_seconds,
                    "Seconds each key is held; the release fade (" + fmt_g(dsp::kReleaseSeconds * 1000) +
                        " ms) follows")
        ->check(CLI::Range(0.01, 600.0))
        ->capture_default_str();
    sub->add_option("--count,-n", o->count,
                    "Presses of each key, the seed one up each time (--seed, --seed + 1, ...)")
        ->check(CLI::Range(1, kMaxPresses))
        ->capture_default_str();
    sub->add_option("--temperature,-t", o->temperature, "The Synth's Temperature knob (0.05 .. 2)")
        ->check(CLI::Range(0.05, 2.0))
        ->capture_default_str();
    sub->add_option("--top-p", o->top_p, "The Synth's Top-p knob (0.05 .. 1)")
        ->check(CLI::Range(0.05, 1.0))
        ->capture_default_str();
    sub->add_option("--guidance", o->guidance,
                    "The Synth's Guidance knob (0 .. " + fmt_g(dsp::SynthEngine::kMaxGuidance) +
                        "), for a model trained with --label-dropout. Default: as the plugin sets it when the "
                        "model is picked, the model's own weight (`info`), else " +
                        fmt_g(dsp::kSynthGuidanceDefault))
        ->check(CLI::Range(0.0, double(dsp::SynthEngine::kMaxGuidance)));
    sub->add_option("--seed", o->seed,
                    "The Synth's Seed: a key's voice draws with seed + its MIDI note, so a press replays "
                    "the same way")
        ->capture_default_str();
    sub->add_option("--level", o->level_db, "Output level in dB (the plugin's Level knob starts at -6)")
        ->check(CLI::Range(-60.0, 6.0))
        ->capture_default_str();
    sub->add_option("--rate", o->rate_hz,
                    "The host's sample rate in Hz (44100, 48000, ...): the engine resamples the model's "
                    "output to it, as in a DAW. Default: the model's own rate, no resampling")
        ->check(CLI::Range(1000.0, 384000.0));
    add_threads_option(*sub, o->threads, "CPU threads (0 = all cores): presses side by side, one engine each");
    sub->footer(
        "Each press starts a fresh engine: the same key, seed and knobs give the same file, on any number of "
        "threads. A voice that says nothing in its first " + fmt_g(dsp::kSilentEndSeconds) +
        " s (not " + fmt_g(dsp::kSpokenSeconds * 1000) + " ms of samples at " + fmt_g(dsp::kSpokenLevel) + " or louder) starts again, " +
        std::to_string(dsp::kSilentRestarts) +
        " times at most, as in the plugin; the summary counts the presses that said nothing and those "
        "started again so.\n\n"
        "Examples:\n"
        "  mambawave synth -m presets/digits_labelled.safetensors --label 7 -o seven.wav\n"
        "  mambawave synth -m presets/digits_large.safetensors --label all --count 3 --rate 48000 -o digit.wav\n"
        "    (digit_C4_001.wav .. digit_A4_003.wav: each digit three times, as heard in a 48 kHz session)\n"
        "  mambawave synth -m presets/digits.safetensors --notes C4 --count 4 -o babble.wav   (no labels: a burst each)");
    sub->callback([o, sub] {
        o->guidance_given = sub->count("--guidance") > 0;
        run_synth(*o);
    });
}

} // namespace mw::cli
