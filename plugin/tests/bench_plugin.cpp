// mw_plugin_bench: what one processBlock of MambaWave FX / Synth costs at 48 kHz, for each model
// file given (default: the shipped presets). A benchmark program, not a test: it prints a
// Markdown table (or JSON lines) for docs/BENCHMARKS.md, with the CPU and the command line.
//
// Per model: effects run in FxProcessor (stereo, and mono when the FX accepts a mono layout),
// generators in SynthProcessor with one held note (a sounding voice, not silence). For each
// block size: prepareToPlay(48 kHz, block), a warm-up (past the model swap's crossfade), then
// processBlock calls timed one at a time with steady_clock for --seconds of wall time.
//   deadline    = block / 48000 s            (the host's budget for one block)
//   % of a core = mean time / deadline × 100 (one core busy this much to keep up)
//   × real time = deadline / mean time
#include "plugin_test_util.h"

#include "kernels/fast.h"

#include <juce_events/juce_events.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace mw;
using namespace mw::plugin;
using namespace mw::plugin::test;

namespace {

constexpr double kHostRateHz = 48000.0;
constexpr int kBlockSamples[] = {64, 128, 256, 512};
constexpr int kNote = 60;                     // the Synth's held note (middle C)
constexpr double kWarmUpSeconds = 0.5;        // of audio: well past kCrossfadeSeconds and the smoothers
constexpr double kWarmUpWallSeconds = 0.25;   // and of wall time, at least
// The first measurement of the process warms up longer: on the project's VM, blocks timed in
// the first second or so of a process came out up to 2x slower than the same blocks later
// (cause not found; no other thread was busy).
constexpr double kFirstWarmUpWallSeconds = 2.0;
bool first_measurement = true;   // time_blocks() has not run yet

struct Options {
    std::vector<juce::File> models;
    double seconds = 2.0;   // wall time per measurement
    bool json = false;
    float guidance = 0.0f;  // the Synth's Guidance parameter (a model with a null label)
};

// One measurement: a model, a plugin layout, a block size.
struct Result {
    int block_samples = 0;
    int64_t blocks_timed = 0;
    double deadline_us = 0, mean_us = 0, p99_us = 0, max_us = 0;
    int voices = -1;   // Synth: voices sounding at the end (1: the held note); FX: -1
    double pct_core() const { return 100.0 * mean_us / deadline_us; }
    double x_realtime() const { return deadline_us / mean_us; }
};

void print_help(const char* argv0) {
    std::printf(
        "Usage: %s [--seconds S] [--guidance W] [--json] [MODEL.safetensors ...]\n"
        "\n"
        "Measures what one processBlock call of the MambaWave plugins costs at a host rate of 48 kHz,\n"
        "in process (no host), for each model file. Effect models run in the FX (stereo in/out, and\n"
        "mono in/out when the FX accepts that layout); generator models run in the Synth with one\n"
        "held MIDI note. Block sizes 64, 128, 256 and 512 samples. Each measurement warms up for\n"
        "%.1f s of audio and at least %.2f s of wall time (%.0f s before the first one), then times\n"
        "processBlock calls one at a time (steady_clock) for S seconds of wall time.\n"
        "\n"
        "Per block it reports: the deadline (block / 48000 s), the mean and 99th-percentile time in\n"
        "microseconds, the cost as %% of one core (mean / deadline) and the real-time factor\n"
        "(deadline / mean). Model rates other than 48 kHz include the plugin's resampler.\n"
        "\n"
        "Options:\n"
        "  MODEL ...      model files (default: every *.safetensors in %s/presets)\n"
        "  --seconds S    wall time per measurement (default 2; 0.05..60)\n"
        "  --guidance W   the Synth's Guidance parameter (default 0: off; 0..8): a labelled model with\n"
        "                 a null label then runs two streams a voice\n"
        "  --json         one JSON object per line instead of a Markdown table\n"
        "  --help, -h     this text\n"
        "\n"
        "The table is ready for docs/BENCHMARKS.md; it starts with the CPU and the command line.\n"
        "Run on an idle machine with a Release build; timings on shared VMs move by 10-30%%.\n"
        "\n"
        "Examples:\n"
        "  %s                                  # the shipped presets, a table\n"
        "  %s --seconds 5 presets/ts9.safetensors\n"
        "  %s --json --seconds 0.2             # quick, machine-readable\n",
        argv0, kWarmUpSeconds, kWarmUpWallSeconds, kFirstWarmUpWallSeconds, MW_SOURCE_DIR, argv0, argv0, argv0);
}

// Returns false (after a message on stderr) when the command line is wrong.
bool parse(int argc, char* argv[], Options& opt, bool& help) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            help = true;
        } else if (a == "--json") {
            opt.json = true;
        } else if (a == "--seconds") {
            char* end = nullptr;
            opt.seconds = i + 1 < argc ? std::strtod(argv[++i], &end) : 0.0;
            if (end == nullptr || *end != '\0' || !(opt.seconds >= 0.05 && opt.seconds <= 60.0)) {
                std::fprintf(stderr, "--seconds needs a number from 0.05 to 60 (try --seconds 2)\n");
                return false;
            }
        } else if (a == "--guidance") {
            char* end = nullptr;
            opt.guidance = i + 1 < argc ? std::strtof(argv[++i], &end) : -1.0f;
            if (end == nullptr || *end != '\0' || !(opt.guidance >= 0.0f && opt.guidance <= kGuidanceMax)) {
                std::fprintf(stderr, "--guidance needs a number from 0 to %g (try --guidance 4)\n", double(kGuidanceMax));
                return false;
            }
        } else if (a.rfind("-", 0) == 0) {
            std::fprintf(stderr, "Unknown option %s (see --help)\n", a.c_str());
            return false;
        } else {
            const juce::File f =
                juce::File::getCurrentWorkingDirectory().getChildFile(juce::String::fromUTF8(a.c_str()));
            if (!f.existsAsFile()) {
                std::fprintf(stderr, "No such model file: %s\n", a.c_str());
                return false;
            }
            opt.models.push_back(f);
        }
    }
    if (opt.models.empty() && !help) {
        juce::Array<juce::File> found =
            source_dir().getChildFile("presets").findChildFiles(juce::File::findFiles, false, "*.safetensors");
        found.sort();
        for (const juce::File& f : found) opt.models.push_back(f);
        if (opt.models.empty()) {
            std::fprintf(stderr, "No *.safetensors in %s/presets: give model files as arguments\n", MW_SOURCE_DIR);
            return false;
        }
    }
    return true;
}

