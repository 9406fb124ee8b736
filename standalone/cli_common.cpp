#include "standalone/cli_common.h"

#include "model/model_file.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <time.h>

namespace mw::cli {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;  // the signal that stops the job, 0 while none has
timespec g_interrupted_at{};                    // when it came (CLOCK_MONOTONIC)

// The first SIGINT or SIGTERM asks the job to stop cleanly. A second one a second or more later
// ends the process at once (Ctrl-C pressed again). One sooner is the same stop sent twice and is
// ignored: GNU timeout, for one, signals the command and then its whole process group.
// (clock_gettime, signal and raise are async-signal-safe.)
extern "C" void on_interrupt(int signal) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (g_interrupted == 0) {
        g_interrupted_at = now;
        g_interrupted = signal;
        return;
    }
    const double since = double(now.tv_sec - g_interrupted_at.tv_sec) +
                         1e-9 * double(now.tv_nsec - g_interrupted_at.tv_nsec);
    if (since >= 1.0) {
        std::signal(signal, SIG_DFL);
        std::raise(signal);
    }
}

std::string number_text(float x) {
    std::ostringstream s;
    s << x;
    return s.str();
}

} // namespace

std::string range_text(const ControlSpec& c) {
    return number_text(c.min_value) + ".." + number_text(c.max_value) +
           (c.unit.empty() ? "" : " " + c.unit);
}

const ControlSpec* find_control(const ModelConfig& config, const std::string& name) {
    for (const ControlSpec& c : config.controls)
        if (c.name == name) return &c;
    return nullptr;
}

std::string known_controls(const ModelConfig& config) {
    if (config.controls.empty()) return "this model has no controls";
    std::string s = "known controls:";
    for (const ControlSpec& c : config.controls)
        s += " " + c.name + " (" + range_text(c) + ")";
    return s;
}

const char* kind_name(IoKind kind) {
    return kind == IoKind::mulaw8 ? "generator" : "effect";
}

Model load_model_for(const std::string& path, IoKind kind, const std::string& command,
                     const std::string& other_command) {
    Model model = load_model(path);
    const IoKind found = model.config().kind;
    if (found != kind)
        throw UsageError(path + " is " + (found == IoKind::mulaw8 ? "a " : "an ") +
                         kind_name(found) + " model, but '" + command + "' runs " +
                         kind_name(kind) + " models; use 'mambawave " + other_command +
                         "' for this model");
    return model;
}

std::vector<int> parse_lti_layers(const std::string& text, int n_layers) {
    std::vector<int> layers;
    if (text == "none" || text.empty()) return layers;
    if (text == "all") {
        for (int l = 0; l < n_layers; ++l) layers.push_back(l);
        return layers;
    }
    size_t start = 0;
    while (start <= text.size()) {
        const size_t comma = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, comma - start);
        int layer = -1;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), layer);
        if (item.empty() || ec != std::errc() || end != item.data() + item.size() || layer < 0 ||
            layer >= n_layers)
            throw UsageError("--lti '" + text + "': '" + item + "' is not a layer index 0.." +
                             std::to_string(n_layers - 1) + " (give all, none, or indices such as 0,1)");
        layers.push_back(layer);
        start = comma + 1;
    }
    std::sort(layers.begin(), layers.end());
    layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
    return layers;
}

std::string describe_lti_layers(const ModelConfig& c) {
    if (c.lti_layers.empty()) return "none";
    if (int(c.lti_layers.size()) == c.n_layers) return "all";
    std::string s;
    for (int l : c.lti_layers) s += (s.empty() ? "" : ", ") + std::to_string(l);
    return s;
}

std::vector<std::string> list_items(const std::string& text) {
    std::vector<std::string> items;
    if (text == "none" || text.empty()) return items;
    for (size_t start = 0; start <= text.size();) {
        const size_t comma = std::min(text.find(',', start), text.size());
        items.push_back(text.substr(start, comma - start));
        start = comma + 1;
    }
    return items;
}

