// `mambawave live`: a model on a sound card in real time, through RtAudio. A thin shell over
// dsp::EffectEngine / dsp::SynthEngine (the same engine the plugin runs):
//
//   audio thread   RtAudio's callback: input (device or --input-file) -> engine.process() ->
//                  output, and a copy into the recorder's FIFO. MIDI notes arrive through a FIFO.
//   main thread    opens the devices, prints a status line once a second, reloads the model
//                  when its file changes (loaded here, handed over with set_model), frees
//                  retired models (collect_garbage), stops after --seconds or on Ctrl-C/SIGTERM.
//   writer thread  drains the recorder's FIFO into the --record file (dsp::AudioWriter).
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/live_audio.h"
#include "standalone/live_io.h"

#include "dsp/audio_file.h"
#include "dsp/realtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

namespace mw::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct LiveOptions {
    std::string model_path, api, input, output, mode, record_path, input_file, midi, label;
    std::string rate_mode = "resample";
    double rate = 0;
    int buffer = 256;
    int channels = 0;
    float in_gain_db = 0, out_gain_db = 0, mix = 1;
    std::vector<std::string> controls;
    std::vector<std::string> ccs;  // "NAME=CC": a MIDI controller moving a control, the mix or a sampling setting
    float temperature = 1.0f, top_p = 1.0f;
    float guidance = 0.0f;  // generator: SynthEngine::set_guidance (a model with a null label)
    uint32_t seed = 0;
    double seconds = 0;
};

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

// Everything the audio callback touches. Sized before the stream starts; the callback only runs.
struct LiveRun {
    dsp::EffectEngine* fx = nullptr;
    dsp::SynthEngine* synth = nullptr;
    int channels = 0;
    int in_channels = 0;  // device input channels (effect, no --input-file)
    double rate_hz = 0;
    const dsp::AudioData* file = nullptr;  // --input-file, at the device rate
    int64_t file_pos = 0;
    std::vector<std::vector<float>> file_tail;  // [channels][kScratch] the file's last partial buffer
    live::Recorder* recorder = nullptr;
    live::MidiInput* midi = nullptr;
    bool continuous_voice = false;
    int continuous_note = dsp::kFirstLabelNote;  // its note (a labelled model: --label's key)
    bool first = true;
    std::vector<const float*> in_ptrs;  // [channels]
    std::vector<float*> out_ptrs;       // [channels]

    std::atomic<int64_t> callbacks{0}, frames{0}, xruns{0}, busy_ns{0}, max_ns{0};
    std::atomic<unsigned> last_n{0};
    std::atomic<bool> stream_error{false};
    std::string error_text;  // set before stream_error
    static constexpr int kScratch = 65536;
};

int audio_callback(void* output, void* input, unsigned n, double, RtAudioStreamStatus status, void* user) {
    LiveRun& s = *static_cast<LiveRun*>(user);
    const Clock::time_point t0 = Clock::now();
    if (status) s.xruns.fetch_add(1, std::memory_order_relaxed);
    float* out = static_cast<float*>(output);  // planar (RTAUDIO_NONINTERLEAVED)
    for (int c = 0; c < s.channels; ++c) s.out_ptrs[size_t(c)] = out + size_t(c) * n;
    if (s.synth) {
        // (the continuous voice starts again whenever it has ended in silence: a labelled digits
        // model says its word, falls silent and stops, dsp::kSilentEndSeconds)
        if (s.continuous_voice && (s.first || s.synth->sounding_voices() == 0))
            s.synth->note_on(s.continuous_note, 1.0f, 0);
        live::MidiNote m;
        while (s.midi && s.midi->pop(m)) {
            if (m.kind == live::MidiNote::on) s.synth->note_on(m.note, m.velocity, 0);
            else if (m.kind == live::MidiNote::off) s.synth->note_off(m.note, 0);
            else s.synth->all_notes_off();
        }
        s.synth->process(s.out_ptrs.data(), s.channels, int(n));
    } else {
        if (s.file) {
            const int64_t frames = s.file->frames();
            const int file_ch = int(s.file->channels.size());
            const bool whole = s.file_pos + int64_t(n) <= frames;
            for (int c = 0; c < s.channels; ++c) {
                const std::vector<float>& src = s.file->channels[size_t(std::min(c, file_ch - 1))];
                if (whole) {
                    s.in_ptrs[size_t(c)] = src.data() + s.file_pos;
                    continue;
                }
                float* tail = s.file_tail[size_t(c)].data();
                const int64_t have = std::clamp<int64_t>(frames - s.file_pos, 0, n);
                const int64_t m = std::min<int64_t>(n, LiveRun::kScratch);
                for (int64_t t = 0; t < m; ++t) tail[t] = t < have ? src[size_t(s.file_pos + t)] : 0.0f;
                s.in_ptrs[size_t(c)] = tail;
            }
            s.file_pos += n;
        } else {
            const float* in = static_cast<const float*>(input);
            for (int c = 0; c < s.channels; ++c)
                s.in_ptrs[size_t(c)] = in + size_t(std::min(c, s.in_channels - 1)) * n;
        }
        s.fx->process(s.in_ptrs.data(), s.out_ptrs.data(), s.channels, int(n));
    }
    if (s.recorder) s.recorder->push(s.out_ptrs.data(), int(n));
    s.first = false;
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    s.busy_ns.fetch_add(ns, std::memory_order_relaxed);
    if (ns > s.max_ns.load(std::memory_order_relaxed)) s.max_ns.store(ns, std::memory_order_relaxed);
    s.frames.fetch_add(n, std::memory_order_relaxed);
    s.last_n.store(n, std::memory_order_relaxed);
    s.callbacks.fetch_add(1, std::memory_order_relaxed);
    return 0;
}