// "AMD EPYC (family 26, model 2; kernels: avx2+fma)": /proc/cpuinfo's first CPU (VMs often
// show only a vendor name, so the family and model say which generation it is).
std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string name = "unknown CPU", family = "?", model = "?";
    auto value = [](const std::string& line) { return line.substr(std::min(line.size(), line.find(':') + 2)); };
    for (std::string line; std::getline(in, line) && !line.empty();) {
        if (line.rfind("model name", 0) == 0) name = value(line);
        else if (line.rfind("cpu family", 0) == 0) family = value(line);
        else if (line.rfind("model\t", 0) == 0) model = value(line);
    }
    return name + " (family " + family + ", model " + model + "; kernels: " +
           kernels::to_string(kernels::active_isa()) + ")";
}

std::string command_line(int argc, char* argv[]) {
    std::string s;
    for (int i = 0; i < argc; ++i) {
        const std::string a = argv[i];
        if (i > 0) s += ' ';
        s += a.find_first_of(" \"'\\$") == std::string::npos ? a : "'" + a + "'";
    }
    return s;
}

// Times `process_one()` (one processBlock) until `seconds` of wall time have passed, after a
// warm-up of kWarmUpSeconds of audio and at least kWarmUpWallSeconds (kFirstWarmUpWallSeconds
// for the process's first measurement). `before_each(block_index)` fills the block's input outside the timed region.
template <class Before, class Process>
Result time_blocks(int block_samples, double seconds, Before before_each, Process process_one) {
    using clock = std::chrono::steady_clock;
    auto after = [](double s) {
        return clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(s));
    };
    const int warm_up_blocks = std::max(10, int(kWarmUpSeconds * kHostRateHz / block_samples));
    const clock::time_point warm_up_end = after(first_measurement ? kFirstWarmUpWallSeconds : kWarmUpWallSeconds);
    first_measurement = false;
    int b = 0;
    for (; b < warm_up_blocks || clock::now() < warm_up_end; ++b) {
        before_each(b);
        process_one();
    }
    std::vector<double> us;   // [blocks_timed] microseconds per processBlock
    us.reserve(1 << 16);
    for (const clock::time_point end = after(seconds); clock::now() < end; ++b) {
        before_each(b);
        const clock::time_point t0 = clock::now();
        process_one();
        us.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
    }
    Result r;
    r.block_samples = block_samples;
    r.blocks_timed = int64_t(us.size());
    r.deadline_us = 1e6 * block_samples / kHostRateHz;
    double sum = 0;
    for (double t : us) sum += t;
    r.mean_us = sum / double(us.size());
    std::sort(us.begin(), us.end());
    r.p99_us = us[size_t(std::ceil(0.99 * double(us.size()))) - 1];
    r.max_us = us.back();
    return r;
}