std::vector<int> parse_pool(const std::string& text) {
    std::vector<int> factors;
    for (const std::string& item : list_items(text)) {
        int f = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), f);
        if (item.empty() || ec != std::errc() || end != item.data() + item.size() || f < 2 || f > 64)
            throw UsageError("--pool '" + text + "': '" + item + "' is not a pooling factor 2..64 (give none, or "
                             "factors such as 4,4)");
        factors.push_back(f);
    }
    if (factors.size() > 4) throw UsageError("--pool '" + text + "': at most 4 pooling factors");
    return factors;
}

std::string fmt_g(double v, int digits) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*g", digits, v);
    return b;
}

std::string describe_labels(const ModelConfig& c) {
    std::string names;
    for (const std::string& l : c.labels) names += (names.empty() ? "" : ", ") + l;
    return names;
}

int label_index_or_throw(const ModelConfig& c, const std::string& label, const std::string& model_path) {
    if (!c.labelled())
        throw UsageError("--label " + label + ": " + model_path + " has no labels (it was not trained with --label-prefix)");
    const int i = c.label_index(label);
    if (i < 0) throw UsageError("--label " + label + ": " + model_path + " knows the labels " + describe_labels(c));
    return i;
}

std::string describe_pool(const ModelConfig& c) {
    if (!c.pooled()) return "none";
    std::string s;
    for (int f : c.pool) s += (s.empty() ? "" : ", ") + std::to_string(f);
    s += " (levels:";
    double rate = c.sample_rate_hz;
    for (int level = 0; level <= int(c.pool.size()); ++level) {
        if (level > 0) rate /= c.pool[size_t(level - 1)];
        char hz[32];
        std::snprintf(hz, sizeof hz, rate < 100 ? "%.1f" : "%.0f", rate);
        s += (level ? ", " : " ") + std::string(hz) + " Hz d_model " + std::to_string(c.level_dims(level).d_model);
    }
    return s + "; " + std::to_string(c.stacks()) + " stacks of " + std::to_string(c.stack_layers()) + " layer" +
           (c.stack_layers() > 1 ? "s" : "") + ")";
}

float parse_float(const std::string& text, const std::string& what) {
    size_t used = 0;
    float value = NAN;
    try {
        value = std::stof(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || !std::isfinite(value))
        throw UsageError(what + ": '" + text + "' is not a finite number");
    return value;
}

std::vector<float> resolve_controls(const ModelConfig& config,
                                    const std::vector<std::pair<std::string, float>>& settings) {
    std::vector<float> values;
    for (const ControlSpec& c : config.controls) values.push_back(c.default_value);
    for (const auto& [name, value] : settings) {
        const ControlSpec* spec = find_control(config, name);
        if (!spec) throw UsageError("unknown control '" + name + "'; " + known_controls(config));
        if (value < spec->min_value || value > spec->max_value)
            throw UsageError("control '" + name + "' = " + number_text(value) +
                             " is out of range, expected " + range_text(*spec));
        values[size_t(spec - config.controls.data())] = value;
    }
    return values;
}

std::vector<float> resolve_controls(const ModelConfig& config,
                                    const std::vector<std::string>& assignments) {
    std::vector<std::pair<std::string, float>> settings;
    for (const std::string& a : assignments) {
        const size_t eq = a.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == a.size())
            throw UsageError("--control '" + a + "' is malformed, expected NAME=VALUE, e.g. " +
                             "--control drive=0.7");
        const std::string name = a.substr(0, eq);
        if (!find_control(config, name)) throw UsageError("unknown control '" + name + "'; " + known_controls(config));
        settings.emplace_back(name, parse_float(a.substr(eq + 1), "--control " + a));
    }
    return resolve_controls(config, settings);
}

const CLI::Validator& positive_number() {
    static const CLI::Validator v(
        [](std::string& text) -> std::string {
            char* end = nullptr;
            const double x = std::strtod(text.c_str(), &end);
            if (text.empty() || *end != '\0' || !(x > 0.0) || !std::isfinite(x))
                return "expected a number > 0, found '" + text + "'";
            return {};
        },
        "NUMBER > 0", "POSITIVE");
    return v;
}

