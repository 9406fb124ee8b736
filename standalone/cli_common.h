// What the subcommands share: the argument-error type, common options, control values,
// model loading by kind, timing and summary lines.
#pragma once

#include "model/engine.h"
#include "model/model.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <csignal>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mw::cli {

// A bad argument: exit code 2. Every other exception is a runtime failure: exit code 1.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The CLI's name for a model kind: "effect" (continuous) or "generator" (mulaw8).
const char* kind_name(IoKind kind);

// Loads a model and checks that `command` can run it; a model of the other kind is a
// UsageError that points to `other_command`.
Model load_model_for(const std::string& path, IoKind kind, const std::string& command,
                     const std::string& other_command);

// A finite float from an argument, or a UsageError naming `what` (e.g. "--control drive=x").
float parse_float(const std::string& text, const std::string& what);

// A model's control by name, or null.
const ControlSpec* find_control(const ModelConfig& config, const std::string& name);
// "known controls: drive (0..1) tone (100..1000 Hz)", or that the model has none.
std::string known_controls(const ModelConfig& config);
// "100..1000 Hz"
std::string range_text(const ControlSpec& c);

// Control values in user units, one per model control: the model's defaults, overridden by
// "NAME=VALUE" assignments. Unknown names, malformed text and out-of-range values are
// UsageErrors listing what the model accepts.
std::vector<float> resolve_controls(const ModelConfig& config,
                                    const std::vector<std::string>& assignments);
// The same from (name, value) pairs, e.g. a manifest's knob settings.
std::vector<float> resolve_controls(const ModelConfig& config,
                                    const std::vector<std::pair<std::string, float>>& settings);

// `--lti` as given to init and train: "all", "none" or layer indices "0,1" -> ascending
// ModelConfig::lti_layers for a model of n_layers; anything else is a UsageError.
std::vector<int> parse_lti_layers(const std::string& text, int n_layers);
// The layers as a reader wants them: "none", "all" or "0, 1".
std::string describe_lti_layers(const ModelConfig& config);
// "--pool 4,4": pooling factors (none or empty: a flat model); each 2..64, at most 4 of them.
// A comma-separated option's items ("4,4" -> "4", "4"); "none" or "" -> none.
std::vector<std::string> list_items(const std::string& text);
std::vector<int> parse_pool(const std::string& text);
// "none", or e.g. "4, 4 (levels: 8000 Hz d_model 32, 2000 Hz d_model 64, 500 Hz d_model 128; 2 layers a stack)"
std::string describe_pool(const ModelConfig& config);
// A number in at most `digits` significant digits, no trailing zeros: 0.0044, 1.5, 3.
std::string fmt_g(double v, int digits = 5);
// A labelled generator's labels, "0, 1, ..." (ModelConfig::labels).
std::string describe_labels(const ModelConfig& config);
// --label NAME of a labelled model: its index; a usage error naming the model and the labels it
// knows otherwise.
int label_index_or_throw(const ModelConfig& config, const std::string& label, const std::string& model_path);

// A number above zero, for ->check(): "expected a number > 0, found 0" (CLI11's PositiveNumber
// says "not in range 0.000000 to" and the largest double, all 309 digits of it).
const CLI::Validator& positive_number();

// Options several subcommands take.
void add_model_option(CLI::App& sub, std::string& model_path);
void add_threads_option(CLI::App& sub, int& threads, const char* help = "CPU threads for the scan (0 = all cores)");
// --path, restricted to `choices` (names of mw::Path), default "scan".
void add_path_option(CLI::App& sub, std::string& path, const std::vector<std::string>& choices);
void add_controls_option(CLI::App& sub, std::vector<std::string>& assignments);
// --device cpu|cuda|auto, default "auto".
void add_device_option(CLI::App& sub, std::string& device);

// The device for `--device choice` over a job of `samples` time steps: auto picks cuda when a
// CUDA device is available and the job is long (kAutoCudaSamples or more), else cpu. An
// explicit cuda without CUDA, or with a --path other than the default "scan", is a UsageError.
// Prints a note naming the device that runs.
constexpr int64_t kAutoCudaSamples = 480000;  // 10 s at 48 kHz
Device choose_device(const std::string& choice, int64_t samples, const std::string& path);

// Wall-clock time since construction.
class Stopwatch {
public:
    double seconds() const;

private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// "12.50 s of audio in 0.41 s wall (30.5x real time)"
std::string speed_summary(double audio_seconds, double wall_seconds);

// Ctrl-C (SIGINT) or SIGTERM (`kill`, `timeout`, a batch scheduler's time limit) during a long
// job: the first only raises a flag, which the job checks between segments through
// throw_if_interrupted(); the exception unwinds through the output writer, which removes its
// temporary file (train: finishes its step and writes a checkpoint). A second signal a second
// or more after the first ends the process at once; one sooner is the same stop sent twice (GNU
// timeout signals the command, then its process group) and is ignored.
struct Interrupted : std::runtime_error {
    using std::runtime_error::runtime_error;
};
void catch_interrupts();
// True once SIGINT or SIGTERM has arrived.
bool interrupted();
void throw_if_interrupted();
// The exit status of a job that stopped so: 128 + the signal, as shells report a process that
// the signal ended (130 for SIGINT, 143 for SIGTERM).
int interrupted_exit_code();
constexpr bool is_interrupted_exit(int code) { return code == 128 + SIGINT || code == 128 + SIGTERM; }

// Clip k (1-based) of N output files: OUT itself when N is 1, else OUT's stem + "_001" (three
// digits at least) + OUT's extension, in OUT's folder (generate --count, synth).
std::string clip_path(const std::string& out, int k, int count);

// OUT's stem + "_" + name + OUT's extension, in OUT's folder: one file of several named by what
// it holds (generate --label all: digit_7.wav; synth's keys: seven_C4.wav).
std::string named_path(const std::string& out, const std::string& name);

// A note for the user on stderr: "mambawave: note: ..."
void note(const std::string& text);

} // namespace mw::cli
