// `mambawave capture-signal`: writes the reamp signal (dsp/capture_signal.h) that a user plays
// through their gear and records, and its sidecar JSON (segments, sync impulse frames) that
// `train` reads to line the recording up and check it for drift.
#include "standalone/cli_common.h"
#include "standalone/commands.h"

#include "dsp/audio_file.h"
#include "dsp/capture_signal.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

namespace mw::cli {

namespace {

struct CaptureSignalOptions {
    std::string out_path;
    double rate_hz = 48000;
    double seconds = 120;
    uint64_t seed = 1;
    bool quiet = false;
};

bool ends_with_wav(const std::string& path) {
    if (path.size() < 4) return false;
    std::string ext = path.substr(path.size() - 4);
    for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
    return ext == ".wav";
}

// The sidecar under a temporary name; rename_sidecar() puts it in place once the WAV is.
std::string write_sidecar_tmp(const std::string& json_path, const std::string& text) {
    const std::string tmp = json_path + ".tmp";
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    f << text;
    f.close();
    if (!f) {
        std::remove(tmp.c_str());
        throw std::runtime_error("cannot write " + tmp + " (disk full?)");
    }
    return tmp;
}

// One line per segment, consecutive segments of the same kind folded together.
void print_layout(const dsp::CaptureSignal& sig) {
    const double rate = sig.sample_rate_hz;
    std::cout << "  start_s   end_s  segment\n";
    for (size_t i = 0; i < sig.segments.size();) {
        size_t j = i;
        while (j + 1 < sig.segments.size() && sig.segments[j + 1].kind == sig.segments[i].kind &&
               sig.segments[i].kind == "music")
            ++j;
        const dsp::CaptureSegment& a = sig.segments[i];
        const dsp::CaptureSegment& b = sig.segments[j];
        std::ostringstream line;
        line << std::fixed << std::setprecision(3) << std::setw(9) << double(a.start_frame) / rate << std::setw(8)
             << double(b.end_frame) / rate << "  " << (j > i ? "music (" + std::to_string(j - i + 1) + " phrases)" : a.name);
        std::cout << line.str() << "\n";
        i = j + 1;
    }
}

void run_capture_signal(const CaptureSignalOptions& o) {
    if (!ends_with_wav(o.out_path))
        throw UsageError("--out " + o.out_path + ": the capture signal is written as 32-bit float WAV, "
                         "expected a name ending in .wav");
    if (o.rate_hz != std::floor(o.rate_hz))
        throw UsageError("--rate " + std::to_string(o.rate_hz) + ": expected a whole number of Hz, e.g. 48000");
    const double min_seconds = dsp::capture_signal_min_seconds();
    if (!(o.seconds >= min_seconds)) {
        std::ostringstream m;
        m << "--seconds " << o.seconds << ": the fixed test part takes " << min_seconds - 10.0
          << " s and the music at least 10 s, so expected at least " << min_seconds;
        throw UsageError(m.str());
    }
    const dsp::CaptureSignal sig =
        dsp::make_capture_signal(dsp::CaptureSignalParams{o.rate_hz, o.seconds, o.seed});

    // Sidecar (temporary) first, then the WAV, then the sidecar's rename: no WAV without a
    // sidecar, no sidecar left for a WAV that failed.
    const std::string json_path = o.out_path + ".json";
    const std::string json_tmp = write_sidecar_tmp(json_path, dsp::capture_signal_json(sig));
    try {
        dsp::AudioWriter writer(o.out_path, sig.sample_rate_hz, 1);
        const float* planar[1] = {sig.samples.data()};
        writer.write(planar, sig.frames());
        writer.commit();
    } catch (...) {
        std::remove(json_tmp.c_str());
        throw;
    }
    std::error_code ec;
    std::filesystem::rename(json_tmp, json_path, ec);
    if (ec) throw std::runtime_error("cannot rename " + json_tmp + " to " + json_path + ": " + ec.message());

    float peak = 0;
    for (float v : sig.samples) peak = std::max(peak, std::abs(v));
    if (!o.quiet) print_layout(sig);
    std::ostringstream summary;
    summary << std::fixed << std::setprecision(1) << "wrote " << double(sig.frames()) / sig.sample_rate_hz
            << " s at " << int64_t(sig.sample_rate_hz) << " Hz, mono float, peak " << 20 * std::log10(double(peak))
            << " dBFS, seed " << sig.seed << " -> " << o.out_path << " (layout: " << json_path << ")";
    std::cout << summary.str() << "\n";
}

} // namespace

void add_capture_signal_command(CLI::App& app) {
    auto o = std::make_shared<CaptureSignalOptions>();
    CLI::App* sub = app.add_subcommand(
        "capture-signal", "Write the reamp signal to play through your gear and record, for `train`");
    sub->add_option("--out,-o", o->out_path,
                    "Output WAV (32-bit float, mono); the layout goes to OUT.json beside it")
        ->required();
    sub->add_option("--rate,-r", o->rate_hz, "Sample rate in Hz: record at this rate too")
        ->capture_default_str()
        ->check(CLI::Range(dsp::kCaptureMinRateHz, dsp::kCaptureMaxRateHz));
    sub->add_option("--seconds,-s", o->seconds,
                    "Whole length in seconds: about 41.5 s of fixed test signals, the rest music")
        ->capture_default_str()
        ->check(CLI::Range(0.0, dsp::kCaptureMaxSeconds));
    sub->add_option("--seed", o->seed, "Random seed of the noise and the music: the same seed gives the same file")
        ->capture_default_str();
    sub->add_flag("--quiet,-q", o->quiet, "Print only the summary line, not the layout");
    sub->footer(
        "What it holds, in order: sync impulses (three single-sample clicks), log sine sweeps\n"
        "20 Hz-20 kHz at four levels, white and pink noise bursts at four levels, a tone and\n"
        "a noise decaying into silence, a sine stepping up in 3 dB steps, then synthesised\n"
        "plucked-string guitar and bass (strums, single notes, palm mutes, slap, swells, chords\n"
        "ringing out), and the sync impulses again. Peak -2 dBFS. OUT.json lists every segment\n"
        "with its frames and the impulse positions; docs/DATA.md has the table.\n\n"
        "How to capture your gear with it:\n"
        "  1. In a DAW, put OUT on a track routed to the interface output that feeds the gear, and\n"
        "     record the gear's output on another track at the same sample rate, in one pass\n"
        "     from the same start. Export the recording mono, 24-bit or float, the length of OUT;\n"
        "     do not normalise it.\n"
        "  2. Set the interface's output so the gear sees the level a guitar gives it (OUT peaks\n"
        "     at -2 dBFS), and keep the recording's peaks below 0 dBFS (no clipping).\n"
        "  3. mambawave train --input OUT --target recording.wav --out gear.safetensors\n"
        "     `train` finds the round-trip latency by cross-correlation and shifts it out. The\n"
        "     sync impulses (frames in OUT.json) measure it independently at the start and at the\n"
        "     end: the two must agree, or the recorder's clock drifted against the player's.\n"
        "  For a knob you want on the model (e.g. drive), record once per setting and list the\n"
        "  pairs in a manifest (see docs/DATA.md).\n\n"
        "Examples:\n"
        "  mambawave capture-signal --out di.wav\n"
        "  mambawave capture-signal --out di96k.wav --rate 96000 --seconds 180 --seed 2");
    sub->callback([o] { run_capture_signal(*o); });
}

} // namespace mw::cli