void add_model_option(CLI::App& sub, std::string& model_path) {
    sub.add_option("--model,-m", model_path,
                   "Model file (.safetensors) or HF Mamba checkpoint directory")
        ->required()
        ->check(CLI::ExistingPath);
}

void add_threads_option(CLI::App& sub, int& threads, const char* help) {
    sub.add_option("--threads", threads, help)
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
}

void add_path_option(CLI::App& sub, std::string& path, const std::vector<std::string>& choices) {
    std::string list;
    for (const std::string& c : choices) {
        if (!list.empty()) list += '|';
        list += c;
    }
    sub.add_option("--path", path,
                   "Engine path: " + list + " (scan: chunked parallel, the fast one for files; "
                   "step: one sample at a time, the recurrent step a generator runs)")
        ->check(CLI::IsMember(choices))
        ->capture_default_str();
}

void add_controls_option(CLI::App& sub, std::vector<std::string>& assignments) {
    sub.add_option("--control,-c", assignments,
                   "A control value NAME=VALUE in the units the model declares (see `mambawave "
                   "info`), e.g. --control drive=0.7; repeat for several; unset controls take "
                   "their defaults")
        ->take_all()
        ->allow_extra_args(false);
}

void add_device_option(CLI::App& sub, std::string& device) {
    sub.add_option("--device", device,
                   "Where the model runs: cpu, cuda (the GPU forward; --path does not apply) or "
                   "auto (cuda when a CUDA GPU is present and the input is at least " +
                       std::to_string(kAutoCudaSamples) + " samples long, else cpu)")
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
        ->capture_default_str();
}

Device choose_device(const std::string& choice, int64_t samples, const std::string& path) {
    std::string why;
    Device device = Device::cpu;
    if (choice == "cuda") {
        if (path != "scan")
            throw UsageError("--path " + path + " applies to --device cpu only; the CUDA forward "
                             "has one path (leave --path out, or use --device cpu)");
        if (!cuda_available(&why)) throw UsageError("--device cuda: " + why);
        device = Device::cuda;
    } else if (choice == "auto") {
        // An explicit --path asks for that CPU path.
        if (path == "scan" && samples >= kAutoCudaSamples && cuda_available(&why))
            device = Device::cuda;
    } else if (choice != "cpu") {
        throw UsageError("--device '" + choice + "', expected cpu, cuda or auto");
    }
    if (device == Device::cuda)
        note("running on " + cuda_device_name() + " (CUDA)");
    else
        note("running on the CPU (path " + path + ")");
    return device;
}

double Stopwatch::seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string speed_summary(double audio_seconds, double wall_seconds) {
    char text[160];
    std::snprintf(text, sizeof text, "%.2f s of audio in %.2f s wall (%.1fx real time)",
                  audio_seconds, wall_seconds, audio_seconds / std::max(wall_seconds, 1e-9));
    return text;
}

void catch_interrupts() {
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
}

bool interrupted() { return g_interrupted != 0; }

int interrupted_exit_code() { return 128 + (g_interrupted != 0 ? int(g_interrupted) : SIGINT); }

void throw_if_interrupted() {
    if (g_interrupted) throw Interrupted("interrupted; no output file was written");
}

void note(const std::string& text) {
    std::cerr << ("mambawave: note: " + text + "\n");  // one write: notes may come from several threads
}

std::string clip_path(const std::string& out, int k, int count) {
    if (count == 1) return out;
    const std::filesystem::path p(out);
    const int digits = std::max(3, int(std::to_string(count).size()));
    char num[32];
    std::snprintf(num, sizeof num, "_%0*d", digits, k);
    return (p.parent_path() / (p.stem().string() + num + p.extension().string())).string();
}

std::string named_path(const std::string& out, const std::string& name) {
    const std::filesystem::path p(out);
    return (p.parent_path() / (p.stem().string() + "_" + name + p.extension().string())).string();
}

} // namespace mw::cli
