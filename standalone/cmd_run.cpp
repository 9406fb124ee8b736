// `mambawave run`: one whole sequence through the model, .npy in and .npy out; the tool for
// checking the engine against other implementations (numpy, PyTorch, HF transformers).
#include "standalone/cli_common.h"
#include "standalone/commands.h"

#include "model/engine.h"
#include "model/model_file.h"
#include "model/npy.h"

#include <cmath>
#include <iostream>
#include <memory>

namespace mw::cli {

namespace {

struct RunOptions {
    std::string model_path, in_path, out_path;
    std::string path = "scan";
    std::string device = "auto";
    int threads = 0;
    std::vector<std::string> controls;
};

// Generator input: integer classes [L], each 0..V-1.
std::vector<int32_t> tokens_from(const NpyArray& a, const std::string& file, int vocab) {
    if (!a.is_integer())
        throw std::runtime_error(file + ": dtype '" + a.dtype +
                                 "', expected an integer dtype (mu-law classes) for a generator");
    if (a.shape.size() != 1 || a.shape[0] == 0)
        throw std::runtime_error(file + ": shape " + shape_text(a.shape) +
                                 ", expected [L] with L >= 1 (one token per sample)");
    std::vector<int32_t> tokens(a.values.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
        const double v = a.values[i];
        if (v < 0 || v >= vocab)
            throw std::runtime_error(file + ": element " + std::to_string(i) + " is " +
                                     std::to_string(int64_t(v)) + ", expected a class 0.." +
                                     std::to_string(vocab - 1));
        tokens[i] = int32_t(v);
    }
    return tokens;
}

// Effect input x [L][I]: samples [L] joined with the normalised controls, or [L][I] as given.
std::vector<float> effect_inputs(const NpyArray& a, const std::string& file, const ModelConfig& c,
                                 const RunOptions& o) {
    const int64_t I = c.n_in();
    const bool samples_only = a.shape.size() == 1;
    const bool full = a.shape.size() == 2 && a.shape[1] == I;
    if (a.is_integer())
        throw std::runtime_error(file + ": dtype '" + a.dtype +
                                 "', expected a float dtype (samples) for an effect");
    if ((!samples_only && !full) || a.numel() == 0)
        throw std::runtime_error(file + ": shape " + shape_text(a.shape) + ", expected [L] or [L," +
                                 std::to_string(I) + "] (sample, then " + std::to_string(I - 1) +
                                 " normalised controls) with L >= 1");
    if (full && !o.controls.empty())
        throw UsageError("--control applies to [L] input only; the columns of a [L," +
                         std::to_string(I) + "] input already hold the controls");
    for (size_t i = 0; i < a.values.size(); ++i)
        if (!std::isfinite(a.values[i]))
            throw std::runtime_error(file + ": element " + std::to_string(i) +
                                     " is not finite, expected finite samples");
    if (full) return std::vector<float>(a.values.begin(), a.values.end());

    const std::vector<float> user_values = resolve_controls(c, o.controls);
    std::vector<float> normalised;  // [I-1], what the network sees
    for (size_t k = 0; k < user_values.size(); ++k)
        normalised.push_back(c.controls[k].normalise(user_values[k]));
    std::vector<float> x;  // [L][I]
    x.reserve(a.values.size() * size_t(I));
    for (double sample : a.values) {
        x.push_back(float(sample));
        x.insert(x.end(), normalised.begin(), normalised.end());
    }
    return x;
}

void run_run(const RunOptions& o) {
    const Model model = load_model(o.model_path);
    const ModelConfig& c = model.config();
    const Path path = parse_path(o.path);
    // An explicit --device cuda is checked (and noted) before the input is read; auto needs
    // the input's length.
    if (o.device == "cuda") choose_device(o.device, 0, o.path);
    const NpyArray input = read_npy(o.in_path);
    if (c.kind == IoKind::mulaw8 && !o.controls.empty())
        throw UsageError("--control applies to effect models; " + o.model_path + " is a generator");

    const int64_t steps = input.shape.empty() ? 0 : input.shape[0];
    // (pooled generators too: their GPU forward is the training tape's, docs/POOLED.md)
    const Device device = o.device == "cuda" ? Device::cuda : choose_device(o.device, steps, o.path);
    const bool cuda = device == Device::cuda;

    Stopwatch clock;
    std::vector<int64_t> out_shape;
    std::vector<float> out;
    if (c.kind == IoKind::mulaw8) {
        const std::vector<int32_t> tokens = tokens_from(input, o.in_path, c.vocab);
        const int64_t L = int64_t(tokens.size());
        out_shape = {L, c.vocab};
        out.resize(size_t(L * c.vocab));  // [L][V]
        if (cuda) forward_tokens_cuda(model, tokens.data(), L, out.data());
        else forward_tokens(model, path, tokens.data(), L, out.data(), o.threads);
    } else {
        const std::vector<float> x = effect_inputs(input, o.in_path, c, o);  // [L][I]
        const int64_t L = int64_t(x.size()) / c.n_in();
        out_shape = {L};
        out.resize(size_t(L));  // [L]
        if (cuda) forward_continuous_cuda(model, x.data(), L, out.data());
        else forward_continuous(model, path, x.data(), L, out.data(), o.threads);
    }
    const double wall_seconds = clock.seconds();
    write_npy_f32(o.out_path, out_shape, out.data());
    std::cout << "wrote " << o.out_path << ": float32 " << shape_text(out_shape)
              << (c.kind == IoKind::mulaw8 ? " logits" : " samples") << " ("
              << (cuda ? std::string("cuda") : "path " + o.path) << ", "
              << speed_summary(double(out_shape[0]) / c.sample_rate_hz, wall_seconds)
              << ")\n";
}

} // namespace

void add_run_command(CLI::App& app) {
    auto o = std::make_shared<RunOptions>();
    CLI::App* sub = app.add_subcommand(
        "run", "Run one whole sequence through a model, .npy in, .npy out (for checking the "
               "engine against numpy/PyTorch)");
    add_model_option(*sub, o->model_path);
    sub->add_option("--in,-i", o->in_path, "Input .npy")->required()->check(CLI::ExistingFile);
    sub->add_option("--out,-o", o->out_path, "Output .npy (float32; written under a temporary "
                                             "name, renamed on success)")
        ->required();
    add_path_option(*sub, o->path, {"reference", "step", "scan"});
    add_device_option(*sub, o->device);
    add_threads_option(*sub, o->threads);
    add_controls_option(*sub, o->controls);
    sub->footer(
        "Input and output:\n"
        "  generator: integer tokens [L] (any integer dtype, classes 0..255) -> float32 logits "
        "[L,256]\n"
        "  effect:    float samples [L] -> float32 [L]; controls take their defaults or the\n"
        "             --control values (model units, normalised as the model declares)\n"
        "  effect:    float [L,1+n_cond] -> float32 [L]; the columns after the first are taken\n"
        "             as already-normalised network inputs (each in [-1,1])\n"
        "The run starts from the zero state. --path reference is the slow float64 oracle.\n"
        "--device cuda runs the whole sequence on the GPU (batch 1); --path is for the CPU.\n\n"
        "Examples:\n"
        "  mambawave run -m babble.safetensors --in tokens.npy --out logits.npy\n"
        "  mambawave run -m drive.safetensors --in x.npy --out y.npy --path step "
        "--control drive=0.7\n"
        "  python3 -c \"import numpy as np; print(np.load('y.npy')[:10])\"");
    sub->callback([o] { run_run(*o); });
}

} // namespace mw::cli