// Effect: the guitar clip (looped) on every channel.
Result bench_fx(FxProcessor& p, int channels, int block_samples, double seconds, const std::vector<float>& clip) {
    p.prepareToPlay(kHostRateHz, block_samples);
    juce::AudioBuffer<float> buffer(channels, block_samples);
    juce::MidiBuffer midi;
    const size_t blocks_in_clip = clip.size() / size_t(block_samples);
    return time_blocks(block_samples, seconds,
        [&](int b) {
            const float* from = clip.data() + (size_t(b) % blocks_in_clip) * size_t(block_samples);
            for (int c = 0; c < channels; ++c) std::copy_n(from, block_samples, buffer.getWritePointer(c));
        },
        [&] { p.processBlock(buffer, midi); });
}

// Generator: a note-on in the first block, held for the whole measurement, and pressed again
// whenever its voice has ended in silence (a labelled digits model says its word, then falls
// silent and stops: dsp::kSilentEndSeconds), so that what is timed is a sounding voice.
Result bench_synth(SynthProcessor& p, int block_samples, double seconds) {
    p.prepareToPlay(kHostRateHz, block_samples);
    juce::AudioBuffer<float> buffer(2, block_samples);
    juce::MidiBuffer midi;
    midi.ensureSize(64);
    Result r = time_blocks(block_samples, seconds,
        [&](int b) {
            midi.clear();
            if (b == 0 || p.sounding_voices() == 0) midi.addEvent(juce::MidiMessage::noteOn(1, kNote, 0.8f), 0);
        },
        [&] { p.processBlock(buffer, midi); });
    r.voices = p.active_voices();
    return r;
}

// "effect D8×3, 2.8k params, 48 kHz" (", untrained" for random weights from `mambawave init`)
std::string describe(const ModelInfo& info) {
    const ModelConfig& c = info.config;
    char s[200];
    std::snprintf(s, sizeof s, "%s D%d×%d, %.1fk params, %g kHz%s",
                  c.kind == IoKind::continuous ? "effect" : "generator", c.d_model, c.n_layers,
                  double(info.parameters) / 1000.0, c.sample_rate_hz / 1000.0,
                  c.untrained ? ", untrained" : "");
    return s;
}

struct Printer {
    bool json;
    std::string cpu;
    juce::String last_model;   // the table names each model once

