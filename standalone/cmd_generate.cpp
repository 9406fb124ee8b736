// `mambawave generate`: a generator model continues audio one mu-law sample at a time.
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/progress.h"

#include "dsp/audio_file.h"
#include "dsp/mulaw.h"
#include "model/engine.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>

namespace mw::cli {

namespace {

constexpr int64_t kBlockFrames = 4096;
constexpr int32_t kSilenceToken = 128;
constexpr double kMaxSeconds = 24 * 3600;

struct GenerateOptions {
    std::string model_path, out_path, prime_path;
    double seconds = 0;
    float temperature = 1.0f;
    float top_p = 1.0f;
    uint64_t seed = 0;
    int threads = 0;
};

// The prime file as tokens: mixed to mono, resampled to the model's rate, mu-law encoded.
std::vector<int32_t> prime_tokens(const std::string& path, double model_rate_hz) {
    const dsp::AudioData audio = dsp::read_audio(path);
    std::vector<float> mono(size_t(audio.frames()), 0.0f);
    for (const std::vector<float>& ch : audio.channels)
        for (size_t i = 0; i < mono.size(); ++i) mono[i] += ch[i] / float(audio.channels.size());
    if (audio.sample_rate_hz != model_rate_hz) {
        note(path + " is " + std::to_string(int64_t(audio.sample_rate_hz)) + " Hz: resampling the "
             "prime to the model's " + std::to_string(int64_t(model_rate_hz)) + " Hz");
        mono = dsp::resample(mono, audio.sample_rate_hz, model_rate_hz);
    }
    std::vector<int32_t> tokens(mono.size());
    std::transform(mono.begin(), mono.end(), tokens.begin(), dsp::mulaw_encode);
    if (tokens.empty()) tokens.push_back(kSilenceToken);
    return tokens;
}

void run_generate(const GenerateOptions& o) {
    const Model model = load_model_for(o.model_path, IoKind::mulaw8, "generate", "render");
    const double rate_hz = model.config().sample_rate_hz;
    const int64_t frames = std::llround(o.seconds * rate_hz);
    if (frames < 1) throw UsageError("--seconds " + std::to_string(o.seconds) + " is less than one sample");
    const std::vector<int32_t> prime =
        o.prime_path.empty() ? std::vector<int32_t>{kSilenceToken} : prime_tokens(o.prime_path, rate_hz);
    dsp::AudioWriter writer(o.out_path, rate_hz, 1);

    Stopwatch clock;
    GeneratorRunner runner(model, SamplerParams{o.temperature, o.top_p, o.seed}, o.threads);
    runner.prime(prime.data(), int64_t(prime.size()));
    std::vector<float> block(static_cast<size_t>(kBlockFrames));
    const float* planar[] = {block.data()};
    ProgressBar bar("generate", double(frames) / rate_hz);
    for (int64_t start = 0; start < frames; start += kBlockFrames) {
        const int64_t n = std::min(kBlockFrames, frames - start);
        for (int64_t i = 0; i < n; ++i) block[size_t(i)] = dsp::mulaw_decode(runner.next());
        writer.write(planar, n);
        throw_if_interrupted();
        bar.update(double(start + n) / rate_hz);
    }
    writer.commit();
    bar.finish();
    std::cout << "generated " << speed_summary(double(frames) / rate_hz, clock.seconds())
              << ", seed " << o.seed << " -> " << o.out_path << "\n";
}

} // namespace

void add_generate_command(CLI::App& app) {
    auto o = std::make_shared<GenerateOptions>();
    CLI::App* sub = app.add_subcommand(
        "generate", "Generate audio with a generator model, one mu-law sample at a time");
    add_model_option(*sub, o->model_path);
    sub->add_option("--seconds,-s", o->seconds, "Length of the audio to generate, in seconds")
        ->required()
        ->check(CLI::PositiveNumber)
        ->check(CLI::Range(0.0, kMaxSeconds));
    sub->add_option("--out,-o", o->out_path, "Output audio file (.wav or .flac), mono, at the "
                                             "model's sample rate")
        ->required();
    sub->add_option("--temperature,-t", o->temperature,
                    "Sampling temperature: 0 always picks the likeliest class, higher is wilder")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    sub->add_option("--top-p", o->top_p,
                    "Nucleus sampling: draw only from the likeliest classes holding this much "
                    "probability (0 < p <= 1)")
        ->check(CLI::Range(1e-6, 1.0))
        ->capture_default_str();
    sub->add_option("--seed", o->seed, "Random seed: the same seed gives the same audio")
        ->capture_default_str();
    sub->add_option("--prime", o->prime_path,
                    "Audio to continue from (mixed to mono, resampled to the model's rate, "
                    "mu-law encoded); without it the model starts from silence")
        ->check(CLI::ExistingFile);
    add_threads_option(*sub, o->threads);
    sub->footer("The output holds the generated continuation only, not the prime.\n\n"
                "Examples:\n"
                "  mambawave generate -m babble.safetensors --seconds 5 --out babble.wav\n"
                "  mambawave generate -m piano.safetensors -s 10 -o more.wav --prime intro.wav "
                "--temperature 0.9 --top-p 0.95 --seed 7");
    sub->callback([o] { run_generate(*o); });
}

} // namespace mw::cli