// RtAudio's error callback (its own thread): a stream that died (JACK shut down, device lost).
LiveRun* g_run = nullptr;
void stream_error_callback(RtAudioError::Type type, const std::string& text) {
    if (type == RtAudioError::WARNING || type == RtAudioError::DEBUG_WARNING || !g_run) return;
    g_run->error_text = text;
    g_run->stream_error = true;
}

std::string fixed(double x, int digits) {
    char t[48];
    std::snprintf(t, sizeof t, "%.*f", digits, x);
    return t;
}

std::string dbfs(float linear) {
    if (!(linear > 0)) return "  -inf";
    char t[16];
    std::snprintf(t, sizeof t, "%6.1f", 20.0 * std::log10(double(linear)));
    return t;
}

// The file whose modification time says the model changed (an HF checkpoint: its weights).
fs::path watched_file(const std::string& model_path) {
    fs::path p(model_path);
    if (fs::is_directory(p)) return p / "model.safetensors";
    return p;
}

fs::file_time_type mtime_or_min(const fs::path& p) {
    std::error_code ec;
    const auto t = fs::last_write_time(p, ec);
    return ec ? fs::file_time_type::min() : t;
}

void check_mode_options(CLI::App& sub, const LiveOptions& o, bool generator) {
    auto given = [&](const char* name) { return sub.count(name) > 0; };
    if (generator) {
        for (const char* opt : {"--input", "--input-file", "--in-gain", "--mix", "--control", "--rate-mode"})
            if (given(opt))
                throw UsageError(std::string(opt) + " applies to effect mode; " + o.model_path +
                                 " runs in generator mode");
    } else {
        for (const char* opt : {"--label", "--temperature", "--top-p", "--seed", "--guidance"})
            if (given(opt))
                throw UsageError(std::string(opt) + " applies to generator mode; " + o.model_path +
                                 " runs in effect mode");
        if (given("--input") && given("--input-file"))
            throw UsageError("--input and --input-file both name the input; give one");
        if (given("--midi") && !given("--cc"))
            throw UsageError("--midi " + o.midi + ": in effect mode MIDI controllers move the controls; say which "
                             "moves which with --cc NAME=CC, e.g. --cc drive=11 (an expression pedal)");
    }
    if (given("--cc") && !given("--midi"))
        throw UsageError("--cc needs --midi PORT: the MIDI input whose controllers move what --cc names "
                         "(`mambawave devices` lists the ports)");
}

// What a MIDI controller moves (--cc NAME=CC), over the range its 0..127 sweeps. Effect mode: one
// of the model's controls (its own range, on a log axis where the model says so) or the wet/dry
// mix. Generator mode: the sampling's temperature, top-p or guidance, over the ranges of their
// options and the Synth's knobs.
struct CcTarget {
    enum class What { control, mix, temperature, top_p, guidance } what = What::control;
    std::string name;
    unsigned cc = 0;
    int control = -1;   // What::control: the model's control index
    ControlSpec range;  // min, max, unit and axis of what the controller sweeps
};

