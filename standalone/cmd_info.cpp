// `mambawave info MODEL`: what a model file holds, as text or one JSON object.
#include "standalone/cli_common.h"
#include "standalone/commands.h"

#include "dsp/realtime.h"
#include "model/model_file.h"
#include "model/trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

namespace mw::cli {

namespace {

struct InfoOptions {
    std::string model_path;
    bool json = false;
};

constexpr const char* kUntrainedWarning =
    "UNTRAINED PLACEHOLDER: random weights, for testing the pipeline only";

// The training record as JSON (kept as text in the config); unparsable text stays a string.
nlohmann::json training_record(const ModelConfig& c) {
    nlohmann::json j = nlohmann::json::parse(c.training_json, nullptr, /*allow_exceptions=*/false);
    return j.is_discarded() ? nlohmann::json(c.training_json) : j;
}

nlohmann::json control_json(const ControlSpec& c) {
    return {{"name", c.name},         {"unit", c.unit},
            {"min", c.min_value},     {"max", c.max_value},
            {"default", c.default_value}, {"scale", c.log_scale ? "log" : "linear"}};
}

nlohmann::json info_json(const std::string& path, const Model& model) {
    const ModelConfig& c = model.config();
    nlohmann::json controls = nlohmann::json::array();
    for (const ControlSpec& spec : c.controls) controls.push_back(control_json(spec));
    return {{"path", path},
            {"kind", kind_name(c.kind)},
            {"io_kind", to_string(c.kind)},
            {"sample_rate_hz", c.sample_rate_hz},
            {"d_model", c.d_model},
            {"n_layers", c.n_layers},
            {"d_inner", c.d_inner},
            {"d_state", c.d_state},
            {"d_conv", c.d_conv},
            {"dt_rank", c.dt_rank},
            {"lti_layers", c.lti_layers},
            {"pool", c.pool},
            {"pool_expand", c.pool_expand},
            {"vocab", c.kind == IoKind::mulaw8 ? c.vocab : 0},
            {"parameters", model.parameter_count()},
            {"state_floats_per_stream", model.state_floats_per_stream()},
            {"state_bytes_per_stream", model.state_floats_per_stream() * int64_t(sizeof(float))},
            {"controls", controls},
            {"skip", c.skip},
            {"labels", c.labels},
            {"label_prefix", c.label_prefix},
            {"label_null", c.label_null},
            {"guidance", c.guidance},
            {"untrained", c.untrained},
            {"description", c.description},
            {"training", training_record(c)}};
}

// "drive  0..1, default 0.5, linear scale", the name padded to name_width.
std::string control_line(const ControlSpec& c, size_t name_width) {
    const std::string unit = c.unit.empty() ? "" : " " + c.unit;
    std::ostringstream s;
    s << c.name << std::string(name_width - c.name.size(), ' ') << "  " << c.min_value << ".." << c.max_value << unit << ", default "
      << c.default_value << unit << ", " << (c.log_scale ? "log" : "linear") << " scale";
    return s.str();
}

// The training record, indented under its label: for records of `mambawave train`, one line per
// run, oldest first (each run that started from another model's weights keeps that model's
// record under "init"); other records (imported checkpoints, older files) as indented JSON.
std::string indented_training(const ModelConfig& c) {
    const nlohmann::json record = training_record(c);
    std::vector<const nlohmann::json*> runs;  // newest first
    for (const nlohmann::json* r = &record; r && r->is_object() && r->value("trainer", "") == "mambawave train";) {
        runs.push_back(r);
        const auto init = r->find("init");
        r = init != r->end() && init->is_object() && init->contains("training") ? &init->at("training") : nullptr;
    }
    const auto whole_record = [&] {
        std::string text = record.dump(2);
        for (size_t p = text.find('\n'); p != std::string::npos; p = text.find('\n', p + 1))
            text.insert(p + 1, "              ");
        return text;
    };
    if (runs.empty()) return whole_record();
    try {
        const std::string indent = "\n              ";
        int64_t steps = 0;
        double wall = 0;
        for (const nlohmann::json* r : runs) {
            steps += r->at("steps").get<int64_t>();
            wall += r->value("wall_seconds", 0.0);
        }
        const nlohmann::json& oldest = *runs.back();
        const auto oldest_init = oldest.find("init");
        const std::string start = oldest_init != oldest.end() && oldest_init->is_object()
                                      ? "from " + oldest_init->value("file", std::string("another model"))
                                      : "from random weights";
        std::ostringstream out;
        out << runs.size() << (runs.size() == 1 ? " run" : " runs") << " of mambawave train " << start << ", "
            << steps << " steps behind these weights, " << std::fixed << std::setprecision(1) << wall / 60.0
            << " min in all";
        for (size_t i = 0; i < runs.size(); ++i) {
            const nlohmann::json& r = *runs[runs.size() - 1 - i];
            const nlohmann::json& opt = r.at("options");
            const nlohmann::json& metric = r.at("metric");
            const int64_t done = r.at("steps").get<int64_t>(), planned = opt.value("steps", done);
            out << indent << (i + 1) << ". " << done << " steps";
            if (planned != done) out << " (the best of " << planned << ")";
            out << ", batch "
                << opt.at("batch").get<int64_t>() << " x " << opt.at("segment").get<int64_t>() << ", lr "
                << std::defaultfloat << std::setprecision(6) << opt.at("lr").get<double>();
            if (opt.contains("final_lr_ratio") && opt.at("final_lr_ratio").get<double>() != TrainOptions{}.final_lr_ratio)
                out << " (cosine to " << opt.at("lr").get<double>() * opt.at("final_lr_ratio").get<double>() << ")";
            if (opt.value("weight_decay", 0.0) > 0) out << ", weight decay " << opt.at("weight_decay").get<double>();
            if (opt.value("label_dropout", 0.0) > 0) out << ", label dropout " << opt.at("label_dropout").get<double>();
            if (opt.value("self_feed", 0.0) > 0) out << ", self-feed " << opt.at("self_feed").get<double>();
            if (opt.value("self_feed_ramp", int64_t(0)) > 0)
                out << " (from 0 over " << opt.at("self_feed_ramp").get<int64_t>() << " steps)";
            const nlohmann::json data = r.value("data", nlohmann::json::object());
            if (data.contains("speed_perturb")) {
                out << ", speeds 1";
                for (const auto& f : data.at("speed_perturb")) out << ", " << f.get<double>();
            }
            if (data.contains("pad_end_s"))
                out << ", clips padded with " << data.at("pad_end_s").get<double>() << " s of silence";
            out << ", " << opt.value("device", std::string("cpu"));
            if (opt.value("gpus", 1) > 1) out << " x " << opt.at("gpus").get<int>();
            out << ", " << std::fixed << std::setprecision(1)
                << r.value("wall_seconds", 0.0) / 60.0 << " min: best " << metric.value("split", std::string("validation"))
                << " " << metric.at("name").get<std::string>() << " " << std::setprecision(4)
                << metric.at("value").get<double>() << (i + 1 == runs.size() ? " (this model)" : "");
        }
        out << indent << "(data: " << record.at("data").value("description", std::string("not recorded"))
            << "; info --json has the whole record)";
        return out.str();
    } catch (const nlohmann::json::exception&) {  // a record of another shape: show it as it is
        return whole_record();
    }
}

void print_text(std::ostream& out, const std::string& path, const Model& model) {
    const ModelConfig& c = model.config();
    auto row = [&out](const char* label, const std::string& value) {
        out << "  " << label << std::string(12 - std::string(label).size(), ' ') << value << "\n";
    };
    out << path << "\n";
    if (c.untrained) out << "  " << kUntrainedWarning << "\n";
    row("kind", std::string(kind_name(c.kind)) + " (" + to_string(c.kind) + ")");
    row("sample rate", std::to_string(int64_t(c.sample_rate_hz)) + " Hz");
    row("sizes", "d_model " + std::to_string(c.d_model) + ", n_layers " + std::to_string(c.n_layers) +
                     ", d_inner " + std::to_string(c.d_inner) + ", d_state " +
                     std::to_string(c.d_state) + ", d_conv " + std::to_string(c.d_conv) +
                     ", dt_rank " + std::to_string(c.dt_rank));
    row("LTI layers", describe_lti_layers(c));
    if (c.pooled()) row("pooled", describe_pool(c));
    if (c.labelled())
        row("labels", describe_labels(c) + " (generate --label NAME; each a prefix of " +
                          std::to_string(c.label_prefix) + " samples)");
    if (c.labelled())
        row("guidance", (c.label_null ? std::string("against a null label (trained with label dropout): generate "
                                                    "--guidance runs 2 streams a clip")
                                      : "against the labels' average: generate --guidance runs " +
                                            std::to_string(c.labels.size()) + " streams a clip (no null label)") +
                            (c.guidance > 0.0f ? "; its weight " + fmt_g(c.guidance) +
                                                     " (generate --label uses it unless --guidance says otherwise; "
                                                     "the Synth's Guidance knob moves to it when the model is picked)"
                                               : std::string()));
    if (c.labelled()) row("keys", dsp::label_keys_text(c) + " (the Synth plugin, live --midi)");
    row("parameters", std::to_string(model.parameter_count()));
    row("state", std::to_string(model.state_floats_per_stream()) + " floats per stream (" +
                     std::to_string(model.state_floats_per_stream() * int64_t(sizeof(float))) +
                     " bytes)");
    if (c.kind == IoKind::continuous) {
        size_t name_width = 0;
        for (const ControlSpec& spec : c.controls) name_width = std::max(name_width, spec.name.size());
        if (c.controls.empty()) row("controls", "none");
        for (size_t i = 0; i < c.controls.size(); ++i)
            row(i == 0 ? "controls" : "", control_line(c.controls[i], name_width));
        row("skip", c.skip ? "yes (the input sample is added to the output)" : "no");
    }
    row("description", c.description.empty() ? "(none)" : c.description);
    row("training", indented_training(c));
}

void run_info(const InfoOptions& o) {
    const Model model = load_model(o.model_path);
    if (o.json) std::cout << info_json(o.model_path, model).dump(2) << "\n";
    else print_text(std::cout, o.model_path, model);
}

} // namespace

void add_info_command(CLI::App& app) {
    auto o = std::make_shared<InfoOptions>();
    CLI::App* sub = app.add_subcommand(
        "info", "Show what a model file holds: kind, sample rate, sizes, parameter count, "
                "state size, controls and training record");
    sub->add_option("model", o->model_path,
                    "Model file (.safetensors) or HF Mamba checkpoint directory")
        ->required()
        ->check(CLI::ExistingPath);
    sub->add_flag("--json", o->json, "Print one JSON object instead of text (for scripts)");
    sub->footer("Examples:\n"
                "  mambawave info presets/ts9.safetensors\n"
                "  mambawave info --json presets/ts9.safetensors | jq .controls");
    sub->callback([o] { run_info(*o); });
}

} // namespace mw::cli
