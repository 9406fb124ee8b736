// `mambawave train`: trains an effect from a capture (input + recorded target, or a manifest
// of captures with knob settings) or a generator from a folder of audio, on the CPU cores.
// Validation every N steps; the best model so far is exported to --out with its training
// record; checkpoints every N steps and on Ctrl-C or SIGTERM; --resume continues exactly; a CSV log and
// a PNG plot of the curves sit in the run directory.
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/ranks.h"
#include "standalone/train_data.h"

#include "dsp/audio_file.h"
#include "model/model_file.h"
#include "model/trainer.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

namespace mw::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A small JSON file of a run directory (init.json, best.json), read back on --resume: a damaged
// one is refused with its name.
json read_run_json(const std::string& path, const std::function<void(const json&)>& use = nullptr) {
    try {
        std::ifstream f(path);
        json j = json::parse(f);
        if (use) use(j);
        return j;
    } catch (const json::exception& e) {
        throw std::runtime_error(path + ": damaged (" + std::string(e.what()) +
                                 "); delete it, or start the run again without --resume");
    }
}

struct TrainCliOptions {
    // data
    std::string input, target, manifest, effect;
    std::vector<std::string> data;
    double val_fraction = 0.1;
    double max_latency_ms = 50;
    bool no_fix_latency = false;
    // model
    std::string out, init, run_dir, description;
    int d_model = 16, layers = 4, d_state = 16, expand = 2;
    std::string lti = "none";
    std::string pool = "none";
    int label_prefix = 0;  // generators: samples of a label's token before each clip (0: none)
    std::string speed_perturb = "none";  // generators: training clips also at these speeds
    double pad_end_s = 0;                // generators: seconds of silence after each training clip
    double rate_hz = 0;  // 0: the data's (effects) or 8000 (generators)
    bool no_skip = false;
    // optimisation
    TrainOptions t;
    std::string device = "auto";
    int64_t checkpoint_every = 500;
    bool resume = false;
    bool json_out = false;
    bool no_plot = false;
    // data parallel: --gpus N starts N ranks of this command (standalone/ranks.h), which get
    // --rank, --world-size and --rendezvous
    int gpus = 1;
    int rank = -1, world_size = 1;
    std::string rendezvous;
};