std::vector<CcTarget> parse_cc_targets(const ModelConfig& cfg, const std::vector<std::string>& ccs, bool generator) {
    using What = CcTarget::What;
    auto ranged = [](What what, const char* name, float lo, float hi) {
        CcTarget t;
        t.what = what;
        t.name = name;
        t.range = ControlSpec{name, "", lo, hi, lo, false};
        return t;
    };
    std::vector<CcTarget> known;  // what this mode's controllers may move
    if (generator) {
        known.push_back(ranged(What::temperature, "temperature", 0.05f, 2.0f));
        known.push_back(ranged(What::top_p, "top-p", 0.05f, 1.0f));
        if (cfg.label_null) known.push_back(ranged(What::guidance, "guidance", 0.0f, dsp::SynthEngine::kMaxGuidance));
    } else {
        for (size_t i = 0; i < cfg.controls.size(); ++i) {
            CcTarget t;
            t.name = cfg.controls[i].name;
            t.control = int(i);
            t.range = cfg.controls[i];
            known.push_back(std::move(t));
        }
        known.push_back(ranged(What::mix, "mix", 0.0f, 1.0f));
    }
    std::string names;
    for (const CcTarget& t : known) names += std::string(names.empty() ? "" : ", ") + t.name + " (" + range_text(t.range) + ")";

    std::vector<CcTarget> targets;
    for (const std::string& a : ccs) {
        const size_t eq = a.find('=');
        const std::string name = eq == std::string::npos ? a : a.substr(0, eq);
        const std::string number = eq == std::string::npos ? "" : a.substr(eq + 1);
        if (name.empty() || number.empty() || number.find_first_not_of("0123456789") != std::string::npos ||
            number.size() > 3)
            throw UsageError("--cc '" + a + "' is malformed, expected NAME=CC with CC a controller number "
                             "0..119, e.g. " + (generator ? "--cc temperature=1" : "--cc drive=11"));
        const int cc = std::stoi(number);
        if (cc > 119)
            throw UsageError("--cc " + a + ": controller " + number + " is out of range, expected 0..119 "
                             "(120..127 are MIDI's channel mode messages)");
        auto it = std::find_if(known.begin(), known.end(), [&](const CcTarget& t) { return t.name == name; });
        if (it == known.end()) {
            const std::string why = generator && name == "guidance" && cfg.labelled()
                                        ? " (this model has no null label: train it with --label-dropout)"
                                        : "";
            throw UsageError("--cc " + a + ": " + (generator ? "a generator's controllers move " : "unknown control '" +
                             name + "'; the controllers can move ") + names + why);
        }
        for (const CcTarget& other : targets)
            if (other.name == name)
                throw UsageError("--cc " + a + ": " + name + " is already moved by controller " +
                                 std::to_string(other.cc) + "; give each name one --cc");
        CcTarget t = *it;
        t.cc = unsigned(cc);
        targets.push_back(std::move(t));
    }
    return targets;
}

std::string cc_value_text(const CcTarget& t, float value) {
    char v[32];
    std::snprintf(v, sizeof v, "%.3g", double(value));
    return t.name + " " + v + (t.range.unit.empty() ? "" : " " + t.range.unit);
}