    void row(const ModelInfo& info, const char* plugin, int channels, const Result& r) {
        if (json) {
            juce::DynamicObject::Ptr o = new juce::DynamicObject();
            o->setProperty("model", info.name);
            o->setProperty("file", info.path);
            o->setProperty("kind", info.config.kind == IoKind::continuous ? "effect" : "generator");
            o->setProperty("d_model", info.config.d_model);
            o->setProperty("n_layers", info.config.n_layers);
            o->setProperty("d_inner", info.config.d_inner);
            o->setProperty("d_state", info.config.d_state);
            o->setProperty("params", juce::int64(info.parameters));
            o->setProperty("file_bytes", juce::int64(info.file_bytes));
            o->setProperty("model_rate_hz", info.config.sample_rate_hz);
            o->setProperty("untrained", info.config.untrained);
            o->setProperty("plugin", plugin);
            o->setProperty("channels", channels);
            if (r.voices >= 0) o->setProperty("voices", r.voices);
            o->setProperty("host_rate_hz", kHostRateHz);
            o->setProperty("block_samples", r.block_samples);
            o->setProperty("blocks_timed", juce::int64(r.blocks_timed));
            o->setProperty("deadline_us", r.deadline_us);
            o->setProperty("mean_us", r.mean_us);
            o->setProperty("p99_us", r.p99_us);
            o->setProperty("max_us", r.max_us);
            o->setProperty("pct_core", r.pct_core());
            o->setProperty("x_realtime", r.x_realtime());
            o->setProperty("cpu", juce::String(cpu));
            std::printf("%s\n", juce::JSON::toString(juce::var(o.get()), true, 6).toRawUTF8());
        } else {
            const bool first = info.name != last_model;
            last_model = info.name;
            std::printf("| %s | %s | %s %s | %d | %.1f | %.1f | %.1f | %.2f%% | %.1f× |\n",
                        first ? info.name.toRawUTF8() : "", first ? describe(info).c_str() : "", plugin,
                        channels == 1 ? "mono" : "stereo", r.block_samples, r.deadline_us, r.mean_us, r.p99_us,
                        r.pct_core(), r.x_realtime());
        }
        std::fflush(stdout);
    }
};

// Loads `file` into a new processor of the right kind and measures every layout and block
// size. Returns false (after a message on stderr) when the model does not run.
bool bench_model(const juce::File& file, const Options& opt, const std::vector<float>& clip, Printer& out,
                 std::vector<std::string>& notes) {
    const std::string path = file.getFullPathName().toStdString();
    dsp::RealtimeModelPtr model;
    try {
        model = dsp::load_realtime_model(path);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", path.c_str(), e.what());
        return false;
    }
    const ModelSlot::Request request{file, {}, false, true};   // the model's control defaults

    if (model->model.config().kind == IoKind::continuous) {
        FxProcessor p;
        if (!p.model_slot().load_now(request, model)) {
            std::fprintf(stderr, "%s: %s\n", path.c_str(), p.model_slot().status().message.toRawUTF8());
            return false;
        }
        const ModelInfo info = *p.model_slot().status().info;
        for (int channels : {2, 1}) {
            const juce::AudioChannelSet set =
                channels == 2 ? juce::AudioChannelSet::stereo() : juce::AudioChannelSet::mono();
            juce::AudioProcessor::BusesLayout layout;
            layout.inputBuses.add(set);
            layout.outputBuses.add(set);
            const bool accepted = p.setBusesLayout(layout);
            notes.push_back(std::string("FX ") + (channels == 2 ? "stereo" : "mono") + " in/out: " +
                            (accepted ? "accepted, measured" : "not accepted, not measured"));
            if (!accepted) continue;
            for (int block : kBlockSamples)
                out.row(info, "FX", channels, bench_fx(p, channels, block, opt.seconds, clip));
        }
    } else {
        SynthProcessor p;
        if (!p.model_slot().load_now(request, model)) {
            std::fprintf(stderr, "%s: %s\n", path.c_str(), p.model_slot().status().message.toRawUTF8());
            return false;
        }
        const ModelInfo info = *p.model_slot().status().info;
        auto* guidance = p.parameters().getParameter(pid::guidance);  // (set_parameter needs Catch)
        guidance->setValueNotifyingHost(guidance->convertTo0to1(opt.guidance));
        const bool guided = opt.guidance > 0.0f && info.config.label_null;
        if (opt.guidance > 0.0f)
            notes.push_back(path + ": Synth guidance " + std::to_string(opt.guidance).substr(0, 4) +
                            (guided ? " (null label: two streams a voice)" : " ignored: the model has no null label"));
        for (int block : kBlockSamples) {
            const Result r = bench_synth(p, block, opt.seconds);
            if (r.voices != 1) {
                std::fprintf(stderr, "%s: %d voices sounding at the end of the block-%d run, expected the held note\n",
                             path.c_str(), r.voices, block);
                return false;
            }
            out.row(info, guided ? "Synth guided" : "Synth", 2, r);
        }
    }
    return true;
}

} // namespace

