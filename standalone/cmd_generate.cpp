// `mambawave generate`: a generator model continues audio one mu-law sample at a time.
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/progress.h"

#include "dsp/audio_file.h"
#include "dsp/mulaw.h"
#include "kernels/counter_draws.h"
#include "kernels/thread_pool.h"
#include "model/engine.h"
#include "model/losses.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>

namespace mw::cli {

namespace {

constexpr int64_t kBlockFrames = 4096;
constexpr double kMaxSeconds = 24 * 3600;
// --count: every clip is an output file open while the clips are generated.
constexpr int kMaxClips = 256;
// --device auto runs on the GPU from this many clips on (one voice runs faster on the CPU step).
constexpr int kAutoCudaClips = 16;
// --best-of: at most this many candidates a clip, and this many samples of them held at once.
constexpr int kMaxBestOf = 16;
constexpr int64_t kMaxCandidateSamples = int64_t(1) << 26;  // (256 MB of classes)

struct GenerateOptions {
    std::string model_path, out_path, prime_path, label;
    double seconds = 0;
    float temperature = 1.0f;
    float top_p = 1.0f;
    uint64_t seed = 0;
    int threads = 0;
    int count = 1;
    int best_of = 1;
    std::string device = "auto";
    float guidance = 0.0f;
    bool guidance_given = false;  // else a labelled model's own weight (ModelConfig::guidance)
    std::string contrast = "auto";
};

// --contrast for this model: auto takes the null label where the model has one.
GuidanceContrast guidance_contrast(const std::string& choice, const ModelConfig& c, const std::string& model_path) {
    if (choice == "null") {
        if (!c.label_null)
            throw UsageError("--contrast null: " + model_path + " has no null label (it was trained without "
                             "--label-dropout); give --contrast labels, or leave --contrast out");
        return GuidanceContrast::null_label;
    }
    if (choice == "labels") return GuidanceContrast::labels;
    return c.label_null ? GuidanceContrast::null_label : GuidanceContrast::labels;
}

// The device for --device over `count` clips of `frames` samples: cuda is checked (a usage error
// without CUDA, as in render); auto takes the GPU for many clips of a long job.
Device generate_device(const std::string& choice, int count, int64_t frames) {
    if (choice == "cuda") return choose_device("cuda", frames * count, "scan");
    if (choice == "auto" && count >= kAutoCudaClips && frames * count >= kAutoCudaSamples && cuda_available()) {
        note("running on " + cuda_device_name() + " (CUDA), " + std::to_string(count) + " clips at once");
        return Device::cuda;
    }
    if (choice != "cpu" && choice != "auto")
        throw UsageError("--device '" + choice + "', expected cpu, cuda or auto");
    note("running on the CPU (recurrent step, " + std::to_string(count) + (count == 1 ? " clip)" : " clips at once)"));
    return Device::cpu;
}

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
    if (tokens.empty()) tokens.push_back(kSilenceClass);
    return tokens;
}

// --label random: clip k's label (from 0), a pure function of the seed, so that the same seed
// gives the same labels (and, clip k drawing with seed + k, the same clips).
int random_label(uint64_t seed, int k, int labels) {
    return int(mix64(mix64(seed ^ 0x72616e646f6dull) + uint64_t(k)) % uint64_t(labels));  // ("random")
}

// --best-of: how plainly a clip says the label it was asked for, by the model's own hearing: its
// log-likelihood (nats) under that label's prefix less the likeliest other label's, each a
// teacher-forced pass over the whole history (prefix, prime, clip) with the generated samples
// scored. (docs/DIGITS.md, "Best of N": on digits_labelled, a separate classifier and PocketSphinx
// hear the widest margin's candidate as the digit asked for more often; on digits_large it gained
// nothing.)
class LabelMargin {
public:
    // The labels' passes are shared out over `threads` (0: every core), each thread its own
    // single-threaded forward, so that a margin is the same for any number of threads.
    LabelMargin(const Model& model, int threads) : model_(model), pool_(threads) {
        const int W = std::min(pool_.size(), int(model.config().labels.size()));
        for (int w = 0; w < W; ++w) workers_.push_back(std::make_unique<Worker>(model));
    }
    double operator()(int own, const std::vector<int32_t>& prime, const int32_t* clip, int64_t n) {
        const ModelConfig& c = model_.config();
        const int K = int(c.labels.size()), W = int(workers_.size());
        std::vector<double> ll(static_cast<size_t>(K));
        pool_.run(W, [&](int w) {
            for (int k = w; k < K; k += W) ll[size_t(k)] = workers_[size_t(w)]->log_likelihood(c, k, prime, clip, n);
        });
        double other = -std::numeric_limits<double>::infinity();
        for (int k = 0; k < K; ++k)
            if (k != own) other = std::max(other, ll[size_t(k)]);
        return ll[size_t(own)] - other;
    }

private:
    struct Worker {
        explicit Worker(const Model& model) : forward(model, 1) {}
        // log p(clip | label k's prefix, prime) in nats: the generated samples' predictions
        double log_likelihood(const ModelConfig& c, int k, const std::vector<int32_t>& prime, const int32_t* clip,
                              int64_t n) {
            tokens = c.label_tokens(k);
            tokens.insert(tokens.end(), prime.begin(), prime.end());
            const int64_t context = int64_t(tokens.size());
            tokens.insert(tokens.end(), clip, clip + n);
            const int64_t L = int64_t(tokens.size()) - 1;
            logits.resize(size_t(L * c.vocab));
            forward.run(tokens.data(), L, logits.data());
            // (prediction i is of token i + 1: the first generated sample's is context - 1)
            return -cross_entropy(logits.data(), tokens.data() + 1, L, c.vocab, context - 1, nullptr, 1.0).nats;
        }
        TokenForward forward;
        std::vector<int32_t> tokens;
        std::vector<float> logits;
    };
    const Model& model_;
    kernels::ThreadPool pool_;
    std::vector<std::unique_ptr<Worker>> workers_;
};

double median_of(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

void run_generate(const GenerateOptions& given) {
    GenerateOptions o = given;
    if (o.guidance > 0.0f && o.device == "cuda")
        throw UsageError("--guidance runs on the CPU (each clip steps two streams, or one per label); give "
                         "--device cpu or leave --device out");
    const bool random_labels = o.label == "random";
    if (random_labels && o.device == "cuda")
        throw UsageError("--label random runs on the CPU (each clip primed with its own label); give --device cpu "
                         "or leave --device out");
    // An explicit --device cuda without CUDA is a usage error before the model is read.
    if (o.device == "cuda") {
        std::string why;
        if (!cuda_available(&why)) throw UsageError("--device cuda: " + why);
    }
    const Model model = load_model_for(o.model_path, IoKind::mulaw8, "generate", "render");
    if (o.device == "cuda" && model.config().pooled())
        throw UsageError(o.model_path + " is a pooled generator, whose step runs on the CPU only (docs/POOLED.md); "
                         "give --device cpu or leave --device out");
    const double rate_hz = model.config().sample_rate_hz;
    const int64_t frames = std::llround(o.seconds * rate_hz);
    if (frames < 1) throw UsageError("--seconds " + std::to_string(o.seconds) + " is less than one sample");
    if (!o.label.empty() && !o.guidance_given && model.config().guidance > 0.0f) {
        if (o.device == "cuda")
            throw UsageError(o.model_path + " asks for label guidance " + fmt_g(model.config().guidance) +
                             ", which runs on the CPU: give --device cpu, or --guidance 0 for none");
        o.guidance = model.config().guidance;
        note("label guidance " + fmt_g(o.guidance) + ", the model's own (--guidance W for another, 0 for none)");
    }
    if (o.contrast != "auto" && o.guidance == 0.0f)
        throw UsageError("--contrast " + o.contrast + " says what --guidance pushes away from; give --guidance W too");
    if (o.guidance > 0.0f && o.label.empty())
        throw UsageError("--guidance " + fmt_g(o.guidance) + " needs --label: it pushes each clip towards the "
                         "label asked for");
    const std::vector<int32_t> audio_prime = o.prime_path.empty() ? std::vector<int32_t>{} : prime_tokens(o.prime_path, rate_hz);
    if (o.best_of > 1 && !model.config().labelled())
        throw UsageError("--best-of keeps the candidate that says its label most plainly, by the model's own "
                         "hearing: " + o.model_path + " has no labels (it was not trained with --label-prefix)");
    if (o.label.empty() && model.config().labelled())  // (it never heard a clip start without its label)
        throw UsageError(o.model_path + " was trained with labels: --label NAME (or all, or random) says which one "
                         "to make (" + describe_labels(model.config()) + ")");
    // The labels to make, each its own run of --count clips: none (-1), the one asked for, or all.
    const ModelConfig& c = model.config();
    std::vector<int> labels;
    std::vector<int> clip_labels;  // --label random: clip k's, drawn from the seed (one run of all clips)
    if (random_labels) {
        if (!c.labelled())
            throw UsageError("--label random: " + o.model_path + " has no labels (it was not trained with --label-prefix)");
        for (int k = 0; k < o.count; ++k) clip_labels.push_back(random_label(o.seed, k, int(c.labels.size())));
        labels.push_back(-1);
    } else if (o.label.empty()) labels.push_back(-1);
    else if (o.label == "all" && c.labelled())
        for (int i = 0; i < int(c.labels.size()); ++i) labels.push_back(i);
    else labels.push_back(label_index_or_throw(c, o.label, o.model_path));
    if (int64_t(labels.size()) * o.count > kMaxClips)
        throw UsageError("--label all --count " + std::to_string(o.count) + ": " + std::to_string(labels.size()) +
                         " labels of " + std::to_string(o.count) + " clips is more than " + std::to_string(kMaxClips) +
                         " files at once; give --count " + std::to_string(kMaxClips / int(labels.size())) +
                         " or fewer");
    // --best-of N: each clip N candidates, candidate j of clip k the clip k·N + j (from 0) of a
    // run of --count count·N; they are held until every one is scored
    const int made = o.count * o.best_of;  // clips generated a label
    if (o.best_of > 1 && int64_t(made) * frames > kMaxCandidateSamples)
        throw UsageError("--best-of " + std::to_string(o.best_of) + " --count " + std::to_string(o.count) + " of " +
                         fmt_g(o.seconds) + " s holds " + std::to_string(int64_t(made) * frames) +
                         " samples of candidates, more than " + std::to_string(kMaxCandidateSamples) +
                         "; make fewer or shorter clips at a time");
    // a pooled model's step runs on the CPU only so far: auto takes it there (docs/POOLED.md); so
    // does guidance
    const bool cpu_only = c.pooled() || o.guidance > 0.0f || random_labels;
    const Device device = generate_device(cpu_only && o.device == "auto" ? "cpu" : o.device, made, frames);
    const GuidanceContrast contrast = guidance_contrast(o.contrast, c, o.model_path);
    const int per_clip = GuidedGenerator::streams_per_clip(c, contrast);
    const std::string streams_what =
        contrast == GuidanceContrast::null_label ? "the label's and the null label's" : "one per label";
    // guided (GuidedGenerator: each clip its label's prefix inside, and its contrast's streams):
    // with guidance, or with a label of its own for each clip
    const bool guided_run = o.guidance > 0.0f || random_labels;
    if (guided_run && int64_t(made) * per_clip > BatchGenerator::kMaxStreams)
        throw UsageError("--count " + std::to_string(o.count) +
                         (o.best_of > 1 ? " --best-of " + std::to_string(o.best_of) : std::string()) +
                         (random_labels ? " with --label random" : " with --guidance") + ": each clip runs " +
                         std::to_string(per_clip) + " streams (" + streams_what + "), at most " +
                         std::to_string(BatchGenerator::kMaxStreams) + " in all; generate fewer clips at a time");
    if (o.guidance > 0.0f)
        note("label guidance " + fmt_g(o.guidance) + ": " + std::to_string(per_clip) + " streams a clip, " +
             streams_what);
    // OUT for one label; with --label all, OUT's stem + _<label> (digit.wav -> digit_7.wav), then
    // --count's _001 .. _N.
    const auto out_of = [&](size_t li, int k) {
        return clip_path(labels.size() > 1 ? named_path(o.out_path, c.labels[size_t(labels[li])]) : o.out_path, k,
                         o.count);
    };
    // Every output is opened (as a temporary file) before any work: a bad path fails first; all are
    // renamed to their names only when every clip is done.
    std::vector<std::vector<std::unique_ptr<dsp::AudioWriter>>> writers(labels.size());
    for (size_t li = 0; li < labels.size(); ++li)
        for (int k = 1; k <= o.count; ++k)
            writers[li].push_back(std::make_unique<dsp::AudioWriter>(out_of(li, k), rate_hz, 1));

    Stopwatch clock;
    const SamplerParams sampling{o.temperature, o.top_p, o.seed};
    std::vector<int32_t> classes(size_t(made) * size_t(kBlockFrames));  // [made][n]
    std::vector<float> block(static_cast<size_t>(kBlockFrames));
    const float* planar[] = {block.data()};
    // n classes (at most a block) decoded and written on to label li's clip k
    const auto write_classes = [&](size_t li, int k, const int32_t* cls, int64_t n) {
        for (int64_t i = 0; i < n; ++i) block[size_t(i)] = dsp::mulaw_decode(cls[i]);
        writers[li][size_t(k)]->write(planar, n);
    };
    // --best-of: every candidate's classes [made][frames], each clip's kept candidate and margins
    std::vector<int32_t> candidates(o.best_of > 1 ? size_t(made) * size_t(frames) : 0);
    std::unique_ptr<LabelMargin> margin;
    if (o.best_of > 1) margin = std::make_unique<LabelMargin>(model, o.threads);
    std::vector<double> all_margins, kept_margins;
    // (the bar counts each label's seconds of audio once for the generation, once more for
    // --best-of's hearing of the candidates)
    const double clip_s = double(frames) / rate_hz, per_label = clip_s * (o.best_of > 1 ? 2 : 1);
    ProgressBar bar("generate", per_label * double(labels.size()));
    for (size_t li = 0; li < labels.size(); ++li) {
        const int label = labels[li];
        std::unique_ptr<BatchGenerator> plain;
        std::unique_ptr<GuidedGenerator> guided;
        // the label each generated clip was asked for (--best-of: each candidate its clip's)
        std::vector<int> asked(static_cast<size_t>(made), label);
        if (random_labels)
            for (int i = 0; i < made; ++i) asked[size_t(i)] = clip_labels[size_t(i / o.best_of)];
        if (guided_run) {  // each clip's label prefix is fed inside (at weight 0: no guidance), then the prime audio
            guided = std::make_unique<GuidedGenerator>(model, asked, o.guidance, sampling, contrast, o.threads);
            guided->prime(audio_prime.data(), int64_t(audio_prime.size()));
        } else {  // the label's prefix first, as in training (then the prime audio, if any)
            std::vector<int32_t> prime = label >= 0 ? c.label_tokens(label) : std::vector<int32_t>{};
            prime.insert(prime.end(), audio_prime.begin(), audio_prime.end());
            if (prime.empty()) prime.push_back(kSilenceClass);
            plain = std::make_unique<BatchGenerator>(model, device, made, sampling, o.threads);
            plain->prime(prime.data(), int64_t(prime.size()));
        }
        for (int64_t start = 0; start < frames; start += kBlockFrames) {
            const int64_t n = std::min(kBlockFrames, frames - start);
            if (guided) guided->generate(n, classes.data());
            else plain->generate(n, classes.data());
            for (int k = 0; k < made; ++k) {
                const int32_t* got = classes.data() + int64_t(k) * n;
                if (o.best_of > 1) {
                    std::copy(got, got + n, candidates.begin() + int64_t(k) * frames + start);
                    continue;
                }
                write_classes(li, k, got, n);
            }
            throw_if_interrupted();
            bar.update(double(li) * per_label + double(start + n) / rate_hz);
        }
        if (o.best_of == 1) continue;
        // --best-of: each clip's candidates heard by the model under every label; the widest
        // margin for the clip's own label is written
        for (int k = 0; k < o.count; ++k) {
            int best = 0;
            double best_margin = -std::numeric_limits<double>::infinity();
            for (int j = 0; j < o.best_of; ++j) {
                const int i = k * o.best_of + j;
                const double m = (*margin)(asked[size_t(i)], audio_prime, candidates.data() + int64_t(i) * frames, frames);
                all_margins.push_back(m);
                if (m > best_margin) best_margin = m, best = j;
                throw_if_interrupted();
                bar.update(double(li) * per_label + clip_s * (1.0 + double(i + 1) / double(made)));
            }
            kept_margins.push_back(best_margin);
            const int32_t* kept = candidates.data() + int64_t(k * o.best_of + best) * frames;
            for (int64_t start = 0; start < frames; start += kBlockFrames)
                write_classes(li, k, kept + start, std::min(kBlockFrames, frames - start));
        }
    }
    for (auto& label_writers : writers)
        for (auto& w : label_writers) w->commit();
    bar.finish();
    const int files = int(labels.size()) * o.count;
    const std::string where = files == 1 ? o.out_path
                                         : out_of(0, 1) + " .. " + out_of(labels.size() - 1, o.count);
    std::cout << "generated " << (files == 1 ? "" : std::to_string(files) + " clips, ")
              << speed_summary(double(frames) * files / rate_hz, clock.seconds()) << ", seed " << o.seed
              << " -> " << where << "\n";
    if (o.best_of > 1)
        std::cout << "best of " << o.best_of << ": each clip the candidate that says its label most plainly by the "
                  << "model's own hearing (its log-likelihood under that label less the likeliest other's): median "
                  << fmt_g(median_of(kept_margins)) << " nats kept, " << fmt_g(median_of(all_margins))
                  << " over all " << all_margins.size() << " candidates\n";
    if (random_labels) {  // which label each file says
        std::cout << "labels drawn at random:";
        for (int k = 1; k <= o.count; ++k)
            std::cout << (k > 1 ? "," : "") << " " << std::filesystem::path(out_of(0, k)).filename().string() << " "
                      << c.labels[size_t(clip_labels[size_t(k - 1)])];
        std::cout << "\n";
    }
}

} // namespace

void add_generate_command(CLI::App& app) {
    auto o = std::make_shared<GenerateOptions>();
    CLI::App* sub = app.add_subcommand(
        "generate", "Generate audio with a generator model, one mu-law sample at a time");
    add_model_option(*sub, o->model_path);
    sub->add_option("--seconds,-s", o->seconds, "Length of the audio to generate, in seconds")
        ->required()
        ->check(positive_number())
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
    sub->add_option("--label", o->label,
                    "A model trained with --label-prefix needs it: which label to make (`info` lists them; "
                    "for the digits, 0..9), or all: each label in turn, --count clips of each, OUT's name + "
                    "_<label> (digit.wav -> digit_0.wav .. digit_9.wav), each the file that label alone gives "
                    "for the same seed; or random: each clip a label drawn from --seed (listed when done), "
                    "clip k the clip k that its label alone gives with --count. The label's prefix primes the "
                    "model, before --prime's audio")
        ->capture_default_str();
    sub->add_option("--guidance", o->guidance,
                    "With --label: label guidance of this weight (0: off). Each class is drawn from "
                    "(1 + w) log p(x | label) - w log p(x), pushing the clip towards what the label asked "
                    "for makes likelier than no label does; p(x) is the null label's prediction or the "
                    "labels' average (--contrast). Default: the weight the model declares (`info`'s guidance "
                    "line; the labelled digits presets do: 1.5, what "
                    "scored best in docs/DIGITS.md), else 0. CPU only")
        ->check(CLI::Range(0.0, 20.0));
    sub->add_option("--contrast", o->contrast,
                    "With --guidance: what stands for p(x). null: the null label's prediction, for a model "
                    "trained with --label-dropout (2 streams a clip); labels: the average of every label's "
                    "(one stream per label a clip); auto: null where the model has a null label, else labels")
        ->check(CLI::IsMember({"auto", "null", "labels"}))
        ->capture_default_str();
    sub->add_option("--count,-n", o->count,
                    "Number of clips to generate at once, each its own file: with N > 1, OUT "
                    "becomes OUT's name + _001 .. _N before the extension (babble.wav -> "
                    "babble_001.wav, babble_002.wav, ...). All clips share the prime")
        ->check(CLI::Range(1, kMaxClips))
        ->capture_default_str();
    sub->add_option("--best-of", o->best_of,
                    "A labelled model's clips, each the best of N candidates: the one that says the label asked "
                    "for most plainly by the model's own hearing (its log-likelihood under that label's prefix "
                    "less the likeliest other label's): N generations a clip and, for each candidate, one teacher-forced pass under every label, so it is for offline work. Candidate j of "
                    "clip k is clip k·N + j (from 0) of --count count·N with the same seed (with --label random, "
                    "under clip k's own label). On digits_labelled, "
                    "best of 4 was heard as the digit asked for more often; on digits_large it gained nothing "
                    "(docs/DIGITS.md, \"Best of N\")")
        ->check(CLI::Range(1, kMaxBestOf))
        ->capture_default_str();
    sub->add_option("--device", o->device,
                    "Where the model runs: cpu (the recurrent step, all clips together), cuda (the "
                    "GPU step with sampling on the GPU) or auto (cuda when a CUDA GPU is present, "
                    "--count is at least " + std::to_string(kAutoCudaClips) + " and the job is at least " +
                        std::to_string(kAutoCudaSamples) + " samples in all, else cpu)")
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
        ->capture_default_str();
    add_threads_option(*sub, o->threads,
                       "CPU threads (0 = all cores): the prime's scan, and the clips of --count stepped side by "
                       "side, a share on each thread (the same audio for any number)");
    sub->footer("The output holds the generated continuation only, not the prime.\n\n"
                "Seeds: on the CPU, clip k draws with --seed + k - 1, so clip 1 of --count N is the "
                "clip that --count 1 gives for the same seed. On CUDA each clip draws its own "
                "random stream of the seed (Philox): the same seed gives the same clips on the "
                "GPU, not the CPU's.\n\n"
                "Examples:\n"
                "  mambawave generate -m babble.safetensors --seconds 5 --out babble.wav\n"
                "  mambawave generate -m piano.safetensors -s 10 -o more.wav --prime intro.wav "
                "--temperature 0.9 --top-p 0.95 --seed 7\n"
                "  mambawave generate -m babble.safetensors -s 5 -o take.wav --count 64 --device cuda\n"
                "    (writes take_001.wav .. take_064.wav)\n"
                "  mambawave generate -m presets/digits_labelled.safetensors --label 7 -s 1.5 -o seven.wav\n"
                "    (a model trained with --label-prefix, asked for a label; guided at the weight it declares)\n"
                "  mambawave generate -m presets/digits_large.safetensors --label all --count 3 -s 1.5 -o digit.wav\n"
                "    (digit_0_001.wav .. digit_9_003.wav: each digit three times)\n"
                "  mambawave generate -m presets/digits_large.safetensors --label random --count 5 -s 1.5 -o some.wav\n"
                "    (some_001.wav .. some_005.wav: a digit drawn at random for each, listed when done)\n"
                "  mambawave generate -m presets/digits_labelled.safetensors --label 7 --count 5 --best-of 4 -s 1.5 -o seven.wav\n"
                "    (each of the five the best of four candidates, by the model's own hearing of its label)");
    sub->callback([o, sub] {
        o->guidance_given = sub->count("--guidance") > 0;
        run_generate(*o);
    });
}

} // namespace mw::cli
