// `mambawave render`: an effect model over a whole audio file, each channel an independent
// stream, in segments so that a file of any length goes through with a progress bar.
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/progress.h"

#include "dsp/audio_file.h"
#include "model/engine.h"

#include <algorithm>
#include <filesystem>
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
    std::string model_path, out_dir;
    std::vector<std::string> in_paths, out_paths;
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

// Planar [channels][frames] buffers for one segment of the streaming pipeline, and how many
// of those frames belong to each file (a file that has ended contributes zeros, not output).
struct Segment {
    std::vector<std::vector<float>> data;  // [channels][capacity]
    std::vector<float*> ptrs;              // [channels]
    int64_t frames = 0;                    // the longest file's frames in this segment
    std::vector<int64_t> file_frames;      // [files]
    Segment(int channels, int64_t capacity, size_t files)
        : data(size_t(channels), std::vector<float>(size_t(capacity))), file_frames(files, 0) {
        for (std::vector<float>& ch : data) ptrs.push_back(ch.data());
    }
    const float* const* cptrs() const { return ptrs.data(); }
};

// The files of one render call, their channels side by side: file f's channels are streams
// first[f] .. first[f] + channels(f) - 1 of the model.
struct FileBatch {
    std::vector<std::unique_ptr<dsp::AudioReader>> readers;
    std::vector<std::unique_ptr<dsp::AudioWriter>> writers;
    std::vector<std::string> out_paths;
    std::vector<int> first;
    int channels = 0;

    void add(std::unique_ptr<dsp::AudioReader> reader, const std::string& out) {
        const dsp::AudioReader& r = *reader;
        writers.push_back(std::make_unique<dsp::AudioWriter>(out, r.sample_rate_hz(), r.channels()));
        out_paths.push_back(out);
        first.push_back(channels);
        channels += r.channels();
        readers.push_back(std::move(reader));
    }
    double rate_hz() const { return readers[0]->sample_rate_hz(); }
    int64_t longest() const {
        int64_t n = 0;
        for (const auto& r : readers) n = std::max(n, r->frames());
        return n;
    }
    // Up to n frames of every file into s (zeros past a file's end).
    void read(Segment& s, int64_t n) {
        s.frames = 0;
        for (size_t f = 0; f < readers.size(); ++f) {
            float* const* ptrs = s.ptrs.data() + first[f];
            const int64_t got = readers[f]->read(ptrs, n);
            for (int c = 0; c < readers[f]->channels(); ++c) std::fill(ptrs[c] + got, ptrs[c] + n, 0.0f);
            s.file_frames[f] = got;
            s.frames = std::max(s.frames, got);
        }
    }
    void write(const Segment& s) {
        for (size_t f = 0; f < writers.size(); ++f)
            if (s.file_frames[f] > 0) writers[f]->write(s.cptrs() + first[f], s.file_frames[f]);
    }
};

// Files at the model's rate stream through: while segment k is processed, segment k+1 is
// read and segment k-1 written by helper threads, so memory holds four segments whatever the
// files' lengths, and disk time hides behind compute. State carries across segments, so the
// result does not depend on the segment size (up to float rounding). Several files run as
// one batch (their channels are the model's streams) until the longest ends.
// Returns the seconds each of the three stages was busy.
struct StageSeconds {
    double read = 0, model = 0, write = 0;
};

StageSeconds stream_render(EffectRunner& runner, FileBatch& files, int64_t segment) {
    const size_t nf = files.readers.size();
    Segment in[2] = {Segment(files.channels, segment, nf), Segment(files.channels, segment, nf)};
    Segment out[2] = {Segment(files.channels, segment, nf), Segment(files.channels, segment, nf)};
    StageSeconds busy;
    auto read_into = [&](Segment& s) {
        const Stopwatch clock;
        files.read(s, segment);
        busy.read += clock.seconds();
    };
    ProgressBar bar("render", double(files.longest()) / files.rate_hz());
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
        result.file_frames = cur.file_frames;
        if (writing.valid()) writing.get();
        writing = std::async(std::launch::async, [&files, &result, &busy] {
            const Stopwatch clock;
            files.write(result);
            busy.write += clock.seconds();
        });
        done += cur.frames;
        throw_if_interrupted();
        bar.update(double(done) / files.rate_hz());
    }
    if (writing.valid()) writing.get();
    for (const auto& r : files.readers)
        if (r->position() == 0) throw dsp::AudioFileError(r->path() + ": has no audio frames (empty file)");
    return busy;
}

