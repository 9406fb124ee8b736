// `mambawave eval`: a model's quality on data it was not trained on. Effects: ESR and
// pre-emphasised ESR of the model's output against a recorded target. Generators: the
// negative log-likelihood of audio files in bits per sample (each file from the zero state).
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/train_data.h"

#include "model/engine.h"
#include "model/losses.h"
#include "model/model_file.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace mw::cli {

namespace {

struct EvalOptions {
    std::string model_path, input, target;
    std::vector<std::string> data;
    std::vector<std::string> controls;
    double max_latency_ms = 50;
    bool no_fix_latency = false;
    int64_t latency = -1;  // known latency of the target in samples (-1: look for it)
    bool json_out = false;
    int threads = 0;
};

std::string fmt_g(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.5g", v);
    return b;
}

void eval_effect(const EvalOptions& o, const Model& model) {
    const ModelConfig& c = model.config();
    const std::vector<float> user = resolve_controls(c, o.controls);
    const EffectPair pair = load_effect_pair(o.input, o.target, c.sample_rate_hz, o.max_latency_ms, !o.no_fix_latency, o.latency);
    const int I = c.n_in();
    const int64_t L = int64_t(pair.input.size());
    std::vector<float> x(size_t(L * I)), y(static_cast<size_t>(L));
    for (int64_t t = 0; t < L; ++t) {
        x[size_t(t * I)] = pair.input[size_t(t)];
        for (int k = 1; k < I; ++k) x[size_t(t * I + k)] = c.controls[size_t(k - 1)].normalise(user[size_t(k - 1)]);
    }
    Stopwatch clock;
    forward_continuous(model, Path::scan, x.data(), L, y.data(), o.threads);
    throw_if_interrupted();
    const double esr = esr_sums(y.data(), pair.target.data(), L, 0.0).esr();
    const double esr_pre = esr_sums(y.data(), pair.target.data(), L, kPreemphasis).esr();
    if (o.json_out) {
        std::cout << nlohmann::json{{"esr", esr}, {"esr_preemph", esr_pre}, {"samples", L},
                                    {"lag_samples", pair.lag}, {"model", o.model_path}, {"target", o.target}}
                         .dump()
                  << "\n";
    } else {
        std::cout << "ESR " << fmt_g(esr) << "  (pre-emphasised " << fmt_g(esr_pre) << ", a = " << kPreemphasis
                  << ") over " << L << " samples (" << fmt_g(double(L) / c.sample_rate_hz) << " s)"
                  << (pair.lag ? ", target shifted by " + std::to_string(pair.lag) + " samples" : "") << "; "
                  << speed_summary(double(L) / c.sample_rate_hz, clock.seconds()) << "\n";
    }
}

void eval_generator(const EvalOptions& o, const Model& model) {
    const ModelConfig& c = model.config();
    const std::vector<TokenSequence> clips = load_token_files(o.data, c.sample_rate_hz);
    NllSums total;
    Stopwatch clock;
    for (const TokenSequence& s : clips) {
        const int64_t L = int64_t(s.tokens.size()) - 1;
        std::vector<float> logits(size_t(L * c.vocab));
        forward_tokens(model, Path::scan, s.tokens.data(), L, logits.data(), o.threads);
        total += cross_entropy(logits.data(), s.tokens.data() + 1, L, c.vocab, 0, nullptr, 1.0);
        throw_if_interrupted();
    }
    if (o.json_out) {
        std::cout << nlohmann::json{{"nll_bits_per_sample", total.bits_per_sample()}, {"samples", total.count},
                                    {"files", clips.size()}, {"model", o.model_path}}
                         .dump()
                  << "\n";
    } else {
        std::cout << "NLL " << fmt_g(total.bits_per_sample()) << " bits per sample over " << total.count
                  << " predictions in " << clips.size() << " file" << (clips.size() == 1 ? "" : "s") << " ("
                  << speed_summary(double(total.count) / c.sample_rate_hz, clock.seconds()) << ")\n";
    }
}

void run_eval(const EvalOptions& o) {
    const Model model = load_model(o.model_path);
    const bool effect = model.config().kind == IoKind::continuous;
    if (effect) {
        if (o.input.empty() || o.target.empty() || !o.data.empty())
            throw UsageError(o.model_path + " is an effect: evaluate it with --input X.wav --target Y.wav "
                                            "(the recording of X through the real effect)");
        eval_effect(o, model);
    } else {
        if (o.data.empty() || !o.input.empty() || !o.target.empty() || !o.controls.empty())
            throw UsageError(o.model_path + " is a generator: evaluate it with --data FILES_OR_DIRS");
        eval_generator(o, model);
    }
}

} // namespace

void add_eval_command(CLI::App& app) {
    auto o = std::make_shared<EvalOptions>();
    CLI::App* sub = app.add_subcommand("eval", "Measure a model on held-out audio: ESR for effects, NLL for generators");
    add_model_option(*sub, o->model_path);
    sub->add_option("--input", o->input, "Effect: the dry input")->check(CLI::ExistingFile);
    sub->add_option("--target", o->target, "Effect: the real effect's recording of --input")->check(CLI::ExistingFile);
    add_controls_option(*sub, o->controls);
    sub->add_option("--data", o->data, "Generator: audio files and/or directories");
    sub->add_option("--max-latency-ms", o->max_latency_ms, "Effect: largest latency looked for")->capture_default_str();
    sub->add_flag("--no-fix-latency", o->no_fix_latency, "Effect: refuse a misaligned pair instead of shifting it");
    sub->add_option("--latency", o->latency,
                    "Effect: the target is late by this many samples (measured, e.g. a manifest's latency_samples); "
                    "default: found from the pair")
        ->check(CLI::NonNegativeNumber);
    sub->add_flag("--json", o->json_out,
                  "One JSON object: esr, esr_preemph, samples (effects) or nll_bits_per_sample, samples");
    add_threads_option(*sub, o->threads);
    sub->footer("ESR is the error-to-signal ratio, sum (y - target)^2 / sum target^2: 0 is perfect, 1 is as\n"
                "wrong as silence; below 0.01 is hard to tell apart by ear on most material. The\n"
                "pre-emphasised ESR filters both with 1 - 0.95 z^-1 first, weighting the treble.\n"
                "NLL is the average surprise of the model at each next sample, in bits: 8 is a\n"
                "model that knows nothing of 8-bit audio; lower is better.\n\n"
                "Examples:\n"
                "  mambawave eval -m ts9.safetensors --input dry.wav --target pedal.wav -c drive=0.5\n"
                "  mambawave eval -m digits.safetensors --data fsdd/test --json");
    sub->callback([o] { run_eval(*o); });
}

} // namespace mw::cli
