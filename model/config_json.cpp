// The model config as JSON: the HF transformers MambaConfig fields (so HF tooling reads a
// MambaWave generator as a MambaForCausalLM) plus MambaWave's own: format_version, io,
// untrained, description, training.
#include "model/model_file.h"
#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <limits>
#include <optional>

namespace mw {

namespace {

using nlohmann::json;

// ---- reading ---------------------------------------------------------------------------

// Describes a JSON value in a message: the value itself when short, its kind otherwise.
std::string describe(const json& value) {
    if (value.is_object()) return "an object";
    if (value.is_array()) return "an array";
    std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return text;
}

[[noreturn]] void field_error(const std::string& where, const std::string& field,
                              const json& found, const std::string& expected) {
    throw ModelError(where + ": config field '" + field + "' is " + describe(found) +
                     ", expected " + expected);
}

[[noreturn]] void missing_field(const std::string& where, const std::string& field,
                                const std::string& expected) {
    throw ModelError(where + ": config field '" + field + "' is missing, expected " + expected);
}

// Reads the fields of one JSON object; `prefix` ("io.", "io.controls[2].") makes field names
// in messages match the file.
class Fields {
public:
    Fields(const json& object, std::string where, std::string prefix)
        : object_(object), where_(std::move(where)), prefix_(std::move(prefix)) {}

    const json* find(const char* key) const {
        auto it = object_.find(key);
        return it == object_.end() ? nullptr : &*it;
    }
    bool has(const char* key) const { return find(key) != nullptr; }
    std::string name(const char* key) const { return prefix_ + key; }
    const std::string& where() const { return where_; }

    int get_int(const char* key, std::optional<int> fallback = std::nullopt) const {
        const json* v = find(key);
        if (!v) return fallback ? *fallback : missing_value<int>(key, "an integer");
        if (!v->is_number_integer()) field_error(where_, name(key), *v, "an integer");
        const bool fits = v->is_number_unsigned()
                              ? v->get<uint64_t>() <= uint64_t(INT_MAX)
                              : v->get<int64_t>() >= INT_MIN && v->get<int64_t>() <= INT_MAX;
        if (!fits) field_error(where_, name(key), *v, "a value that fits a 32-bit integer");
        return int(v->get<int64_t>());
    }

    double get_number(const char* key, std::optional<double> fallback = std::nullopt) const {
        const json* v = find(key);
        if (!v) return fallback ? *fallback : missing_value<double>(key, "a number");
        if (!v->is_number()) field_error(where_, name(key), *v, "a number");
        return v->get<double>();
    }

    // A number stored as float: one beyond float range is refused here rather than turned
    // into infinity by an undefined conversion.
    float get_float(const char* key, std::optional<float> fallback = std::nullopt) const {
        if (!has(key) && fallback) return *fallback;
        const double value = get_number(key);
        if (std::fabs(value) > double(std::numeric_limits<float>::max()))
            field_error(where_, name(key), *find(key), "a value in float range");
        return float(value);
    }

    bool get_bool(const char* key, std::optional<bool> fallback = std::nullopt) const {
        const json* v = find(key);
        if (!v) return fallback ? *fallback : missing_value<bool>(key, "true or false");
        if (!v->is_boolean()) field_error(where_, name(key), *v, "true or false");
        return v->get<bool>();
    }

    std::string get_string(const char* key,
                           std::optional<std::string> fallback = std::nullopt) const {
        const json* v = find(key);
        if (!v) return fallback ? *fallback : missing_value<std::string>(key, "a string");
        if (!v->is_string()) field_error(where_, name(key), *v, "a string");
        return v->get<std::string>();
    }

private:
    // Throws; typed so that it fits in `fallback ? *fallback : missing_value<T>(...)`.
    template <class T>
    [[noreturn]] T missing_value(const char* key, const std::string& expected) const {
        missing_field(where_, name(key), expected);
    }

