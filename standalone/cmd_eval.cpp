// `mambawave eval`: a model's quality on data it was not trained on. Effects: ESR and
// pre-emphasised ESR of the model's output against a recorded target. Generators: the
// negative log-likelihood of audio files in bits per sample (each file from the zero state).
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/progress.h"
#include "standalone/train_data.h"

#include "model/engine.h"
#include "model/losses.h"
#include "model/model_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <iostream>

namespace mw::cli {

namespace {

namespace fs = std::filesystem;

struct EvalOptions {
    std::string model_path, input, target, manifest, effect, split = "test";
    bool record = false;
    std::vector<std::string> data;
    std::vector<std::string> controls;
    double max_latency_ms = 50;
    bool no_fix_latency = false;
    int64_t latency = -1;  // known latency of the target in samples (-1: look for it)
    bool json_out = false;
    bool classify = false;
    int threads = 0;
};

struct PairScore {
    double esr = 0, esr_preemph = 0;
    int64_t samples = 0, lag = 0;
    double seconds = 0;  // of audio
};

// The model over one aligned pair with the controls (user units) held fixed.
PairScore score_pair(const Model& model, const EffectPair& pair, const std::vector<float>& user, int threads) {
    const ModelConfig& c = model.config();
    const int64_t L = int64_t(pair.input.size());
    std::vector<float> x, y(static_cast<size_t>(L));
    effect_input(c, pair.input.data(), L, user.data(), x);
    forward_continuous(model, Path::scan, x.data(), L, y.data(), threads);
    throw_if_interrupted();
    return {esr_sums(y.data(), pair.target.data(), L, 0.0).esr(), esr_sums(y.data(), pair.target.data(), L, kPreemphasis).esr(),
            L, pair.lag, double(L) / c.sample_rate_hz};
}

void eval_effect(const EvalOptions& o, const Model& model) {
    const ModelConfig& c = model.config();
    const std::vector<float> user = resolve_controls(c, o.controls);
    const EffectPair pair = load_effect_pair(o.input, o.target, c.sample_rate_hz, o.max_latency_ms, !o.no_fix_latency, o.latency);
    Stopwatch clock;
    const PairScore r = score_pair(model, pair, user, o.threads);
    if (o.json_out) {
        std::cout << nlohmann::json{{"esr", r.esr}, {"esr_preemph", r.esr_preemph}, {"samples", r.samples},
                                    {"lag_samples", r.lag}, {"model", o.model_path}, {"target", o.target}}
                         .dump()
                  << "\n";
    } else {
        std::cout << "ESR " << fmt_g(r.esr) << "  (pre-emphasised " << fmt_g(r.esr_preemph) << ", a = " << kPreemphasis
                  << ") over " << r.samples << " samples (" << fmt_g(r.seconds) << " s)"
                  << (r.lag ? ", target shifted by " + std::to_string(r.lag) + " samples" : "") << "; "
                  << speed_summary(r.seconds, clock.seconds()) << "\n";
    }
}

// Mean and worst of per-pair scores, grouped by a key.
struct Group {
    int pairs = 0;
    double esr_sum = 0, esr_pre_sum = 0, esr_max = 0, seconds = 0;
    std::string worst;
    void add(const PairScore& r, const std::string& name) {
        ++pairs;
        esr_sum += r.esr;
        esr_pre_sum += r.esr_preemph;
        seconds += r.seconds;
        if (r.esr >= esr_max) esr_max = r.esr, worst = name;
    }
    double esr_mean() const { return pairs ? esr_sum / pairs : 0.0; }
    double esr_preemph_mean() const { return pairs ? esr_pre_sum / pairs : 0.0; }
    nlohmann::json to_json() const {
        return {{"pairs", pairs},        {"esr_mean", esr_mean()}, {"esr_preemph_mean", esr_preemph_mean()},
                {"esr_max", esr_max},    {"worst", worst},         {"seconds", seconds}};
    }
};

std::string setting_text(const std::vector<std::pair<std::string, float>>& controls) {
    std::string s;
    for (const auto& [name, v] : controls) s += (s.empty() ? "" : " ") + name + "=" + fmt_g(v);
    return s.empty() ? "(no controls)" : s;
}

// Every pair of one effect and split in a capture manifest, each at its own knob settings:
// ESR per pair, then mean and worst per set (e.g. synthetic vs real recordings) and per knob
// setting. --record writes the summary into the model file's training record.
void eval_manifest(const EvalOptions& o, Model& model) {
    const ModelConfig& c = model.config();
    std::vector<ManifestPair> pairs;
    for (ManifestPair& p : read_manifest_pairs(o.manifest, o.effect))
        if (o.split == "all" || p.split == o.split) pairs.push_back(std::move(p));
    if (pairs.empty())
        throw UsageError(o.manifest + ": effect \"" + o.effect + "\" has no pairs in split \"" + o.split + "\"");
    std::map<std::string, Group> by_set, by_setting;
    Group all;
    nlohmann::json rows = nlohmann::json::array();
    Stopwatch clock;
    const bool table = !o.json_out;
    if (table) std::printf("%-44s %-12s %-26s %10s %12s\n", "target", "set", "setting", "ESR", "ESR pre-emph");
    for (const ManifestPair& p : pairs) {
        if (p.controls.size() != c.controls.size())
            throw UsageError(o.manifest + ": " + p.name + " sets " + std::to_string(p.controls.size()) +
                             " controls, but " + o.model_path + " has " + std::to_string(c.controls.size()));
        std::vector<float> user;
        try {
            user = resolve_controls(c, p.controls);  // unknown names and out-of-range values
        } catch (const UsageError& e) {
            throw UsageError(o.manifest + ": " + p.name + ": " + e.what());
        }
        const EffectPair pair = load_effect_pair(p.input, p.target, c.sample_rate_hz, o.max_latency_ms, !o.no_fix_latency, p.latency);
        const PairScore r = score_pair(model, pair, user, o.threads);
        const std::string setting = setting_text(p.controls), set = p.set.empty() ? p.split : p.set;
        by_set[set].add(r, p.name);
        by_setting[setting].add(r, p.name);
        all.add(r, p.name);
        rows.push_back({{"target", p.name}, {"set", set}, {"setting", setting}, {"esr", r.esr},
                        {"esr_preemph", r.esr_preemph}, {"samples", r.samples}});
        if (table)
            std::printf("%-44s %-12s %-26s %10.5f %12.5f\n", p.name.c_str(), set.c_str(), setting.c_str(), r.esr,
                        r.esr_preemph);
    }
    nlohmann::json sets = nlohmann::json::object(), settings = nlohmann::json::object();
    for (const auto& [k, g] : by_set) sets[k] = g.to_json();
    const Group* worst_setting = nullptr;
    std::string worst_setting_name;
    for (const auto& [k, g] : by_setting) {
        settings[k] = g.to_json();
        if (!worst_setting || g.esr_mean() > worst_setting->esr_mean()) worst_setting = &g, worst_setting_name = k;
    }
    nlohmann::json summary = {{"manifest", o.manifest},
                              {"effect", o.effect},
                              {"split", o.split},
                              {"pairs", all.pairs},
                              {"seconds", all.seconds},
                              {"esr_mean", all.esr_mean()},
                              {"esr_preemph_mean", all.esr_preemph_mean()},
                              {"esr_max", all.esr_max},
                              {"worst_setting", worst_setting_name},
                              {"worst_setting_esr_mean", worst_setting->esr_mean()},
                              {"sets", sets}};
    if (o.record) {
        nlohmann::json record = nlohmann::json::parse(c.training_json.empty() ? "{}" : c.training_json, nullptr, false);
        if (!record.is_object()) record = nlohmann::json::object();
        nlohmann::json kept = summary;
        kept["settings"] = settings;
        record["evaluation"][o.split] = kept;
        model.mutable_config().training_json = record.dump();
        save_model(model, o.model_path);
    }
    if (o.json_out) {
        nlohmann::json out = summary;
        out["settings"] = settings;
        out["per_pair"] = rows;
        out["model"] = o.model_path;
        std::cout << out.dump() << "\n";
        return;
    }
    std::printf("\nper set (mean and worst ESR over its pairs):\n");
    for (const auto& [k, g] : by_set)
        std::printf("  %-12s %3d pairs, %7.1f s   ESR mean %.5f  worst %.5f (%s)\n", k.c_str(), g.pairs, g.seconds,
                    g.esr_mean(), g.esr_max, g.worst.c_str());
    std::printf("per knob setting (mean ESR over its pairs):\n");
    for (const auto& [k, g] : by_setting) std::printf("  %-26s %3d pairs   ESR mean %.5f\n", k.c_str(), g.pairs, g.esr_mean());
    std::printf("all %d pairs: ESR mean %.5f, worst setting %s at %.5f; %s\n", all.pairs, all.esr_mean(),
                worst_setting_name.c_str(), worst_setting->esr_mean(), speed_summary(all.seconds, clock.seconds()).c_str());
    if (o.record) std::printf("recorded under training.evaluation.%s in %s\n", o.split.c_str(), o.model_path.c_str());
}

// --classify: the generator as a classifier of its own labels. Each clip is scored under every
// label's prefix; the label whose prefix makes the clip likeliest is the model's guess (Bayes with
// a uniform prior): whether the model has learnt what tells its labels apart (docs/DIGITS.md sets
// it beside how a separate classifier hears the model's own samples).
struct LabelGuesses {
    int K = 0;
    std::vector<int64_t> confusion;  // [true][guessed]
    int64_t right() const {
        int64_t n = 0;
        for (int k = 0; k < K; ++k) n += confusion[size_t(k * K + k)];
        return n;
    }
    int64_t total() const {
        int64_t n = 0;
        for (int64_t v : confusion) n += v;
        return n;
    }
    double accuracy() const { return total() ? double(right()) / double(total()) : 0.0; }
};

void print_confusion(const LabelGuesses& g, const ModelConfig& c) {
    std::printf("as a classifier of its own labels (the label whose prefix makes the clip likeliest): "
                "%lld of %lld right (%.1f%%)\nrows: the clip's label; columns: the model's guess\n      ",
                static_cast<long long>(g.right()), static_cast<long long>(g.total()), 100.0 * g.accuracy());
    for (int k = 0; k < g.K; ++k) std::printf(" %5.5s", c.labels[size_t(k)].c_str());
    std::printf("\n");
    for (int t = 0; t < g.K; ++t) {
        std::printf("%5.5s ", c.labels[size_t(t)].c_str());
        for (int k = 0; k < g.K; ++k) std::printf(" %5lld", static_cast<long long>(g.confusion[size_t(t * g.K + k)]));
        std::printf("\n");
    }
}

void eval_generator(const EvalOptions& o, const Model& model) {
    const ModelConfig& c = model.config();
    if (o.classify && !c.labelled())
        throw UsageError("--classify guesses each clip's label with the model: " + o.model_path +
                         " has no labels (train it with --label-prefix)");
    std::vector<TokenSequence> clips = load_token_files(o.data, c.sample_rate_hz, {}, o.threads);
    // a labelled model hears each clip as in training: led by its label's prefix, unscored
    if (c.labelled())
        for (TokenSequence& s : clips) lead_with_label(s, c, o.model_path);
    NllSums total;
    Stopwatch clock;
    TokenForward forward(model, o.threads);  // made once for every clip
    std::vector<float> logits;
    const int K = int(c.labels.size());
    LabelGuesses guesses{K, std::vector<int64_t>(size_t(K) * size_t(K), 0)};
    const int passes = o.classify ? K : 1;  // --classify: every clip under every label's prefix
    double audio_seconds = 0, done_seconds = 0;
    for (const TokenSequence& s : clips) audio_seconds += passes * double(s.tokens.size()) / c.sample_rate_hz;
    ProgressBar bar("eval", audio_seconds);
    std::vector<int32_t> relabelled;
    std::vector<double> nats(static_cast<size_t>(passes), 0.0);  // --classify: the clip's log-likelihood under each label
    nlohmann::json per_file = nlohmann::json::array();
    for (const TokenSequence& s : clips) {
        const int64_t L = int64_t(s.tokens.size()) - 1;
        logits.resize(size_t(L * c.vocab));
        const int own = o.classify ? c.label_index(label_from_name(s, "--classify")) : -1;
        int guess = 0;
        double best = -std::numeric_limits<double>::infinity();
        if (o.classify) relabelled = s.tokens;
        for (int k = 0; k < passes; ++k) {
            const int32_t* tokens = s.tokens.data();
            if (o.classify) {  // the clip led by label k's prefix (only the prefix differs between passes)
                std::fill_n(relabelled.begin(), c.label_prefix, ModelConfig::label_token(k));
                tokens = relabelled.data();
            }
            forward.run(tokens, L, logits.data());
            const NllSums nll = cross_entropy(logits.data(), tokens + 1, L, c.vocab, std::min(s.unscored, L), nullptr, 1.0);
            if (!o.classify || k == own) total += nll;
            if (-nll.nats > best) best = -nll.nats, guess = k;
            nats[size_t(k)] = -nll.nats;
            throw_if_interrupted();
            done_seconds += double(s.tokens.size()) / c.sample_rate_hz;
            bar.update(done_seconds);
        }
        if (o.classify) {
            ++guesses.confusion[size_t(own * K + guess)];
            double sum = 0;  // the own label's posterior under a uniform prior
            for (double v : nats) sum += std::exp(v - best);
            per_file.push_back({{"file", s.name}, {"label", c.labels[size_t(own)]}, {"guess", c.labels[size_t(guess)]},
                                {"posterior", std::exp(nats[size_t(own)] - best) / sum},
                                {"log_likelihood_nats", nats}});
        }
    }
    bar.finish();
    if (o.json_out) {
        nlohmann::json out{{"nll_bits_per_sample", total.bits_per_sample()}, {"samples", total.count},
                           {"files", clips.size()}, {"model", o.model_path}};
        if (o.classify) {
            out["label_accuracy"] = guesses.accuracy();
            out["labels"] = c.labels;
            nlohmann::json rows = nlohmann::json::array();
            for (int t = 0; t < K; ++t)
                rows.push_back(std::vector<int64_t>(guesses.confusion.begin() + t * K, guesses.confusion.begin() + (t + 1) * K));
            out["confusion"] = rows;
            out["per_file"] = per_file;
        }
        std::cout << out.dump() << "\n";
    } else {
        std::cout << "NLL " << fmt_g(total.bits_per_sample()) << " bits per sample over " << total.count
                  << " predictions in " << clips.size() << " file" << (clips.size() == 1 ? "" : "s") << " ("
                  << (o.classify ? "under each of " + std::to_string(K) + " labels: " : std::string())
                  << speed_summary(passes * double(total.count) / c.sample_rate_hz, clock.seconds()) << ")\n";
        if (o.classify) print_confusion(guesses, c);
    }
}

void run_eval(const EvalOptions& o) {
    Model model = load_model(o.model_path);
    const bool effect = model.config().kind == IoKind::continuous;
    if (effect && o.classify)
        throw UsageError("--classify is for labelled generators (it guesses each clip's label): " + o.model_path +
                         " is an effect");
    if (!o.manifest.empty() || o.record) {
        if (!effect) throw UsageError(o.model_path + " is a generator: --manifest evaluates effects; use --data FILES_OR_DIRS");
        if (o.manifest.empty() || o.effect.empty())
            throw UsageError("--manifest needs --effect NAME (and --record needs --manifest)");
        if (!o.input.empty() || !o.target.empty() || !o.controls.empty() || o.latency >= 0)
            throw UsageError("--manifest takes each pair's files, controls and latency from the manifest: "
                             "drop --input/--target/--control/--latency");
        if (o.record && fs::is_directory(o.model_path))
            throw UsageError("--record writes into a MambaWave .safetensors file, not an HF checkpoint directory");
        eval_manifest(o, model);
    } else if (effect) {
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
    sub->add_option("--data", o->data,
                    "Generator: audio files and/or directories. A model trained with --label-prefix hears "
                    "each file led by its label's prefix, the label from the file name up to the first '_' "
                    "as in training (the prefix's predictions unscored)");
    sub->add_option("--manifest", o->manifest,
                    "Effect: every pair of a captures manifest (docs/DATA.md), each at its own knob settings")
        ->check(CLI::ExistingFile);
    sub->add_option("--effect", o->effect, "Effect: which effect of --manifest");
    sub->add_option("--split", o->split, "Effect: which split of --manifest")
        ->check(CLI::IsMember({"test", "val", "train", "all"}))
        ->capture_default_str();
    sub->add_flag("--record", o->record,
                  "Write the --manifest summary into the model file's training record (training.evaluation.SPLIT)");
    sub->add_option("--max-latency-ms", o->max_latency_ms, "Effect: largest latency looked for")->capture_default_str();
    sub->add_flag("--no-fix-latency", o->no_fix_latency, "Effect: refuse a misaligned pair instead of shifting it");
    sub->add_option("--latency", o->latency,
                    "Effect: the target is late by this many samples (measured, e.g. a manifest's latency_samples); "
                    "default: found from the pair")
        ->check(CLI::NonNegativeNumber);
    sub->add_flag("--json", o->json_out,
                  "One JSON object: esr, esr_preemph, samples (effects) or nll_bits_per_sample, samples "
                  "(generators; with --classify also label_accuracy, labels, confusion, and per_file: each "
                  "file's label, the model's guess, the posterior of its label and its log-likelihood "
                  "under each label)");
    sub->add_flag("--classify", o->classify,
                  "Labelled generator: also use the model as a classifier of its own labels. Each clip is "
                  "scored under every label's prefix and the likeliest label is its guess; prints the "
                  "accuracy against the labels in the file names and the confusion matrix. As many times "
                  "the work as the model has labels");
    add_threads_option(*sub, o->threads);
    sub->footer("ESR is the error-to-signal ratio, sum (y - target)^2 / sum target^2: 0 is perfect, 1 is as\n"
                "wrong as silence; below 0.01 is hard to tell apart by ear on most material. The\n"
                "pre-emphasised ESR filters both with 1 - 0.95 z^-1 first, weighting the treble.\n"
                "NLL is the average surprise of the model at each next sample, in bits: 8 is a\n"
                "model that knows nothing of 8-bit audio; lower is better.\n\n"
                "Examples:\n"
                "  mambawave eval -m ts9.safetensors --input dry.wav --target pedal.wav -c drive=0.5\n"
                "  mambawave eval -m presets/ts9.safetensors --manifest data/captures/manifest.json --effect ts9\n"
                "  mambawave eval -m digits.safetensors --data fsdd/test --json\n"
                "  mambawave eval -m presets/digits_large.safetensors --data held_out/ --classify");
    sub->callback([o] { run_eval(*o); });
}

} // namespace mw::cli