void run_live(CLI::App& sub, const LiveOptions& o) {
    // --- the model and the mode
    // The file's time is taken before it is read, so a change made while the app starts up
    // (opening the devices can take a second) is still seen by the first polls and reloaded.
    const fs::path watched = watched_file(o.model_path);
    const fs::file_time_type mtime_at_load = mtime_or_min(watched);
    dsp::RealtimeModelPtr model = dsp::load_realtime_model(o.model_path);
    const ModelConfig& cfg = model->model.config();
    const bool generator_model = cfg.kind == IoKind::mulaw8;
    const std::string mode = o.mode.empty() ? kind_name(cfg.kind) : o.mode;
    if ((mode == "generator") != generator_model)
        throw UsageError(o.model_path + " is " + (generator_model ? "a generator" : "an effect") +
                         " model; --mode " + mode + " needs " +
                         (generator_model ? "an effect" : "a generator") + " model (leave --mode out to "
                         "run the model as what it is)");
    const bool generator = mode == "generator";
    check_mode_options(sub, o, generator);
    if (!o.label.empty()) {
        label_index_or_throw(cfg, o.label, o.model_path);  // before the devices: a wrong name fails first
        if (!o.midi.empty())
            throw UsageError("--label " + o.label + " plays one label without MIDI; with --midi the keys choose "
                             "it (" + dsp::label_keys_text(cfg) + ")");
    }
    if (o.guidance > 0.0f && !cfg.label_null)
        throw UsageError("--guidance " + fmt_g(o.guidance) + ": " + o.model_path +
                         (cfg.labelled() ? " has no null label (train it with --label-dropout)"
                                         : " has no labels to guide"));
    // --guidance, else the weight the model declares (ModelConfig::guidance), as the Synth's knob
    const bool own_guidance = generator && sub.count("--guidance") == 0 && cfg.label_null && cfg.guidance > 0.0f;
    const float guidance = own_guidance ? cfg.guidance : o.guidance;
    const std::vector<float> controls = resolve_controls(cfg, o.controls);
    const std::vector<CcTarget> cc_targets = parse_cc_targets(cfg, o.ccs, generator);

    // --- devices, rate, channels
    const RtAudio::Api api = live::parse_api(o.api);
    if (api == RtAudio::UNSPECIFIED) throw std::runtime_error(live::no_devices_message(api));
    std::unique_ptr<RtAudio> audio = live::open_api(api);
    if (audio->getDeviceCount() == 0) throw std::runtime_error(live::no_devices_message(api));
    const live::Device out_dev = live::resolve_device(*audio, api, o.output, false);
    const bool device_input = !generator && o.input_file.empty();
    live::Device in_dev;
    if (device_input) in_dev = live::resolve_device(*audio, api, o.input, true);
    const unsigned rate = live::choose_rate(out_dev, device_input ? &in_dev : nullptr, o.rate,
                                            cfg.sample_rate_hz, api);
    const int channels = o.channels > 0 ? o.channels : int(std::min(2u, out_dev.info.outputChannels));
    if (unsigned(channels) > out_dev.info.outputChannels)
        throw UsageError("--channels " + std::to_string(channels) + ": output device '" + out_dev.info.name +
                         "' has " + std::to_string(out_dev.info.outputChannels) + " output channels");
    const int in_channels = device_input ? int(std::min<unsigned>(unsigned(channels), in_dev.info.inputChannels)) : 0;

    // --- an input file instead of the capture, at the device rate
    dsp::AudioData file;
    if (!o.input_file.empty()) {
        file = dsp::read_audio(o.input_file);
        if (std::fabs(file.sample_rate_hz - rate) > 0.5) {
            note(o.input_file + " is " + std::to_string(int64_t(file.sample_rate_hz)) + " Hz: resampling it to the "
                 "device's " + std::to_string(rate) + " Hz (libsamplerate) before starting");
            for (auto& ch : file.channels) ch = dsp::resample(ch, file.sample_rate_hz, rate);
            file.sample_rate_hz = rate;
        }
    }

    // --- the engines, with their starting parameters (declared before the MIDI input, whose
    // thread sets their parameters: it closes first)
    dsp::EffectEngine fx;
    dsp::SynthEngine synth;
    if (generator) {
        synth.set_temperature(o.temperature);
        synth.set_top_p(o.top_p);
        synth.set_guidance(guidance);
        synth.set_seed(o.seed);
        synth.set_level_db(o.out_gain_db);
    } else {
        fx.set_input_gain_db(o.in_gain_db);
        fx.set_output_gain_db(o.out_gain_db);
        fx.set_mix(o.mix);
        for (size_t i = 0; i < controls.size(); ++i) fx.set_control(int(i), controls[i]);
    }
    // what --cc moves: its value from the start, then the controller's (set on RtMidi's thread,
    // read by the status line)
    using What = CcTarget::What;
    auto apply = [&fx, &synth](const CcTarget& t, float v) {
        switch (t.what) {
        case What::control: fx.set_control(t.control, v); break;
        case What::mix: fx.set_mix(v); break;
        case What::temperature: synth.set_temperature(v); break;
        case What::top_p: synth.set_top_p(v); break;
        case What::guidance: synth.set_guidance(v); break;
        }
    };
    std::vector<std::atomic<float>> cc_values(cc_targets.size());
    // controllers that moved but map to nothing (bit cc of word cc / 64): said once each, so that
    // a pedal sending another number than the one given is found out
    std::atomic<uint64_t> unmapped_seen[2] = {0, 0};
    uint64_t unmapped_said[2] = {0, 0};
    for (size_t i = 0; i < cc_targets.size(); ++i) {
        const CcTarget& t = cc_targets[i];
        cc_values[i].store(t.what == What::control ? controls[size_t(t.control)]
                           : t.what == What::mix   ? o.mix
                           : t.what == What::temperature ? o.temperature
                           : t.what == What::top_p       ? o.top_p
                                                         : guidance);
    }

    // --- MIDI (before the stream, so a wrong port is reported before anything starts)
    std::unique_ptr<live::MidiInput> midi;
    if (!o.midi.empty()) {
        live::MidiInput::CcHandler on_cc;
        std::string moves;
        if (!cc_targets.empty()) {
            on_cc = [&apply, &cc_targets, &cc_values, &unmapped_seen](unsigned cc, unsigned value) {
                bool mapped = false;
                for (size_t i = 0; i < cc_targets.size(); ++i) {
                    const CcTarget& t = cc_targets[i];
                    if (t.cc != cc) continue;
                    const float v = t.range.at(float(value) / 127.0f);
                    apply(t, v);
                    cc_values[i].store(v, std::memory_order_relaxed);
                    mapped = true;
                }
                if (!mapped) unmapped_seen[cc / 64].fetch_or(uint64_t(1) << (cc % 64), std::memory_order_relaxed);
            };
            for (const CcTarget& t : cc_targets)
                moves += std::string(moves.empty() ? ": " : ", ") + "CC " + std::to_string(t.cc) + " moves " + t.name +
                         " (" + range_text(t.range) + (t.range.log_scale ? ", log" : "") + ")";
        }
        // (an effect's MIDI input takes controllers only; a generator's notes, and controllers)
        midi = std::make_unique<live::MidiInput>(o.midi, api == RtAudio::UNIX_JACK, std::move(on_cc), generator);
        note("MIDI from '" + midi->port_name() + "'" + moves);
    }

    // --- the stream (opened before the engine is prepared: the device decides the buffer size)
    LiveRun run;
    run.channels = channels;
    run.in_channels = in_channels;
    run.rate_hz = rate;
    run.in_ptrs.assign(size_t(channels), nullptr);
    run.out_ptrs.assign(size_t(channels), nullptr);
    if (!o.input_file.empty()) {
        run.file = &file;
        run.file_tail.assign(size_t(channels), std::vector<float>(LiveRun::kScratch, 0.0f));
    }
    if (generator) run.synth = &synth;
    else run.fx = &fx;

    RtAudio::StreamParameters out_params{out_dev.id, unsigned(channels), 0};
    RtAudio::StreamParameters in_params{in_dev.id, unsigned(std::max(in_channels, 1)), 0};
    RtAudio::StreamOptions stream_options;
    stream_options.flags = RTAUDIO_NONINTERLEAVED | RTAUDIO_SCHEDULE_REALTIME;
    stream_options.streamName = "mambawave";
    unsigned buffer = unsigned(o.buffer);
    g_run = &run;
    try {
        audio->openStream(&out_params, device_input ? &in_params : nullptr, RTAUDIO_FLOAT32, rate, &buffer,
                          &audio_callback, &run, &stream_options, &stream_error_callback);
    } catch (const RtAudioError& e) {
        throw std::runtime_error("cannot open " + live::api_name(api) + " device '" + out_dev.info.name + "'" +
                                 (device_input ? " with input '" + in_dev.info.name + "'" : std::string()) +
                                 " at " + std::to_string(rate) + " Hz, " + std::to_string(o.buffer) +
                                 " frames, " + std::to_string(channels) + " channels: " + e.getMessage() +
                                 " (try another --buffer, e.g. 128, 256, 512, or --rate; see `mambawave devices`)");
    }
    if (buffer != unsigned(o.buffer))
        note("the device runs with buffers of " + std::to_string(buffer) + " frames, not the " +
             std::to_string(o.buffer) + " asked for" +
             (api == RtAudio::UNIX_JACK ? " (JACK's period, set by jackd -p)" : ""));

    // --- the engine
    if (generator) {
        synth.prepare(rate, int(buffer), channels);
        synth.set_model(model);
    } else {
        fx.set_rate_mode(o.rate_mode == "delta" ? dsp::RateMode::delta : dsp::RateMode::resample);
        fx.prepare(rate, int(buffer), channels);
        fx.set_model(model);
    }
    auto latency = [&] { return generator ? synth.latency_samples() : fx.latency_samples(); };
    const bool rates_differ = std::fabs(cfg.sample_rate_hz - rate) > 0.5;
    if (rates_differ && (generator || o.rate_mode == "resample"))
        note("resampling " + std::to_string(int64_t(cfg.sample_rate_hz)) + " Hz model to " + std::to_string(rate) +
             " Hz device, latency " + std::to_string(latency()) + " samples (" +
             fixed(latency() * 1000.0 / rate, 2) + " ms)");
    else if (rates_differ)
        note("running the " + std::to_string(int64_t(cfg.sample_rate_hz)) + " Hz model at the device's " +
             std::to_string(rate) + " Hz with its time steps scaled (--rate-mode delta, an approximation)");

    run.midi = generator ? midi.get() : nullptr;  // (an effect's MIDI input queues no notes)
    run.continuous_voice = generator && !midi;
    if (!o.label.empty()) run.continuous_note = dsp::kFirstLabelNote + label_index_or_throw(cfg, o.label, o.model_path);
    if (generator && cfg.labelled()) {
        if (guidance > 0.0f)
            note("guidance " + fmt_g(guidance) + (own_guidance ? ", the model's own (--guidance 0 for none)" : "") +
                 " against the null label: 2 streams a voice");
        if (midi) note("keys: " + dsp::label_keys_text(cfg));
        else note("playing label " + cfg.labels[size_t(dsp::label_for_note(run.continuous_note, int(cfg.labels.size())))] +
                  (o.label.empty() ? " (--label chooses another: " + describe_labels(cfg) + ")" : ""));
    }
    std::unique_ptr<live::Recorder> recorder;
    if (!o.record_path.empty()) {
        recorder = std::make_unique<live::Recorder>(o.record_path, rate, channels, int(buffer));
        run.recorder = recorder.get();
    }

    std::cout << "live: " << o.model_path << " (" << mode << ", " << int64_t(cfg.sample_rate_hz) << " Hz) on "
              << live::api_name(api) << " '" << out_dev.info.name << "'"
              << (device_input ? " <- '" + in_dev.info.name + "'" : std::string())
              << (o.input_file.empty() ? "" : " <- " + o.input_file) << ", " << rate << " Hz, " << buffer
              << " frames, " << channels << " channel" << (channels == 1 ? "" : "s")
              << (o.seconds > 0 ? ", " + fixed(o.seconds, 1) + " s" : std::string(", Ctrl-C to stop"))
              << std::endl;

    // --- run
    g_stop = 0;
    auto old_int = std::signal(SIGINT, on_stop_signal);
    auto old_term = std::signal(SIGTERM, on_stop_signal);
    // Declared after everything the callback touches, so that on any way out of this function
    // the stream stops before they go.
    struct StreamStopper {
        RtAudio& audio;
        ~StreamStopper() {
            try {
                if (audio.isStreamRunning()) audio.stopStream();
                if (audio.isStreamOpen()) audio.closeStream();
            } catch (const RtAudioError&) {
            }
            g_run = nullptr;
        }
    } stopper{*audio};
    try {
        audio->startStream();
    } catch (const RtAudioError& e) {
        std::signal(SIGINT, old_int);
        std::signal(SIGTERM, old_term);
        throw std::runtime_error("cannot start the stream: " + e.getMessage());
    }
    const Clock::time_point start = Clock::now();
    Clock::time_point next_status = start + std::chrono::seconds(1), next_poll = start;
    fs::file_time_type loaded_mtime = mtime_at_load, seen_mtime = loaded_mtime;
    std::string loaded_hash = model->content_hash;
    bool file_end_noted = false;
    while (!g_stop && !run.stream_error.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const Clock::time_point now = Clock::now();
        const double elapsed = std::chrono::duration<double>(now - start).count();
        if (o.seconds > 0 && elapsed >= o.seconds) break;
        if (now >= next_poll) {  // hot reload: a changed file, stable for one poll
            next_poll = now + std::chrono::milliseconds(250);
            fx.collect_garbage();
            synth.collect_garbage();
            const fs::file_time_type m = mtime_or_min(watched);
            if (m != loaded_mtime && m == seen_mtime) {
                loaded_mtime = m;
                try {
                    dsp::RealtimeModelPtr next = dsp::load_realtime_model(o.model_path);
                    if ((next->model.config().kind == IoKind::mulaw8) != generator)
                        throw std::runtime_error("it is now a model of the other kind");
                    if (next->content_hash == loaded_hash) {
                        note("model file touched, content unchanged");
                    } else {
                        if (generator) synth.set_model(next);
                        else fx.set_model(next);
                        loaded_hash = next->content_hash;
                        note("reloaded " + o.model_path + " (hash " + loaded_hash + "), crossfading");
                    }
                } catch (const std::exception& e) {
                    note("reloading " + o.model_path + " failed, keeping the running model: " + e.what());
                }
            }
            seen_mtime = m;
        }
        for (unsigned w = 0; w < 2; ++w) {
            const uint64_t fresh = unmapped_seen[w].load(std::memory_order_relaxed) & ~unmapped_said[w];
            for (unsigned b = 0; b < 64; ++b)
                if (fresh >> b & 1u) {
                    std::string mapped;
                    for (const CcTarget& t : cc_targets)
                        mapped += (mapped.empty() ? "" : ", ") + std::to_string(t.cc) + " to " + t.name;
                    note("MIDI controller " + std::to_string(w * 64 + b) + " moved: nothing is mapped to it (--cc maps " +
                         mapped + "; --cc NAME=" + std::to_string(w * 64 + b) + " maps this one)");
                }
            unmapped_said[w] |= fresh;
        }
        if (run.file && !file_end_noted && run.callbacks.load() > 0 &&
            int64_t(elapsed * rate) > file.frames()) {
            note(o.input_file + " has ended; the input is silent from here");
            file_end_noted = true;
        }
        if (now >= next_status) {
            next_status += std::chrono::seconds(1);
            const dsp::EngineStats st = generator ? synth.stats() : fx.stats();
            char line[256];
            std::snprintf(line, sizeof line,
                          "%7.1f s  load %5.1f%% (peak %5.1f%%)  xruns %lld  nonfinite %lld  in %s dBFS  out %s dBFS",
                          elapsed, 100.0 * st.load, 100.0 * st.load_peak, static_cast<long long>(run.xruns.load()),
                          static_cast<long long>(st.nonfinite_events), dbfs(st.peak_in).c_str(),
                          dbfs(st.peak_out).c_str());
            std::cout << line;
            if (generator) std::cout << "  voices " << synth.active_voices() << " (" << synth.sounding_voices() << " sounding)";
            for (size_t i = 0; i < cc_targets.size(); ++i)
                std::cout << "  " << cc_value_text(cc_targets[i], cc_values[i].load(std::memory_order_relaxed));
            if (recorder && recorder->frames_dropped() > 0)
                std::cout << "  record dropped " << recorder->frames_dropped() << " frames";
            std::cout << std::endl;
        }
    }
    const bool interrupted = g_stop;
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
    try {
        if (audio->isStreamRunning()) audio->stopStream();
        if (audio->isStreamOpen()) audio->closeStream();
    } catch (const RtAudioError& e) {
        note(std::string("stopping the stream: ") + e.getMessage());
    }
    g_run = nullptr;
    fx.collect_garbage();
    synth.collect_garbage();

    // --- summary
    const int64_t calls = run.callbacks.load();
    const double deadline_ms = 1000.0 * double(buffer) / rate;
    const double mean_ms = calls ? 1e-6 * double(run.busy_ns.load()) / double(calls) : 0.0;
    const double max_ms = 1e-6 * double(run.max_ns.load());
    char line[320];
    std::snprintf(line, sizeof line,
                  "callback: %lld buffers of %u frames at %u Hz (deadline %.3f ms): mean %.3f ms (%.1f%%), "
                  "max %.3f ms (%.1f%%); xruns %lld",
                  static_cast<long long>(calls), buffer, rate, deadline_ms, mean_ms, 100.0 * mean_ms / deadline_ms,
                  max_ms, 100.0 * max_ms / deadline_ms, static_cast<long long>(run.xruns.load()));
    std::cout << line << std::endl;
    if (recorder) {
        recorder->commit();
        std::cout << "recorded " << recorder->frames_written() << " frames ("
                  << fixed(double(recorder->frames_written()) / rate, 2) << " s) -> "
                  << recorder->path() << std::endl;
        if (recorder->frames_dropped() > 0)
            note("the recording lost " + std::to_string(recorder->frames_dropped()) +
                 " frames: the disk could not keep up");
    }
    if (run.stream_error.load()) throw std::runtime_error("the audio stream stopped: " + run.error_text);
    if (interrupted) note("stopped");
}

} // namespace