    const json& object_;
    std::string where_;
    std::string prefix_;
};

json parse_json_text(const std::string& text, const std::string& where) {
    safetensors::check_json_depth(where, "the model config", text.data(), text.size());
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        // parse_error, or out_of_range for a number too large for a double (1e999)
        throw ModelError(where + ": the model config is not valid JSON (" +
                         safetensors::short_parse_error(e.what()) + ")");
    }
}

void require_object(const json& value, const std::string& where, const std::string& field) {
    if (!value.is_object()) field_error(where, field, value, "a JSON object");
}

void check_format_version(const Fields& f) {
    const int version = f.get_int("format_version");
    if (version > kFormatVersion)
        throw ModelError(f.where() + ": this file needs a newer MambaWave (file format " +
                         std::to_string(version) + ", this build reads up to " +
                         std::to_string(kFormatVersion) + "); update MambaWave to load it");
    if (version < 1)
        field_error(f.where(), "format_version", *f.find("format_version"),
                    "1.." + std::to_string(kFormatVersion));
}

ControlSpec parse_control(const json& j, const std::string& where, const std::string& prefix) {
    require_object(j, where, prefix.substr(0, prefix.size() - 1));
    const Fields f(j, where, prefix);
    ControlSpec c;
    c.name = f.get_string("name");
    c.unit = f.get_string("unit", "");
    c.min_value = f.get_float("min");
    c.max_value = f.get_float("max");
    c.default_value = f.get_float("default", c.min_value);
    const std::string scale = f.get_string("scale", "linear");
    if (scale != "linear" && scale != "log")
        field_error(where, f.name("scale"), *f.find("scale"), "one of: linear, log");
    c.log_scale = scale == "log";
    return c;
}

void parse_io(const json& j, const std::string& where, ModelConfig& c) {
    require_object(j, where, "io");
    const Fields f(j, where, "io.");
    const std::string kind = f.get_string("kind");
    if (kind == "mulaw8") c.kind = IoKind::mulaw8;
    else if (kind == "continuous") c.kind = IoKind::continuous;
    else
        throw ModelError(where + ": config field 'io.kind' is '" + kind +
                         "', expected one of: mulaw8, continuous (this build knows no other "
                         "kind; a newer MambaWave may)");
    c.sample_rate_hz = f.get_number("sample_rate");
    c.skip = f.get_bool("skip", false);
    c.controls.clear();
    if (const json* controls = f.find("controls")) {
        if (!controls->is_array()) field_error(where, "io.controls", *controls, "an array");
        for (size_t i = 0; i < controls->size(); ++i)
            c.controls.push_back(parse_control((*controls)[i], where,
                                               "io.controls[" + std::to_string(i) + "]."));
    }
    c.labels.clear();
    if (const json* labels = f.find("labels")) {
        if (!labels->is_array()) field_error(where, "io.labels", *labels, "an array of label names");
        for (size_t i = 0; i < labels->size(); ++i) {
            if (!(*labels)[i].is_string())
                field_error(where, "io.labels[" + std::to_string(i) + "]", (*labels)[i], "a label name (a string)");
            c.labels.push_back((*labels)[i].get<std::string>());
        }
    }
    c.label_prefix = f.get_int("label_prefix", 0);  // range, and labels with it: validate()
    c.label_null = f.get_bool("label_null", false);
    c.guidance = f.get_float("guidance", 0.0f);  // (range: validate())
    if (f.has("n_cond") && f.get_int("n_cond") != c.n_cond())
        throw ModelError(where + ": config field 'io.n_cond' is " +
                         std::to_string(f.get_int("n_cond")) + " but 'io.controls' has " +
                         std::to_string(c.n_cond()) + " entries; they must agree");
}

// time_step_rank: an integer, or "auto" (HF: ceil(hidden_size / 16)).
int parse_dt_rank(const Fields& f, int d_model) {
    const json* v = f.find("time_step_rank");
    if (!v || (v->is_string() && v->get<std::string>() == "auto")) return (d_model + 15) / 16;
    if (!v->is_number_integer())
        field_error(f.where(), "time_step_rank", *v, "an integer or \"auto\"");
    return f.get_int("time_step_rank");
}

// An optional array of non-negative ints (empty when the field is absent).
std::vector<int> int_array(const Fields& f, const char* field, const char* array_what, const char* item_what) {
    std::vector<int> out;
    const json* a = f.find(field);
    if (!a) return out;
    if (!a->is_array()) field_error(f.where(), field, *a, array_what);
    for (size_t i = 0; i < a->size(); ++i) {
        const json& v = (*a)[i];
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT_MAX)
            field_error(f.where(), std::string(field) + "[" + std::to_string(i) + "]", v, item_what);
        out.push_back(int(v.get<int64_t>()));
    }
    return out;
}