std::string fmt(double v, int digits) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", digits, v);
    return b;
}
std::string clock_text(double seconds) {
    const int64_t s = int64_t(seconds + 0.5);
    char b[32];
    if (s >= 3600) std::snprintf(b, sizeof b, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
    else std::snprintf(b, sizeof b, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
    return b;
}

// The progress line: a bar on a terminal (redrawn at most 5 times a second), plain lines at
// each validation otherwise.
class TrainProgress {
public:
    TrainProgress(int64_t total_steps, const char* metric) : total_(total_steps), metric_(metric), tty_(isatty(2)) {}
    void update(const StepStats& s, double samples_per_s, double eta_s, double val, double best) {
        if (!tty_) return;
        const auto now = std::chrono::steady_clock::now();
        if (s.step != total_ && now - last_ < std::chrono::milliseconds(200)) return;
        last_ = now;
        const int width = 20, filled = int(double(width) * double(s.step) / double(total_));
        std::string bar(size_t(filled), '#');
        bar.append(size_t(width - filled), '-');
        std::fprintf(stderr, "\rtrain [%s] %3d%%  step %lld/%lld  loss %s  val %s %s (best %s)  %s samples/s  ETA %s  ",
                     bar.c_str(), int(100 * s.step / total_), (long long)s.step, (long long)total_,
                     fmt_g(s.loss, 4).c_str(), metric_, val >= 0 ? fmt_g(val, 4).c_str() : "-",
                     best >= 0 ? fmt_g(best, 4).c_str() : "-", fmt_g(samples_per_s, 4).c_str(), clock_text(eta_s).c_str());
        std::fflush(stderr);
        drawn_ = true;
    }
    void line(const std::string& text) {
        if (drawn_) std::fprintf(stderr, "\r\033[K");
        std::fprintf(stderr, "%s\n", text.c_str());
        drawn_ = false;
    }
    ~TrainProgress() {
        if (drawn_) std::fprintf(stderr, "\n");
    }

private:
    int64_t total_;
    const char* metric_;
    bool tty_, drawn_ = false;
    std::chrono::steady_clock::time_point last_{};
};

// The CSV log: one row per step, validation columns filled where it ran. On resume the rows
// after the checkpoint's step are dropped, so the log matches the run that continues.
class CsvLog {
public:
    CsvLog(const std::string& path, int64_t keep_until_step) : path_(path) {
        std::vector<std::string> kept;
        if (keep_until_step > 0) {
            std::ifstream in(path);
            std::string row;
            while (std::getline(in, row)) {
                if (row.empty() || row[0] == 's') continue;
                if (std::stoll(row.substr(0, row.find(','))) <= keep_until_step) kept.push_back(row);
            }
        }
        out_.open(path, std::ios::trunc);
        if (!out_) throw std::runtime_error("cannot write the training log " + path);
        out_ << "step,loss,lr,grad_norm,samples_per_s,wall_s,val_metric,val_esr_preemph\n";
        for (const std::string& r : kept) out_ << r << "\n";
        out_.flush();
    }
    void row(const StepStats& s, double samples_per_s, double wall_s, const ValStats* v) {
        out_ << s.step << "," << s.loss << "," << s.lr << "," << s.grad_norm << "," << samples_per_s << ","
             << wall_s << ",";
        if (v) out_ << v->metric << "," << v->esr_preemph;
        else out_ << ",";
        out_ << "\n";
        out_.flush();
    }

private:
    std::string path_;
    std::ofstream out_;
};

Model initial_model(const TrainCliOptions& o, bool effect, double rate_hz, const std::vector<ControlSpec>& controls,
                    const std::vector<std::string>& labels) {
    if (!o.init.empty()) {
        if (o.lti != "none" || o.pool != "none")
            throw UsageError(std::string(o.lti != "none" ? "--lti" : "--pool") + " makes a fresh model; with --init " +
                             o.init + " the layers are that model's (drop it, or --init)");
        Model m = load_model(o.init);
        if ((m.config().kind == IoKind::continuous) != effect)
            throw UsageError(o.init + ": a " + std::string(kind_name(m.config().kind)) + " model, but the data is for " +
                             (effect ? "an effect" : "a generator"));
        if (m.config().sample_rate_hz != rate_hz)
            throw UsageError(o.init + ": runs at " + fmt(m.config().sample_rate_hz, 0) + " Hz, the data was prepared at " +
                             fmt(rate_hz, 0) + " Hz (give --rate " + fmt(m.config().sample_rate_hz, 0) + ")");
        if (effect && m.config().n_cond() != int(controls.size()))
            throw UsageError(o.init + ": has " + std::to_string(m.config().n_cond()) + " controls, the data gives " +
                             std::to_string(controls.size()));
        if (m.config().label_prefix != o.label_prefix || m.config().labels != labels)
            throw UsageError(o.init + ": " +
                             (m.config().labelled() ? "was trained with --label-prefix " +
                                                          std::to_string(m.config().label_prefix) + " and " +
                                                          std::to_string(m.config().labels.size()) + " labels"
                                                    : std::string("has no labels")) +
                             "; this run gives --label-prefix " + std::to_string(o.label_prefix) + " and " +
                             std::to_string(labels.size()) + " labels from the file names: they must agree");
        m.mutable_config().untrained = false;
        return m;
    }
    ModelConfig c = make_config(effect ? IoKind::continuous : IoKind::mulaw8, o.d_model, o.layers, o.d_state, o.expand);
    c.sample_rate_hz = rate_hz;
    c.pool = parse_pool(o.pool);
    if (c.pooled()) {
        if (effect) throw UsageError("--pool is for generators: an effect answers every sample at once");
        c.n_layers = o.layers * c.stacks();  // --layers: per stack
    }
    c.lti_layers = parse_lti_layers(o.lti, c.n_layers);
    if (effect) {
        c.controls = controls;
        c.skip = !o.no_skip;
    }
    c.labels = labels;
    c.label_prefix = o.label_prefix;
    c.validate("--d-model/--layers/--d-state/--expand");
    Model m(c);
    m.init_random(o.t.seed);
    return m;
}

std::string find_plot_script() {
    const fs::path candidates[] = {fs::path(MW_SOURCE_DIR) / "scripts" / "plot_training.py",
                                   fs::read_symlink("/proc/self/exe").parent_path() / "../../scripts/plot_training.py"};
    for (const fs::path& p : candidates)
        if (fs::exists(p)) return p.string();
    return "";
}

// Draws the curves with scripts/plot_training.py (matplotlib). Returns "" or why not.
std::string plot(const std::string& csv, const std::string& png, const std::string& title) {
    const std::string script = find_plot_script();
    if (script.empty()) return "scripts/plot_training.py not found";
    // Debian's python3 has matplotlib (python3-matplotlib); a python3 earlier on PATH may not.
    const std::string python = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    const std::string cmd = python + " '" + script + "' '" + csv + "' '" + png + "' '" + title + "' 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return "cannot run python3";
    std::string output;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) output += buf;
    const int rc = pclose(p);
    return rc == 0 ? "" : output.empty() ? "plot script failed" : output;
}

std::string run_dir_of(const TrainCliOptions& o) {
    return o.run_dir.empty() ? (fs::path(o.out).replace_extension("").string() + ".run") : o.run_dir;
}

// --gpus N: this process starts the N ranks and waits for them.
void launch_ranks(const TrainCliOptions& o) {
    std::string why;
    if (o.device == "cpu") throw UsageError("--gpus " + std::to_string(o.gpus) + " trains on GPUs; leave out --device cpu");
    if (!cuda_available(&why)) throw UsageError("--gpus " + std::to_string(o.gpus) + ": " + why);
    if (!nccl_available())
        throw UsageError("--gpus " + std::to_string(o.gpus) + ": this build has no NCCL (it is looked for next to the "
                         "CUDA toolkit or under $NCCL_HOME when CMake configures; README, 'Multi-GPU training')");
    if (o.t.batch < o.gpus)
        throw UsageError("--batch " + std::to_string(o.t.batch) + " is smaller than --gpus " + std::to_string(o.gpus) +
                         ": the global batch is shared out, each GPU needs a lane");
    if (o.out.empty()) throw UsageError("--out MODEL.safetensors is required: where the trained model goes");
    const int code = run_ranks(o.gpus, run_dir_of(o));
    if (is_interrupted_exit(code)) throw Interrupted("interrupted: every rank stopped at the same step; continue with --resume");
    if (code != 0) throw std::runtime_error("a training rank failed (exit code " + std::to_string(code) + ")");
}

void run_train(TrainCliOptions o) {
    if (o.gpus > 1 && o.rank < 0) return launch_ranks(o);
    const bool ranked = o.rank >= 0;
    const bool writer = !ranked || o.rank == 0;  // only rank 0 writes the model, log and curves
    std::string why;
    if (o.device == "cuda" && !cuda_available(&why)) throw UsageError("--device cuda: " + why);
    o.t.device = o.device == "cuda" || (o.device == "auto" && cuda_available()) ? Device::cuda : Device::cpu;
    if (o.t.tf32 && o.t.device != Device::cuda)
        throw UsageError("--tf32 is for training on the GPU; this run is on the CPU (--device " + o.device + ")");
    if (ranked) {
        if (o.t.device != Device::cuda) throw UsageError("--rank: data-parallel ranks train on GPUs");
        o.t.comm = make_nccl_communicator(o.rank, o.world_size, o.rendezvous);
        note("rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) + " (" + o.t.comm->describe() + ")");
    }
    note(o.t.device == Device::cuda ? "training on " + cuda_device_name() + " (CUDA)" : std::string("training on the CPU"));

    const bool pair_mode = !o.input.empty() || !o.target.empty();
    const bool manifest_mode = !o.manifest.empty();
    const bool generator_mode = !o.data.empty();
    if (int(pair_mode) + int(manifest_mode) + int(generator_mode) != 1)
        throw UsageError("give one kind of data: --input with --target (one capture), --manifest with --effect "
                         "(captures with knob settings), or --data (audio for a generator)");
    if (pair_mode && (o.input.empty() || o.target.empty()))
        throw UsageError("--input and --target go together: the signal sent into the gear and its recording");
    if (manifest_mode && o.effect.empty()) throw UsageError("--manifest needs --effect NAME (which effect to train)");
    const bool effect = !generator_mode;
    if (effect && o.t.self_feed > 0)
        throw UsageError("--self-feed is for generators (--data): an effect's input is audio, not the model's own "
                         "mu-law classes");
    if (o.t.self_feed_ramp > 0 && !(o.t.self_feed > 0))
        throw UsageError("--self-feed-ramp " + std::to_string(o.t.self_feed_ramp) +
                         " raises --self-feed's chance from 0: give --self-feed P too");
    if (o.out.empty()) throw UsageError("--out MODEL.safetensors is required: where the trained model goes");
    const std::string run_dir = run_dir_of(o);
    const std::string ckpt_dir = (fs::path(run_dir) / "checkpoint").string();
    if (!o.resume && fs::exists(fs::path(ckpt_dir) / "trainer.safetensors"))
        throw UsageError(run_dir + " holds a checkpoint of an earlier run: continue it with --resume, or give "
                         "another --run-dir (or delete that directory)");
    if (o.resume && !fs::exists(fs::path(ckpt_dir) / "trainer.safetensors"))
        throw UsageError("--resume: no checkpoint in " + ckpt_dir);

    // Data at the model's rate.
    double rate_hz = o.rate_hz;
    if (o.resume) rate_hz = load_model((fs::path(ckpt_dir) / "model.safetensors").string()).config().sample_rate_hz;
    else if (!o.init.empty()) rate_hz = load_model(o.init).config().sample_rate_hz;
    TrainData data;
    std::vector<ControlSpec> controls;
    std::vector<std::string> labels;  // --label-prefix: from the file names
    std::string metric_name = effect ? "esr" : "nll_bits_per_sample";
    json record_data;
    if (pair_mode) {
        if (rate_hz == 0) rate_hz = dsp::read_audio(o.target).sample_rate_hz;
        const EffectPair pair = load_effect_pair(o.input, o.target, rate_hz, o.max_latency_ms, !o.no_fix_latency);
        data = effect_data_from_pair(pair, o.val_fraction);
        record_data = {{"input", o.input}, {"target", o.target}, {"lag_samples", pair.lag}};
    } else if (manifest_mode) {
        if (rate_hz == 0) rate_hz = 48000;
        data = effect_data_from_manifest(o.manifest, o.effect, rate_hz, o.max_latency_ms, !o.no_fix_latency, controls);
        record_data = {{"manifest", o.manifest}, {"effect", o.effect}};
    } else {
        if (rate_hz == 0) rate_hz = 8000;
        std::string rule;
        const std::vector<double> speeds = parse_speeds(o.speed_perturb);
        data = token_data_split(load_token_files(o.data, rate_hz, speeds, o.t.threads), rule);
        record_data = {{"paths", o.data}, {"split", rule}};
        if (!speeds.empty()) record_data["speed_perturb"] = speeds;
        if (o.label_prefix > 0) {
            labels = add_label_prefix(data, o.label_prefix);
            record_data["label_prefix"] = o.label_prefix;
        }
        if (o.pad_end_s > 0) {
            pad_training_ends(data, std::max<int64_t>(1, std::llround(o.pad_end_s * rate_hz)));
            record_data["pad_end_s"] = o.pad_end_s;
        }
    }
    if (effect && o.label_prefix > 0)
        throw UsageError("--label-prefix is for generators (--data): an effect's controls are its conditioning");
    if (effect && !parse_speeds(o.speed_perturb).empty())
        throw UsageError("--speed-perturb is for generators (--data): an effect's input and target must stay in step");
    if (effect && o.pad_end_s > 0)
        throw UsageError("--pad-end is for generators (--data): an effect learns from its input, which says when the "
                         "sound stops");
    record_data["description"] = data.description;
    int64_t train_samples = 0, val_samples = 0;
    for (const auto& s : data.effect_train) train_samples += int64_t(s.input.size());
    for (const auto& s : data.effect_val) val_samples += int64_t(s.input.size());
    for (const auto& s : data.token_train) train_samples += int64_t(s.tokens.size());
    for (const auto& s : data.token_val) val_samples += int64_t(s.tokens.size());
    note("data: " + data.description + "; " + fmt(double(train_samples) / rate_hz, 1) + " s to train on, " +
         fmt(double(val_samples) / rate_hz, 1) + " s to validate on, at " + fmt(rate_hz, 0) + " Hz");

    std::unique_ptr<Trainer> trainer;
    if (o.resume) {
        trainer = Trainer::resume(ckpt_dir, std::move(data), o.t.steps, o.t.threads, o.t.device, o.t.tf32, o.t.comm);
        note("resuming " + ckpt_dir + " at step " + std::to_string(trainer->steps_done()) + " of " +
             std::to_string(trainer->options().steps));
    } else {
        Model start = initial_model(o, effect, rate_hz, controls, labels);
        if (o.t.label_dropout > 0) {
            if (!start.config().labelled())
                throw UsageError("--label-dropout " + fmt(o.t.label_dropout, 3) +
                                 ": the model has no labels to drop (give --label-prefix, or --init a labelled model)");
            start.mutable_config().label_null = true;  // the file says guidance may use the null label
        }
        trainer = std::make_unique<Trainer>(std::move(start), std::move(data), o.t);
    }
    const TrainOptions& t = trainer->options();
    const ModelConfig& cfg = trainer->model().config();
    note("model: " + std::string(kind_name(cfg.kind)) + ", d_model " + std::to_string(cfg.d_model) + ", " +
         std::to_string(cfg.n_layers) + " layers (LTI: " + describe_lti_layers(cfg) + ")" +
         (cfg.pooled() ? ", pooled " + describe_pool(cfg) : std::string()) + ", d_state " +
         std::to_string(cfg.d_state) + ", " +
         std::to_string(trainer->model().parameter_count()) + " parameters; batch " + std::to_string(t.batch) +
         " x " + std::to_string(t.segment) + " samples, " + std::to_string(t.steps) + " steps" +
         (t.label_dropout > 0 ? ", label dropout " + fmt(t.label_dropout, 2) + " (null label " +
                                    std::to_string(cfg.null_label()) + ")"
                              : std::string()) +
         (t.self_feed > 0 ? ", self-feed " + fmt(t.self_feed, 2) : std::string()) +
         (t.self_feed_ramp > 0 ? " (from 0 over " + std::to_string(t.self_feed_ramp) + " steps)" : std::string()));

    fs::create_directories(run_dir);
    // A fine-tuned model keeps its history: the --init model's file and its own training record
    // go into the new record as "init" (nested, so a chain of fine-tunings reads back to its
    // first run). Saved in the run directory, so a --resume keeps it too.
    json init_record;
    const std::string init_path = (fs::path(run_dir) / "init.json").string();
    if (!o.resume && !o.init.empty()) {
        const std::string text = trainer->model().config().training_json;  // still the --init model's
        init_record = {{"file", o.init}, {"training", json::parse(text, nullptr, false)}};
        if (init_record["training"].is_discarded()) init_record["training"] = text;
        if (writer) std::ofstream(init_path) << init_record.dump();
    } else if (o.resume && fs::exists(init_path)) {
        init_record = read_run_json(init_path);
    } else if (!o.resume && writer) {
        fs::remove(init_path);
    }
    const std::string csv_path = (fs::path(run_dir) / "log.csv").string();
    const std::string png_path = (fs::path(run_dir) / "curves.png").string();
    const std::string best_path = (fs::path(run_dir) / "best.json").string();
    std::optional<CsvLog> log;
    if (writer) log.emplace(csv_path, o.resume ? trainer->steps_done() : 0);
    double best = -1;
    int64_t best_step = 0;
    // The run's clock and samples before this process: what clock.json says at the checkpoint's
    // step (written with every checkpoint). A run directory from before clock.json has only the
    // best model's time, which misses the steps after it.
    const std::string clock_path = (fs::path(ckpt_dir) / "clock.json").string();
    double wall_before = 0;
    int64_t samples_before = 0;
    if (o.resume && fs::exists(best_path))
        read_run_json(best_path, [&](const json& b) {
            best = b.at("metric").get<double>();
            best_step = b.at("step").get<int64_t>();
            wall_before = b.value("wall_s", 0.0);
        });
    if (o.resume && fs::exists(clock_path))
        read_run_json(clock_path, [&](const json& c) {
            if (c.at("step").get<int64_t>() != trainer->steps_done()) return;  // (not this checkpoint's)
            wall_before = c.at("wall_s").get<double>();
            samples_before = c.at("samples_seen").get<int64_t>();
        });
    const bool esr_metric = effect;
    TrainProgress progress(t.steps, esr_metric ? "ESR" : "bits");
    Stopwatch clock;
    double last_val = -1;
    int64_t samples_seen = samples_before;  // the whole run's
    double fb_s = 0, update_s = 0, val_s = 0;  // where this run's wall time went
    double gpu_wait_s = 0;                      // of fb_s, the host's waits for the GPU
    json options_json = options_to_json(t);  // a checkpoint's options, and where the run ran
    options_json["device"] = to_string(t.device);
    options_json["tf32"] = t.tf32;
    options_json["gpus"] = trainer->ranks();

    auto export_best = [&](const ValStats& v, int64_t step) {
        if (!writer) return;
        Model m = trainer->model();
        ModelConfig& c = m.mutable_config();
        c.untrained = false;
        json metric = {{"name", metric_name}, {"value", v.metric}, {"split", "validation"}};
        if (effect) metric["esr_preemph"] = v.esr_preemph;
        json record = {{"trainer", "mambawave train"}, {"data", record_data}, {"data_hash", trainer->data_hash()},
                             {"steps", step}, {"wall_seconds", wall_before + clock.seconds()},
                             {"samples_seen", samples_seen}, {"metric", metric}, {"options", options_json}};
        if (!init_record.is_null()) record["init"] = init_record;
        c.training_json = record.dump();
        if (!o.description.empty()) c.description = o.description;
        if (c.description.empty())
            c.description = effect ? "effect trained by mambawave train" : "generator trained by mambawave train";
        save_model(m, o.out);
        std::ofstream(best_path) << json{{"metric", v.metric}, {"step", step}, {"wall_s", wall_before + clock.seconds()}}.dump();
    };
    auto checkpoint = [&] {
        trainer->save_checkpoint(ckpt_dir);
        if (writer)
            std::ofstream(clock_path) << json{{"step", trainer->steps_done()}, {"wall_s", wall_before + clock.seconds()},
                                              {"samples_seen", samples_seen}}.dump();
    };

    const int64_t first_step = trainer->steps_done();
    double rate_window_start = clock.seconds();
    int64_t rate_window_samples = 0;
    double samples_per_s = 0;
    // The curves so far (unless --no-plot): "" or why there are none.
    auto draw_curves = [&] {
        std::string why;
        if (!o.no_plot && writer) why = plot(csv_path, png_path, fs::path(o.out).filename().string());
        if (!why.empty()) note("no plot: " + why);
        return why;
    };
    // --json's summary line; `stopped`: by Ctrl-C or SIGTERM, before the last step.
    auto print_json = [&](bool stopped) {
        json j = {{"model", best_step > 0 ? o.out : ""}, {"metric", metric_name}, {"best", best}, {"best_step", best_step},
                  {"steps", t.steps}, {"steps_done", trainer->steps_done()}, {"interrupted", stopped},
                  {"wall_seconds", wall_before + clock.seconds()}, {"samples_seen", samples_seen}, {"run_dir", run_dir},
                  {"samples_per_second", samples_per_s},
                  {"seconds", {{"forward_backward", fb_s}, {"update", update_s}, {"validation", val_s},
                               {"other", std::max(0.0, clock.seconds() - fb_s - update_s - val_s)}}},
                  {"gpu_wait_seconds", gpu_wait_s}};
        std::cout << j.dump() << "\n";
    };
    try {
        while (trainer->steps_done() < t.steps) {
            const StepStats s = trainer->step(interrupted());
            samples_seen += s.samples;
            rate_window_samples += s.samples;
            fb_s += s.forward_backward_s;
            gpu_wait_s += s.gpu_wait_s;
            update_s += s.update_s;
            const double now = clock.seconds();
            if (now - rate_window_start > 1.0 || samples_per_s == 0) {
                samples_per_s = double(rate_window_samples) / std::max(1e-9, now - rate_window_start);
                rate_window_start = now;
                rate_window_samples = 0;
            }
            ValStats v;
            const bool validate = s.step % t.validate_every == 0 || s.step == t.steps;
            if (validate) {
                const double v0 = clock.seconds();
                v = trainer->validate();
                val_s += clock.seconds() - v0;
                last_val = v.metric;
                if (best < 0 || v.metric < best) {
                    best = v.metric;
                    best_step = s.step;
                    export_best(v, s.step);
                }
                if (!isatty(2))
                    progress.line("step " + std::to_string(s.step) + "/" + std::to_string(t.steps) + "  loss " +
                                  fmt_g(s.loss, 4) + "  validation " + metric_name + " " + fmt_g(v.metric, 4) +
                                  (effect ? "  esr_preemph " + fmt_g(v.esr_preemph, 4) : "") + "  best " + fmt_g(best, 4) +
                                  "  " + fmt_g(samples_per_s, 4) + " samples/s");
            }
            if (log) log->row(s, samples_per_s, wall_before + now, validate ? &v : nullptr);
            const double per_step = now / double(std::max<int64_t>(1, s.step - first_step));
            progress.update(s, samples_per_s, per_step * double(t.steps - s.step), last_val, best);
            if (o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0) checkpoint();
            // every rank sees the same stop (a Ctrl-C on any of them), so all checkpoint together
            if (s.stop) throw Interrupted("interrupted");
        }
    } catch (const Interrupted&) {
        // The checkpoint, the curves so far and (--json) the summary, as at the end; the best
        // model so far was exported when it was validated.
        checkpoint();
        progress.line("interrupted at step " + std::to_string(trainer->steps_done()) + ": checkpoint saved in " +
                      ckpt_dir + "; continue with the same command and --resume");
        draw_curves();
        if (o.json_out) print_json(true);
        throw Interrupted(best_step > 0 ? "interrupted; the best model so far (step " + std::to_string(best_step) +
                                              ", validation " + metric_name + " " + fmt_g(best, 4) + ") is in " + o.out
                                        : "interrupted before the first validation; no model file was written");
    }
    checkpoint();
    progress.line("");
    const std::string plot_note = draw_curves();
    if (o.json_out) {
        print_json(false);
    } else {
        std::cout << "trained " << t.steps << " steps in " << clock_text(wall_before + clock.seconds()) << "; best validation "
                  << metric_name << " " << fmt_g(best, 4) << " at step " << best_step << " -> " << o.out << "\n"
                  << "  log " << csv_path << (plot_note.empty() ? ", curves " + png_path : "") << ", checkpoint "
                  << ckpt_dir << "\n";
    }
}

} // namespace

void add_train_command(CLI::App& app) {
    auto o = std::make_shared<TrainCliOptions>();
    CLI::App* sub = app.add_subcommand("train", "Train an effect from a capture, or a generator from audio files");
    sub->set_config("--config", "", "Read options from a TOML/INI file (key = value, names as the long options)");
    auto* g_data = sub->add_option_group("data");
    g_data->add_option("--input", o->input, "Effect: the signal sent into the gear (e.g. from capture-signal)");
    g_data->add_option("--target", o->target, "Effect: the gear's recorded output of --input");
    g_data->add_option("--manifest", o->manifest, "Effect: a captures manifest (JSON) with knob settings per pair");
    g_data->add_option("--effect", o->effect, "Effect: which effect of --manifest to train");
    g_data->add_option("--data", o->data, "Generator: audio files and/or directories of .wav/.flac");
    g_data->add_option("--val-fraction", o->val_fraction, "Effect from one capture: the tail held out for validation")
        ->capture_default_str();
    g_data->add_option("--max-latency-ms", o->max_latency_ms, "Largest latency looked for between input and target")
        ->capture_default_str();
    g_data->add_flag("--no-fix-latency", o->no_fix_latency, "Refuse a misaligned capture instead of shifting it");
    sub->add_option("--out,-o", o->out, "The trained model (.safetensors): the best validation model, kept up to date");
    sub->add_option("--description", o->description,
                    "One line saying what the model is (info and the plugin show it; default: the --init model's, "
                    "else \"effect/generator trained by mambawave train\")");
    sub->add_option("--run-dir", o->run_dir, "Checkpoint, log.csv and curves.png (default: OUT without .safetensors + .run)");
    sub->add_flag("--resume", o->resume, "Continue the run in --run-dir exactly where its checkpoint left off");
    auto* g_model = sub->add_option_group("model");
    g_model->add_option("--init", o->init, "Start from this model (fine-tuning) instead of a fresh one");
    g_model->add_option("--d-model", o->d_model, "Width")->capture_default_str()->check(CLI::Range(4, 1024));
    g_model->add_option("--layers", o->layers, "Mamba blocks")->capture_default_str()->check(CLI::Range(1, 64));
    g_model->add_option("--d-state", o->d_state, "SSM state per channel")->capture_default_str()->check(CLI::Range(1, 256));
    g_model->add_option("--expand", o->expand, "d_inner = expand * d_model")->capture_default_str()->check(CLI::Range(1, 8));
    g_model->add_option("--lti", o->lti,
                        "Layers whose SSM is time-invariant: B, C and Delta learnt constants per channel, no "
                        "x_proj (all, none, or indices such as 0,1; docs/ABLATION.md). Cheaper per sample; "
                        "trains on the CPU and with --device cuda (LTI d_state up to 384 there)")
        ->capture_default_str();
    g_model->add_option("--pool", o->pool,
                        "Generator: a pooled model (docs/POOLED.md), factors such as 4,4: --layers layers at the "
                        "sample rate and at each pooled rate, down and up (2 x factors + 1 stacks); --segment a "
                        "multiple of their product")
        ->capture_default_str();
    g_model->add_option("--label-prefix", o->label_prefix,
                        "Generator: tell it which label to make (docs/DIGITS.md). Each clip's label is its file name "
                        "up to the first '_' (7_jackson_32.wav: 7); every clip starts with this many samples of its "
                        "label's token, not scored, and `generate --label 7` primes with them. 0: none")
        ->capture_default_str();
    g_data->add_option("--speed-perturb", o->speed_perturb,
                        "Generator: more training audio from the same recordings: each training clip again at "
                        "each of these speeds, resampled (pitch and tempo together; 0.9,1.1 triples the data, as "
                        "speech recognisers train). Validation stays the recordings as they are. none: off")
        ->capture_default_str();
    g_data->add_option("--pad-end", o->pad_end_s,
                        "Generator: this many seconds of silence after each training clip, so the model learns "
                        "what follows a word: quiet (a clip that just ends teaches nothing, and `generate` run "
                        "past a word's length then babbles). Validation stays the recordings as they are. 0: off")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 10.0));
    g_model->add_option("--label-dropout", o->t.label_dropout,
                        "Labelled generator: the chance that a training clip is led by the null label's prefix "
                        "instead of its own, so the model also learns the audio whatever the label; `generate "
                        "--guidance` then runs 2 streams a clip (the label's and the null one) instead of one per "
                        "label, and the Synth can guide its voices. 0.1 to 0.2 is usual; 0: off")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 0.95));
    g_model->add_option("--self-feed", o->t.self_feed,
                        "Generator: the chance that a class fed to the model is replaced by a draw from the "
                        "model's own prediction for it (scheduled sampling, in one parallel pass: one more forward "
                        "a step, about 0.75x the samples/s), so that it learns to continue histories holding its own errors, as when it "
                        "generates. The targets stay the clip's. 0: off")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    g_model->add_option("--self-feed-ramp", o->t.self_feed_ramp,
                        "Generator with --self-feed P: the chance rises in a straight line from 0 at the first step "
                        "to P at this step (scheduled sampling's curriculum), for a run from a fresh model, whose "
                        "first predictions are noise (2000 is a good start). Self-fed from random weights, a "
                        "digits model spoke far more clearly than one self-fed only at the end (docs/DIGITS.md). "
                        "0: P from the first step")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    g_model->add_option("--rate", o->rate_hz, "Model sample rate in Hz (default: the target file's; generators 8000)");
    g_model->add_flag("--no-skip", o->no_skip, "Effect: no input-to-output skip (the model makes the whole output)");
    auto* g_opt = sub->add_option_group("optimisation");
    g_opt->add_option("--steps", o->t.steps, "Optimiser steps")->capture_default_str()->check(positive_number());
    g_opt->add_option("--batch", o->t.batch, "Sequences per step")->capture_default_str()->check(CLI::Range(1, 4096));
    g_opt->add_option("--segment", o->t.segment, "Samples per sequence per step (truncated backprop length)")
        ->capture_default_str();
    g_opt->add_option("--tbptt", o->t.tbptt_segments, "Segments a sequence runs on with carried state before a new crop")
        ->capture_default_str();
    g_opt->add_option("--warmup", o->t.warmup, "Effect: samples after a fresh start left out of the loss")
        ->capture_default_str();
    g_opt->add_option("--lr", o->t.adam.lr, "Peak learning rate (AdamW)")->capture_default_str();
    g_opt->add_option("--lr-warmup", o->t.lr_warmup_steps, "Steps of linear learning-rate warm-up")->capture_default_str();
    g_opt->add_option("--lr-final-ratio", o->t.final_lr_ratio,
                      "Where the cosine schedule ends, as a fraction of --lr. Runs that continue one another "
                      "(--init) can share one long schedule instead of climbing back to a peak each time: give "
                      "each the rate the last one ended at as --lr (a short --lr-warmup still ramps up to it, "
                      "the optimiser's moments being new) and the ratio to where this one should end")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    g_opt->add_option("--weight-decay", o->t.adam.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
    g_opt->add_option("--clip", o->t.clip_norm, "Clip the gradient's global norm to this (0: off)")->capture_default_str();
    g_opt->add_option("--preemph", o->t.preemphasis, "Effect: pre-emphasis of the ESR loss (0: plain ESR)")
        ->capture_default_str();
    g_opt->add_flag("--balanced-esr", o->t.balance_lanes,
                    "Effect: the loss is the mean of each lane's own ESR and validation the mean of each pair's, "
                    "instead of one ESR pooled over all (quiet knob settings then count as much as loud ones)");
    g_opt->add_option("--stft-weight", o->t.stft_weight,
                      "Effect: add this weight times a multi-resolution STFT loss (spectral convergence + log "
                      "magnitude, FFT sizes 128/512/2048) to the ESR; with --device cuda its FFTs run on the GPU "
                      "(cuFFT), at about 0.87x the speed of ESR alone. On our captures it did not lower the test ESR "
                      "(docs/ABLATION.md), hence off by default (0: off)")
        ->capture_default_str();
    g_opt->add_flag("--harmonic-decays", o->t.harmonic_decays,
                    "Keep each layer's decay rates in harmonic ratios, A[n] = (n+1)*A[0] per channel (the "
                    "start model is projected onto that form): the CPU step then needs one exponential per "
                    "channel instead of one per state (docs/ABLATION.md: what it costs in quality)");
    g_opt->add_flag("--fixed-dt", o->t.fixed_dt,
                    "Fix each channel's step size: Delta = softplus(dt_proj.bias), B and C still from the input "
                    "(x_proj's Delta rows and dt_proj.weight held at zero). Decays become constants per layer "
                    "(docs/ABLATION.md)");
    g_opt->add_option("--val-every", o->t.validate_every, "Validate (and export if best) every N steps")
        ->capture_default_str()->check(positive_number());
    g_opt->add_option("--checkpoint-every", o->checkpoint_every, "Checkpoint every N steps (and on Ctrl-C or SIGTERM)")
        ->capture_default_str();
    g_opt->add_option("--seed", o->t.seed, "Seed of the initial weights and the data order")->capture_default_str();
    add_threads_option(*sub, o->t.threads,
                       "CPU threads (0 = all cores): loading the data, forward and backward with --device cpu, and the optimiser's update with either device");
    sub->add_option("--device", o->device,
                    "Where forward and backward run: cpu (every core, --threads), cuda (the whole batch at "
                    "once on the GPU) or auto (cuda when a CUDA GPU is present)")
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
        ->capture_default_str();
    sub->add_flag("--tf32", o->t.tf32,
                  "GPU only: the projections' matrix products in TF32 on the tensor cores (mixed precision; "
                  "gradients within 1e-2 of full fp32, faster on large models)");
    sub->add_option("--gpus", o->gpus,
                    "Data-parallel training on this many GPUs of this machine: one process per GPU, the "
                    "--batch shared out among them, gradients summed over NCCL; the same model as one GPU "
                    "with the same --batch, up to float rounding")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    // The ranks that --gpus starts (standalone/ranks.h); not for users.
    sub->add_option("--rank", o->rank)->group("");
    sub->add_option("--world-size", o->world_size)->group("");
    sub->add_option("--rendezvous", o->rendezvous)->group("");
    sub->add_flag("--json", o->json_out, "Print the result as one JSON object (best metric, steps, the whole run's wall time and samples seen, samples/s, and where this process's wall time went: forward_backward, update, validation, other; and gpu_wait_seconds, the part of forward_backward the host spent waiting for the GPU; a --resume counts from the resume)");
    sub->add_flag("--no-plot", o->no_plot, "Do not draw curves.png");
    sub->footer(
        "Effects (a pedal, an amp): record the gear's output of a known input and train on the pair.\n"
        "  mambawave capture-signal --out di.wav      # play di.wav through the gear, record rec.wav\n"
        "  mambawave train --input di.wav --target rec.wav --out mypedal.safetensors\n"
        "The pair is checked: levels, clipping, and the latency between them (found by\n"
        "cross-correlation and shifted out, or refused with --no-fix-latency). The last 10% is\n"
        "held out and the validation ESR (error-to-signal ratio; < 0.01 is very close) is reported.\n"
        "With knobs: a manifest lists captures at several settings (see docs/DATA.md):\n"
        "  mambawave train --manifest data/captures/manifest.json --effect ts9 --out ts9.safetensors\n"
        "Generators: a folder of audio, mu-law 8-bit at --rate (default 8000 Hz):\n"
        "  mambawave train --data fsdd/train --out digits.safetensors --d-model 64 --layers 6\n\n"
        "Training runs on a CUDA GPU when there is one (--device), else on every core (--threads);\n"
        "--gpus N runs it on N GPUs at once (each takes --batch / N lanes of every step).\n"
        "Ctrl-C or SIGTERM (kill, timeout, a scheduler's time limit) saves a checkpoint;\n"
        "run the same command with --resume to continue exactly. The run directory holds\n"
        "log.csv and curves.png.");
    sub->callback([o] { run_train(*o); });
}

} // namespace mw::cli