int main(int argc, char* argv[]) {
    // The processors load their default preset at construction: the source tree's, as the
    // in-process tests do (test_main.cpp), unless MW_PRESETS_DIR says otherwise.
    const char* presets = std::getenv("MW_PRESETS_DIR");
    if (presets == nullptr || *presets == '\0') setenv("MW_PRESETS_DIR", MW_SOURCE_DIR "/presets", 1);
    juce::ScopedJuceInitialiser_GUI juce_runtime;   // the processors' timers need a message manager

    Options opt;
    bool help = false;
    if (!parse(argc, argv, opt, help)) return 2;
    if (help) {
        print_help(argv[0]);
        return 0;
    }

    Printer out{opt.json, cpu_model(), {}};
    const std::string command = command_line(argc, argv);
    const unsigned cores = std::thread::hardware_concurrency();
    const std::vector<float> clip = guitar(4.0);   // mono, 48 kHz: the FX's input
    if (opt.json) {
        juce::DynamicObject::Ptr o = new juce::DynamicObject();
        o->setProperty("cpu", juce::String(out.cpu));
        o->setProperty("logical_cores", int(cores));
        o->setProperty("command", juce::String(command));
        o->setProperty("seconds_per_measurement", opt.seconds);
        std::printf("%s\n", juce::JSON::toString(juce::var(o.get()), true).toRawUTF8());
    } else {
        std::printf("CPU: %s, %u logical cores\nCommand: `%s`\n", out.cpu.c_str(), cores, command.c_str());
#ifndef NDEBUG
        std::printf("WARNING: a build with assertions (not Release): these timings mean little.\n");
#endif
        std::printf("Host rate 48 kHz; per row: warm-up (%.1f s of audio, at least %.2f s of wall time, %.0f s before "
                    "the first row), then processBlock timed one call at a time for %g s.\n\n",
                    kWarmUpSeconds, kWarmUpWallSeconds, kFirstWarmUpWallSeconds, opt.seconds);
        std::printf("| model | kind, size | plugin | block | deadline µs | mean µs | p99 µs | %% of a core "
                    "| × real time |\n"
                    "|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    }

    std::vector<std::string> notes;
    int failed = 0;
    for (const juce::File& f : opt.models) failed += bench_model(f, opt, clip, out, notes) ? 0 : 1;

    if (!opt.json) {
        std::printf("\n%% of a core = mean / deadline; × real time = deadline / mean. "
                    "The Synth plays one held note, pressed again whenever its voice has ended in silence.\n");
        std::sort(notes.begin(), notes.end());
        notes.erase(std::unique(notes.begin(), notes.end()), notes.end());
        for (const std::string& n : notes) std::printf("%s\n", n.c_str());
    }
    return failed == 0 ? 0 : 1;
}