// The backbone fields, with HF MambaConfig's defaults where HF has one that fits.
void parse_backbone(const Fields& f, ModelConfig& c) {
    if (f.has("model_type") && f.get_string("model_type") != "mamba")
        throw ModelError(f.where() + ": config field 'model_type' is '" +
                         f.get_string("model_type") +
                         "', expected 'mamba' (MambaWave runs Mamba-1 models)");
    c.d_model = f.get_int("hidden_size");
    c.n_layers = f.get_int("num_hidden_layers");
    c.d_state = f.get_int("state_size", 16);
    c.d_conv = f.get_int("conv_kernel", 4);
    if (f.has("intermediate_size")) {
        c.d_inner = f.get_int("intermediate_size");
    } else {
        const int64_t d_inner = int64_t(f.get_int("expand", 2)) * c.d_model;
        c.d_inner = int(std::clamp<int64_t>(d_inner, INT_MIN, INT_MAX));  // validate() says why
    }
    c.dt_rank = parse_dt_rank(f, c.d_model);
    c.norm_eps = f.get_float("layer_norm_epsilon", 1e-5f);
    if (f.get_bool("use_bias", false))
        throw ModelError(f.where() + ": config field 'use_bias' is true, but MambaWave does not "
                         "support biases on in_proj/out_proj (Mamba checkpoints normally have "
                         "use_bias=false)");
    c.conv_bias = f.get_bool("use_conv_bias", true);
    c.tie_embeddings = f.get_bool("tie_word_embeddings", true);
    c.lti_layers = int_array(f, "lti_layers", "an array of layer indices", "a layer index");  // range, order: validate()
    c.pool = int_array(f, "pool", "an array of pooling factors", "a pooling factor");             // range: validate()
    c.pool_expand = f.get_int("pool_expand", 2);
}

void parse_vocab(const Fields& f, ModelConfig& c) {
    if (c.kind != IoKind::mulaw8) return;
    c.vocab = f.get_int("vocab_size");
    if (c.vocab != 256)
        throw ModelError(f.where() + ": config field 'vocab_size' is " + std::to_string(c.vocab) +
                         ", expected 256: MambaWave generators read and write 8-bit mu-law "
                         "samples, one token per sample value");
}