std::string seconds_text(double s) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f s", s);
    return text;
}

std::string device_text(Device device, const RenderOptions& o) {
    return device == Device::cuda ? std::string("cuda") : "path " + o.path;
}

// The summary line of one rendered file.
void print_rendered(double audio_s, double wall_s, int channels, const std::string& where,
                    const std::string& out_path) {
    std::cout << "rendered " << speed_summary(audio_s, wall_s) << ", " << channels << " channel"
              << (channels == 1 ? "" : "s") << ", " << where << " -> " << out_path << "\n";
}

std::unique_ptr<EffectRunner> make_runner(const Model& model, Device device, Path path, int streams,
                                          int threads) {
    return device == Device::cuda
               ? std::make_unique<EffectRunner>(model, Device::cuda, streams, threads, kCudaSegmentFrames)
               : std::make_unique<EffectRunner>(model, path, streams, threads);
}

// One file whose rate differs from the model's: resampled whole (libsamplerate over whole
// channels holds the file in memory), run, resampled back.
void render_resampled(const Model& model, const RenderOptions& o, const std::vector<float>& controls,
                      Path path, dsp::AudioReader& reader, const std::string& out_path) {
    const double model_rate_hz = model.config().sample_rate_hz;
    const std::string& in_path = reader.path();
    const double file_rate_hz = reader.sample_rate_hz();
    dsp::AudioWriter writer(out_path, file_rate_hz, reader.channels());  // checks the output first
    const Stopwatch clock;
    note(in_path + " is " + std::to_string(int64_t(file_rate_hz)) + " Hz and the model runs at " +
         std::to_string(int64_t(model_rate_hz)) + " Hz: resampling to the model's rate and back "
         "(libsamplerate, best sinc; the whole file is held in memory)");
    dsp::AudioData audio = dsp::read_all(reader);
    const int64_t file_frames = audio.frames();
    resample_channels(audio, model_rate_hz);
    const Device device = o.device == "cuda" ? Device::cuda : choose_device(o.device, audio.frames(), o.path);
    auto runner = make_runner(model, device, path, int(audio.channels.size()), o.threads);
    runner->set_controls(controls.data());
    dsp::AudioData out = process(*runner, audio, device == Device::cuda ? kCudaSegmentFrames : kSegmentFrames);
    resample_channels(out, file_rate_hz);
    for (std::vector<float>& ch : out.channels) ch.resize(size_t(file_frames), 0.0f);
    write_all(writer, out);
    writer.commit();
    print_rendered(double(file_frames) / file_rate_hz, clock.seconds(), int(audio.channels.size()),
                   device_text(device, o), out_path);
}

// The output names: --out per input, or --out-dir/<input name>.wav.
std::vector<std::string> output_paths(const RenderOptions& o) {
    if (!o.out_dir.empty()) {
        if (!o.out_paths.empty()) throw UsageError("give --out or --out-dir, not both");
        std::vector<std::string> outs;
        for (const std::string& in : o.in_paths) {
            const std::string stem = std::filesystem::path(in).stem().string();
            outs.push_back((std::filesystem::path(o.out_dir) / (stem + ".wav")).string());
        }
        for (size_t i = 0; i < outs.size(); ++i)
            for (size_t j = 0; j < i; ++j)
                if (outs[i] == outs[j])
                    throw UsageError("--out-dir: " + o.in_paths[j] + " and " + o.in_paths[i] +
                                     " would both be written to " + outs[i] + "; give --out for each");
        return outs;
    }
    if (o.out_paths.size() != o.in_paths.size())
        throw UsageError("--in names " + std::to_string(o.in_paths.size()) + " file(s) and --out " +
                         std::to_string(o.out_paths.size()) + ": give one --out per --in, or --out-dir");
    return o.out_paths;
}

