// `mambawave init`: a randomly initialised model file, marked untrained. This is where
// training starts, and how tests make models of a given shape.
#include "standalone/cli_common.h"
#include "standalone/commands.h"

#include "model/model_file.h"

#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>
#include <sstream>

namespace mw::cli {

namespace {

struct InitOptions {
    std::string kind, out_path, description;
    int d_model = 16;
    int n_layers = 4;
    int d_state = 16;
    int expand = 2;
    uint64_t seed = 0;
    double sample_rate_hz = 0;  // 0: the kind's default
    std::vector<std::string> controls;
    bool skip = false;
    std::string lti = "none";
    std::string pool = "none";
};

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> fields;
    std::istringstream s(text);
    for (std::string f; std::getline(s, f, separator);) fields.push_back(f);
    if (!text.empty() && text.back() == separator) fields.push_back("");
    return fields;
}

// "name:min:max:default[:unit][:log]", e.g. "tone:100:8000:1000:Hz:log".
ControlSpec parse_control_spec(const std::string& text) {
    std::vector<std::string> f = split(text, ':');
    ControlSpec c;
    c.log_scale = f.size() > 4 && f.back() == "log";
    if (c.log_scale) f.pop_back();
    if (f.size() < 4 || f.size() > 5 || f[0].empty())
        throw UsageError("--control '" + text + "' is malformed, expected "
                         "name:min:max:default[:unit][:log], e.g. tone:100:8000:1000:Hz:log");
    const std::string what = "--control " + text;
    c.name = f[0];
    c.min_value = parse_float(f[1], what);
    c.max_value = parse_float(f[2], what);
    c.default_value = parse_float(f[3], what);
    if (f.size() == 5) c.unit = f[4];
    return c;
}

ModelConfig config_from(const InitOptions& o) {
    const IoKind kind = o.kind == "generator" ? IoKind::mulaw8 : IoKind::continuous;
    if (kind == IoKind::mulaw8 && (!o.controls.empty() || o.skip))
        throw UsageError("--control and --skip are for effect models, not generators");
    ModelConfig c = make_config(kind, o.d_model, o.n_layers, o.d_state, o.expand);
    if (o.sample_rate_hz > 0) c.sample_rate_hz = o.sample_rate_hz;
    for (const std::string& text : o.controls) c.controls.push_back(parse_control_spec(text));
    c.skip = o.skip;
    c.pool = parse_pool(o.pool);
    if (c.pooled()) c.n_layers = o.n_layers * c.stacks();  // --layers: per stack
    c.lti_layers = parse_lti_layers(o.lti, c.n_layers);
    c.untrained = true;
    c.description = o.description;
    c.training_json = nlohmann::json{{"steps", 0}, {"init", "random"}, {"seed", o.seed}}.dump();
    try {
        c.validate("init arguments");
    } catch (const ModelError& e) {
        throw UsageError(e.what());
    }
    return c;
}

void run_init(const InitOptions& o) {
    Model model(config_from(o));
    model.init_random(o.seed);
    save_model(model, o.out_path);
    const ModelConfig& c = model.config();
    std::cout << "wrote " << o.out_path << ": untrained " << kind_name(c.kind) << ", "
              << int64_t(c.sample_rate_hz) << " Hz, d_model " << c.d_model << ", " << c.n_layers
              << " layers (LTI: " << describe_lti_layers(c) << "), " << c.n_cond() << " controls, " << model.parameter_count()
              << " parameters, seed " << o.seed << "\n";
}

} // namespace

void add_init_command(CLI::App& app) {
    auto o = std::make_shared<InitOptions>();
    CLI::App* sub = app.add_subcommand(
        "init", "Write a randomly initialised (untrained) model file: the starting point for "
                "training");
    sub->add_option("--kind,-k", o->kind, "effect (audio in, audio out) or generator (mu-law)")
        ->required()
        ->check(CLI::IsMember({"effect", "generator"}));
    sub->add_option("--out,-o", o->out_path, "Output model file (.safetensors)")->required();
    sub->add_option("--d-model", o->d_model, "Model width")
        ->check(CLI::Range(1, 8192))->capture_default_str();
    sub->add_option("--layers", o->n_layers, "Number of Mamba layers")
        ->check(CLI::Range(1, 256))->capture_default_str();
    sub->add_option("--d-state", o->d_state, "SSM state size per channel")
        ->check(CLI::Range(1, 1024))->capture_default_str();
    sub->add_option("--expand", o->expand, "d_inner = expand * d_model")
        ->check(CLI::Range(1, 16))->capture_default_str();
    sub->add_option("--seed", o->seed, "Random seed for the weights")->capture_default_str();
    sub->add_option("--sample-rate", o->sample_rate_hz,
                    "Sample rate in Hz (default: 48000 for effects, 8000 for generators)")
        ->check(CLI::Range(1000.0, 768000.0));
    sub->add_option("--control,-c", o->controls,
                    "An effect control, name:min:max:default[:unit][:log]; repeat for several")
        ->take_all()
        ->allow_extra_args(false);
    sub->add_flag("--skip", o->skip, "Effect: add the input sample to the network's output");
    sub->add_option("--lti", o->lti,
                    "Layers whose SSM is time-invariant (B, C, Δ learnt constants; no x_proj): all, "
                    "none or indices such as 0,1")
        ->capture_default_str();
    sub->add_option("--pool", o->pool,
                    "Generator: a pooled model (docs/POOLED.md), factors such as 4,4: stacks of --layers layers "
                    "each at the sample rate and at each pooled rate (2 x factors + 1 stacks); trains on the CPU or the GPU, generates on the CPU")
        ->capture_default_str();
    sub->add_option("--description", o->description, "One line saying what the model is for");
    sub->footer("The file says it is untrained (`mambawave info` prints a warning), so "
                "random weights are never\nmistaken for a real model.\n\n"
                "Examples:\n"
                "  mambawave init --kind effect --out drive.safetensors "
                "--control drive:0:1:0.5 --control tone:100:8000:1000:Hz:log --skip\n"
                "  mambawave init --kind generator --out babble.safetensors --d-model 32 --layers 2");
    sub->callback([o] { run_init(*o); });
}

} // namespace mw::cli