void parse_provenance(const Fields& f, ModelConfig& c) {
    c.untrained = f.get_bool("untrained", false);
    c.description = f.get_string("description", "");
    c.training_json = "{}";
    if (const json* training = f.find("training")) {
        require_object(*training, f.where(), "training");
        c.training_json = training->dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

enum class Source { mambawave_file, hf_checkpoint };

ModelConfig parse_config(const std::string& text, const std::string& where, Source source) {
    const json j = parse_json_text(text, where);
    if (!j.is_object())
        throw ModelError(where + ": the model config is " + describe(j) +
                         ", expected a JSON object");
    const Fields f(j, where, "");
    ModelConfig c;
    if (source == Source::mambawave_file || f.has("format_version")) check_format_version(f);
    parse_backbone(f, c);
    if (const json* io = f.find("io")) {
        parse_io(*io, where, c);
    } else if (source == Source::mambawave_file) {
        missing_field(where, "io", "an object with kind, sample_rate, n_cond, controls, skip");
    } else {
        c.kind = IoKind::mulaw8;   // a plain HF checkpoint: an 8 kHz mu-law generator
        c.sample_rate_hz = 8000.0;
    }
    parse_vocab(f, c);
    parse_provenance(f, c);
    c.validate(where);
    return c;
}

// ---- writing ---------------------------------------------------------------------------

// A float as the shortest decimal that reads back to the same float (1e-05, not
// 9.999999747378752e-06), so the file is readable and the round trip exact.
double readable(float value) {
    char text[32];
    const auto written = std::to_chars(text, text + sizeof text, value);
    double result = value;
    std::from_chars(text, written.ptr, result);
    // Text -> double -> float rounds twice; if that ever lands elsewhere, keep the exact value.
    return float(result) == value ? result : double(value);
}

nlohmann::ordered_json control_to_json(const ControlSpec& c) {
    return {{"name", c.name},
            {"unit", c.unit},
            {"min", readable(c.min_value)},
            {"max", readable(c.max_value)},
            {"default", readable(c.default_value)},
            {"scale", c.log_scale ? "log" : "linear"}};
}

nlohmann::ordered_json io_to_json(const ModelConfig& c) {
    nlohmann::ordered_json io;
    io["kind"] = to_string(c.kind);
    const double rate = c.sample_rate_hz;
    if (std::floor(rate) == rate && std::fabs(rate) < 1e15) io["sample_rate"] = int64_t(rate);
    else io["sample_rate"] = rate;
    io["n_cond"] = c.n_cond();
    io["controls"] = nlohmann::ordered_json::array();
    for (const ControlSpec& control : c.controls) io["controls"].push_back(control_to_json(control));
    io["skip"] = c.skip;
    if (c.labelled() || !c.labels.empty()) {
        io["labels"] = c.labels;
        io["label_prefix"] = c.label_prefix;
        if (c.label_null) io["label_null"] = true;
        if (c.guidance != 0.0f) io["guidance"] = c.guidance;
    }
    return io;
}

// The training record is stored as JSON text; it must be an object to be written.
nlohmann::ordered_json training_to_json(const std::string& text) {
    nlohmann::ordered_json training;
    safetensors::check_json_depth("model config", "the training record", text.data(), text.size());
    try {
        training = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw ModelError("model config: the training record is not valid JSON (" +
                         std::string(e.what()) + ")");
    }
    if (!training.is_object())
        throw ModelError(std::string("model config: the training record must be a JSON object, "
                                     "found a JSON ") + training.type_name());
    return training;
}

} // namespace

std::string config_to_json(const ModelConfig& c) {
    nlohmann::ordered_json j;
    // HF MambaConfig fields first: transformers reads these.
    j["model_type"] = "mamba";
    if (c.kind == IoKind::mulaw8) j["architectures"] = {"MambaForCausalLM"};
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.d_inner;
    j["state_size"] = c.d_state;
    j["num_hidden_layers"] = c.n_layers;
    if (c.d_model > 0 && c.d_inner % c.d_model == 0) j["expand"] = c.d_inner / c.d_model;
    j["conv_kernel"] = c.d_conv;
    j["time_step_rank"] = c.dt_rank;
    j["layer_norm_epsilon"] = readable(c.norm_eps);
    if (c.kind == IoKind::mulaw8) j["vocab_size"] = c.vocab;
    j["tie_word_embeddings"] = c.tie_embeddings;
    j["use_bias"] = false;
    j["use_conv_bias"] = c.conv_bias;
    // MambaWave's own. A file with LTI layers is format 2 and a pooled one 3, so that a build
    // from before them asks for a newer MambaWave instead of naming missing tensors.
    if (!c.lti_layers.empty()) j["lti_layers"] = c.lti_layers;
    if (c.pooled()) {
        j["pool"] = c.pool;
        j["pool_expand"] = c.pool_expand;
    }
    j["format_version"] = c.pooled() ? 3 : c.lti_layers.empty() ? 1 : 2;
    j["io"] = io_to_json(c);
    j["untrained"] = c.untrained;
    j["description"] = c.description;
    j["training"] = training_to_json(c.training_json);
    // Invalid UTF-8 in a user-supplied string is replaced, never thrown.
    return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

ModelConfig config_from_json(const std::string& json_text, const std::string& where) {
    return parse_config(json_text, where, Source::mambawave_file);
}

ModelConfig hf_config_from_json(const std::string& json_text, const std::string& where) {
    return parse_config(json_text, where, Source::hf_checkpoint);
}

} // namespace mw