void run_render(const RenderOptions& o) {
    const Model model = load_model_for(o.model_path, IoKind::continuous, "render", "generate");
    const double model_rate_hz = model.config().sample_rate_hz;
    const std::vector<float> controls = resolve_controls(model.config(), o.controls);
    const Path path = parse_path(o.path);
    const std::vector<std::string> outs = output_paths(o);
    // An explicit --device cuda is checked (and noted) before any file is read; auto needs
    // the files' lengths.
    if (o.device == "cuda") choose_device(o.device, 0, o.path);

    // Files at the model's rate go through together, as one batch; the others one by one.
    FileBatch batch;
    std::vector<std::pair<std::unique_ptr<dsp::AudioReader>, std::string>> resampled;  // reader, output
    for (size_t i = 0; i < o.in_paths.size(); ++i) {
        auto reader = std::make_unique<dsp::AudioReader>(o.in_paths[i]);
        if (reader->sample_rate_hz() == model_rate_hz) batch.add(std::move(reader), outs[i]);
        else resampled.emplace_back(std::move(reader), outs[i]);
    }
    if (!batch.readers.empty()) {
        const Stopwatch clock;
        const int64_t work = batch.longest() * batch.channels;
        const Device device = o.device == "cuda" ? Device::cuda : choose_device(o.device, work, o.path);
        auto runner = make_runner(model, device, path, batch.channels, o.threads);
        runner->set_controls(controls.data());
        const StageSeconds busy =
            stream_render(*runner, batch, device == Device::cuda ? kCudaSegmentFrames : kSegmentFrames);
        for (auto& w : batch.writers) w->commit();
        note("time: reading " + seconds_text(busy.read) + ", model " + seconds_text(busy.model) +
             ", writing " + seconds_text(busy.write) + ", overlapped (the slowest sets the pace)");
        double audio_s = 0;
        for (const auto& r : batch.readers) audio_s += double(r->position()) / model_rate_hz;
        const std::string where = device_text(device, o);
        if (batch.readers.size() == 1) {
            print_rendered(audio_s, clock.seconds(), batch.channels, where, batch.out_paths[0]);
        } else {
            std::cout << "rendered " << batch.readers.size() << " files together (" << batch.channels
                      << " streams, " << where << "): " << speed_summary(audio_s, clock.seconds()) << "\n";
            for (size_t f = 0; f < batch.readers.size(); ++f)
                std::cout << "  " << batch.readers[f]->path() << " -> " << batch.out_paths[f] << " ("
                          << double(batch.readers[f]->position()) / model_rate_hz << " s)\n";
        }
    }
    for (auto& [reader, out] : resampled) render_resampled(model, o, controls, path, *reader, out);
}

} // namespace

void add_render_command(CLI::App& app) {
    auto o = std::make_shared<RenderOptions>();
    CLI::App* sub = app.add_subcommand(
        "render", "Run an effect model over a whole audio file (WAV, FLAC, OGG, AIFF in; WAV or "
                  "FLAC out)");
    add_model_option(*sub, o->model_path);
    sub->add_option("--in,-i", o->in_paths,
                    "Input audio file (WAV, FLAC, OGG, AIFF); repeat it (or list several) to render many "
                    "files in one call, as one batch")
        ->required()
        ->check(CLI::ExistingFile);
    sub->add_option("--out,-o", o->out_paths,
                    "Output audio file: .wav (32-bit float) or .flac (24-bit, clipped to [-1,1]); one per --in");
    sub->add_option("--out-dir", o->out_dir,
                    "With several inputs: write each as DIR/<input name>.wav instead of naming every --out")
        ->check(CLI::ExistingDirectory);
    add_controls_option(*sub, o->controls);
    add_path_option(*sub, o->path, {"step", "scan"});
    add_device_option(*sub, o->device);
    add_threads_option(*sub, o->threads);
    sub->footer(
        "Each channel is an independent stream through the model (on CUDA, the channels are one\n"
        "batch). A file at another sample rate is resampled to the model's rate and back. The\n"
        "output is written under a temporary name and renamed only when the whole file succeeded.\n"
        "Controls are in the units the model declares (see `mambawave info MODEL`), range-checked.\n\n"
        "Several inputs run as one batch (every channel of every file a stream; on CUDA one forward),\n"
        "each written to its own output; files at another rate than the model's go one by one.\n\n"
        "Examples:\n"
        "  mambawave render -m drive.safetensors --in guitar.wav --out loud.wav --control "
        "drive=0.7\n"
        "  mambawave render -m drive.safetensors -i take1.wav -i take2.wav -i take3.wav --out-dir rendered\n"
        "  mambawave render -m filter.safetensors -i loop.flac -o dark.flac -c tone=400 --path "
        "step");
    sub->callback([o] { run_render(*o); });
}

} // namespace mw::cli
