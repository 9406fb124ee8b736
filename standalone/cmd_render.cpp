// `mambawave render`: an effect model over a whole audio file, each channel an independent
// stream, in segments so that a file of any length goes through with a progress bar.
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/progress.h"

#include "dsp/audio_file.h"
#include "model/engine.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <future>
#include <iostream>
#include <memory>

namespace mw::cli {

namespace {

constexpr int64_t kSegmentFrames = 65536;       // cpu
constexpr int64_t kCudaSegmentFrames = 1 << 20;  // cuda: longer blocks keep the GPU busy

struct RenderOptions {
    std::string model_path, in_path, out_path;
    std::string path = "scan";
    std::string device = "auto";
    int threads = 0;
    std::vector<std::string> controls;
};

void resample_channels(dsp::AudioData& audio, double to_hz) {
    for (std::vector<float>& ch : audio.channels) ch = dsp::resample(ch, audio.sample_rate_hz, to_hz);
    audio.sample_rate_hz = to_hz;
}

// The effect over every channel, segment by segment; state carries across segments.
dsp::AudioData process(EffectRunner& runner, const dsp::AudioData& in, int64_t segment) {
    dsp::AudioData out;
    out.sample_rate_hz = in.sample_rate_hz;
    out.channels.assign(in.channels.size(), std::vector<float>(size_t(in.frames())));
    std::vector<const float*> in_ptrs(in.channels.size());  // [channels]
    std::vector<float*> out_ptrs(in.channels.size());       // [channels]
    ProgressBar bar("render", double(in.frames()) / in.sample_rate_hz);
    for (int64_t start = 0; start < in.frames(); start += segment) {
        const int64_t n = std::min(segment, in.frames() - start);
        for (size_t c = 0; c < in.channels.size(); ++c) {
            in_ptrs[c] = in.channels[c].data() + start;
            out_ptrs[c] = out.channels[c].data() + start;
        }
        runner.process(in_ptrs.data(), out_ptrs.data(), n);
        throw_if_interrupted();
        bar.update(double(start + n) / in.sample_rate_hz);
    }
    return out;
}

void write_all(dsp::AudioWriter& writer, const dsp::AudioData& audio) {
    std::vector<const float*> planar;  // [channels]
    for (const std::vector<float>& ch : audio.channels) planar.push_back(ch.data());
    writer.write(planar.data(), audio.frames());
}

// Planar [channels][frames] buffers for one segment of the streaming pipeline.
struct Segment {
    std::vector<std::vector<float>> data;  // [channels][capacity]
    std::vector<float*> ptrs;              // [channels]
    int64_t frames = 0;
    Segment(int channels, int64_t capacity) : data(size_t(channels), std::vector<float>(size_t(capacity))) {
        for (std::vector<float>& ch : data) ptrs.push_back(ch.data());
    }
    const float* const* cptrs() const { return ptrs.data(); }
};

// A file at the model's rate streams through: while segment k is processed, segment k+1 is
// read and segment k-1 written by helper threads, so memory holds four segments whatever the
// file's length, and disk time hides behind compute. State carries across segments, so the
// result does not depend on the segment size (up to float rounding).
// Returns the seconds each of the three stages was busy.
struct StageSeconds {
    double read = 0, model = 0, write = 0;
};

StageSeconds stream_render(EffectRunner& runner, dsp::AudioReader& reader, dsp::AudioWriter& writer,
                           int64_t segment) {
    const int channels = reader.channels();
    Segment in[2] = {Segment(channels, segment), Segment(channels, segment)};
    Segment out[2] = {Segment(channels, segment), Segment(channels, segment)};
    StageSeconds busy;
    auto read_into = [&](Segment& s) {
        const Stopwatch clock;
        s.frames = reader.read(s.ptrs.data(), segment);
        busy.read += clock.seconds();
    };
    ProgressBar bar("render", double(reader.frames()) / reader.sample_rate_hz());
    std::future<void> reading = std::async(std::launch::async, read_into, std::ref(in[0]));
    std::future<void> writing;
    int64_t done = 0;
    for (int k = 0;; ++k) {
        reading.get();
        Segment& cur = in[k % 2];
        if (cur.frames == 0) break;
        reading = std::async(std::launch::async, read_into, std::ref(in[(k + 1) % 2]));
        Segment& result = out[k % 2];
        const Stopwatch model_clock;
        runner.process(cur.cptrs(), result.ptrs.data(), cur.frames);
        busy.model += model_clock.seconds();
        result.frames = cur.frames;
        if (writing.valid()) writing.get();
        writing = std::async(std::launch::async, [&writer, &result, &busy] {
            const Stopwatch clock;
            writer.write(result.cptrs(), result.frames);
            busy.write += clock.seconds();
        });
        done += cur.frames;
        throw_if_interrupted();
        bar.update(double(done) / reader.sample_rate_hz());
    }
    if (writing.valid()) writing.get();
    if (done == 0) throw dsp::AudioFileError(reader.path() + ": has no audio frames (empty file)");
    return busy;
}

std::string seconds_text(double s) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f s", s);
    return text;
}

void run_render(const RenderOptions& o) {
    const Model model = load_model_for(o.model_path, IoKind::continuous, "render", "generate");
    const double model_rate_hz = model.config().sample_rate_hz;
    const std::vector<float> controls = resolve_controls(model.config(), o.controls);
    const Path path = parse_path(o.path);
    // An explicit --device cuda is checked (and noted) before the file is read; auto needs
    // the file's length.
    if (o.device == "cuda") choose_device(o.device, 0, o.path);
    dsp::AudioReader reader(o.in_path);
    const double file_rate_hz = reader.sample_rate_hz();
    const int channels = reader.channels();
    dsp::AudioWriter writer(o.out_path, file_rate_hz, channels);  // checks --out before the work

    Stopwatch clock;
    const bool resampling = file_rate_hz != model_rate_hz;
    const int64_t model_frames = resampling ? int64_t(double(reader.frames()) * model_rate_hz / file_rate_hz)
                                            : reader.frames();
    // Each channel a stream: on the GPU the channels are the batch of one forward.
    const Device device = o.device == "cuda" ? Device::cuda : choose_device(o.device, model_frames, o.path);
    const int64_t segment = device == Device::cuda ? kCudaSegmentFrames : kSegmentFrames;
    std::unique_ptr<EffectRunner> runner =
        device == Device::cuda
            ? std::make_unique<EffectRunner>(model, Device::cuda, channels, o.threads, segment)
            : std::make_unique<EffectRunner>(model, path, channels, o.threads);
    runner->set_controls(controls.data());
    int64_t file_frames = 0;
    if (!resampling) {
        const StageSeconds busy = stream_render(*runner, reader, writer, segment);
        file_frames = reader.position();
        note("time: reading " + seconds_text(busy.read) + ", model " + seconds_text(busy.model) +
             ", writing " + seconds_text(busy.write) + ", overlapped (the slowest sets the pace)");
    } else {
        // Resampling (libsamplerate over whole channels) holds the file in memory.
        note(o.in_path + " is " + std::to_string(int64_t(file_rate_hz)) + " Hz and the model runs at " +
             std::to_string(int64_t(model_rate_hz)) + " Hz: resampling to the model's rate and back "
             "(libsamplerate, best sinc; the whole file is held in memory)");
        dsp::AudioData audio = dsp::read_all(reader);
        file_frames = audio.frames();
        resample_channels(audio, model_rate_hz);
        dsp::AudioData out = process(*runner, audio, segment);
        resample_channels(out, file_rate_hz);
        for (std::vector<float>& ch : out.channels) ch.resize(size_t(file_frames), 0.0f);
        write_all(writer, out);
    }
    writer.commit();
    std::cout << "rendered " << speed_summary(double(file_frames) / file_rate_hz, clock.seconds())
              << ", " << channels << " channel" << (channels == 1 ? "" : "s") << ", "
              << (device == Device::cuda ? std::string("cuda") : "path " + o.path) << " -> "
              << o.out_path << "\n";
}

} // namespace