void add_live_command(CLI::App& app) {
    auto o = std::make_shared<LiveOptions>();
    CLI::App* sub = app.add_subcommand(
        "live", "Run a model on a sound card in real time: an effect on the input, or a generator "
                "played by MIDI notes");
    add_model_option(*sub, o->model_path);
    sub->add_option("--mode", o->mode, "effect or generator (default: what the model is)")
        ->check(CLI::IsMember({"effect", "generator"}));
    sub->add_option("--api", o->api, "Audio API: " + live::api_names() + " (default: the first one with a device)");
    sub->add_option("--input", o->input,
                    "Input device, by id or part of its name (see `mambawave devices`); default: the API's "
                    "default input");
    sub->add_option("--output", o->output, "Output device, by id or part of its name; default: the default output");
    sub->add_option("--input-file", o->input_file,
                    "Play this audio file into the effect instead of the device input, from the first "
                    "buffer on (silence after its end)")
        ->check(CLI::ExistingFile);
    sub->add_option("--rate", o->rate,
                    "Sample rate in Hz (default: the model's rate when the device has it, so nothing is "
                    "resampled; else the device's preferred rate)")
        ->check(CLI::Range(1000.0, 768000.0));
    sub->add_option("--buffer", o->buffer, "Buffer size in frames (smaller: less latency, more risk of xruns)")
        ->check(CLI::Range(16, 8192))
        ->capture_default_str();
    sub->add_option("--channels", o->channels, "Channels (default: 2, or 1 on a mono device); each is one stream")
        ->check(CLI::Range(1, 64));
    sub->add_option("--in-gain", o->in_gain_db, "Effect: gain into the model, dB")
        ->check(CLI::Range(-60.0, 24.0))
        ->capture_default_str();
    sub->add_option("--out-gain", o->out_gain_db, "Gain of the model's output (generator: its level), dB")
        ->check(CLI::Range(-60.0, 24.0))
        ->capture_default_str();
    sub->add_option("--mix", o->mix, "Effect: wet share, 0 = dry input only .. 1 = model only")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    add_controls_option(*sub, o->controls);
    sub->add_option("--rate-mode", o->rate_mode,
                    "Effect, when the device rate is not the model's: resample (exact, adds latency) or delta "
                    "(run at the device rate with scaled time steps: no latency, an approximation)")
        ->check(CLI::IsMember({"resample", "delta"}))
        ->capture_default_str();
    sub->add_option("--temperature", o->temperature, "Generator: sampling temperature (0.05..2)")
        ->check(CLI::Range(0.05, 2.0))
        ->capture_default_str();
    sub->add_option("--top-p", o->top_p, "Generator: nucleus sampling mass (0.05..1)")
        ->check(CLI::Range(0.05, 1.0))
        ->capture_default_str();
    sub->add_option("--guidance", o->guidance,
                    "Generator with a null label (trained with --label-dropout): label guidance of this weight, "
                    "as the Synth's Guidance knob (0: off; each voice then runs 2 streams). Default: the "
                    "weight the model declares (`info`'s guidance line: 1.5 for both labelled "
                    "digits presets), else 0")
        ->check(CLI::Range(0.0, double(dsp::SynthEngine::kMaxGuidance)));
    sub->add_option("--seed", o->seed, "Generator: random seed (a voice uses seed + its note number)")
        ->capture_default_str();
    sub->add_option("--cc", o->ccs,
                    "A MIDI controller of --midi (CC 0..119) sweeps something over its whole range: NAME=CC, "
                    "repeatable. Effect: a control of the model (a log axis where the model has one) or mix, "
                    "e.g. --cc drive=11 (an expression pedal) --cc mix=7. Generator: temperature, top-p or "
                    "guidance, e.g. --cc temperature=1 (the mod wheel)")
        ->allow_extra_args(false);
    sub->add_option("--midi", o->midi,
                    "MIDI input port, by number or part of its name (`mambawave devices` lists them). Generator: "
                    "notes start and stop voices (without it one voice plays continuously, a new one whenever it "
                    "has ended in silence). Effect: its controllers move what --cc names (generators too)");
    sub->add_option("--label", o->label,
                    "Generator trained with --label-prefix, without --midi: which label the voice makes (`info` "
                    "lists them). With --midi the key chooses: C4 plays the first label, each key up the next");
    sub->add_option("--record", o->record_path,
                    "Also write the output to this file (.wav 32-bit float or .flac), from a writer thread");
    sub->add_option("--seconds", o->seconds, "Stop after this many seconds (default: run until Ctrl-C or SIGTERM)")
        ->check(positive_number());
    sub->footer(
        "The model runs on the audio thread with the plugin's engine (an effect a buffer at a time,\n"
        "a generator one sample at a time): nothing is allocated, locked or printed there. Once a second a status line shows the engine's load\n"
        "(time in the model / duration of the audio), xruns (buffers the device reported late),\n"
        "non-finite events (a stream reset because the model produced NaN/Inf: it outputs silence\n"
        "instead) and the input and output peaks.\n\n"
        "Latency: one buffer in and one out (buffer / rate each), plus the resampler's delay when the\n"
        "device's rate is not the model's (printed at start). For an 8 kHz generator on a 48 kHz card\n"
        "that is 288 samples (6 ms); run the card at the model's rate to avoid it.\n\n"
        "Editing the model file while live runs reloads it (off the audio thread) and crossfades to it\n"
        "over 20 ms; a file that fails to load is reported and the running model stays.\n\n"
        "Examples:\n"
        "  mambawave live -m amp.safetensors --api jack                    # effect, JACK in -> out\n"
        "  mambawave live -m amp.safetensors --api alsa --input USB --output USB --buffer 128 \\\n"
        "      --control drive=0.7 --mix 0.8\n"
        "  mambawave live -m amp.safetensors --input-file riff.wav --record riff-amp.wav --seconds 10\n"
        "  mambawave live -m amp.safetensors --midi 'FCB1010' --cc drive=11 --cc mix=7   # pedals move knobs\n"
        "  mambawave live -m babble.safetensors --midi 'Keystation' --temperature 0.9\n"
        "See docs/LIVE.md for a real rig (JACK, realtime priorities, buffer sizes).");
    sub->callback([sub, o] { run_live(*sub, *o); });
}

} // namespace mw::cli