void add_render_command(CLI::App& app) {
    auto o = std::make_shared<RenderOptions>();
    CLI::App* sub = app.add_subcommand(
        "render", "Run an effect model over a whole audio file (WAV, FLAC, OGG, AIFF in; WAV or "
                  "FLAC out)");
    add_model_option(*sub, o->model_path);
    sub->add_option("--in,-i", o->in_path, "Input audio file (WAV, FLAC, OGG, AIFF)")
        ->required()
        ->check(CLI::ExistingFile);
    sub->add_option("--out,-o", o->out_path,
                    "Output audio file: .wav (32-bit float) or .flac (24-bit, clipped to [-1,1])")
        ->required();
    add_controls_option(*sub, o->controls);
    add_path_option(*sub, o->path, {"step", "scan"});
    add_device_option(*sub, o->device);
    add_threads_option(*sub, o->threads);
    sub->footer(
        "Each channel is an independent stream through the model (on CUDA, the channels are one\n"
        "batch). A file at another sample rate is\nresampled to the model's rate and back. The output is written under a temporary "
        "name and\nrenamed only when the whole file succeeded. Controls are in the units the "
        "model declares\n(see `mambawave info MODEL`) and range-checked.\n\n"
        "Examples:\n"
        "  mambawave render -m drive.safetensors --in guitar.wav --out loud.wav --control "
        "drive=0.7\n"
        "  mambawave render -m filter.safetensors -i loop.flac -o dark.flac -c tone=400 --path "
        "step");
    sub->callback([o] { run_render(*o); });
}

} // namespace mw::cli
