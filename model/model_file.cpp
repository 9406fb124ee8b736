// Loading and saving models: a MambaWave .safetensors (config in __metadata__["mambawave"]) or
// an HF transformers Mamba checkpoint directory (config.json + model.safetensors).
//
// A load is all or nothing: the header, the config and every tensor's name, shape and byte
// range are checked before the Model is allocated (so a hostile header cannot make us
// allocate gigabytes), the weights are copied and checked for NaN/Inf into a local Model, and
// only a complete Model is returned.
#include "model/model_file.h"
#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

namespace mw {

namespace fs = std::filesystem;
using safetensors::shape_text;

namespace {

constexpr size_t kMaxNamesListed = 8;   // longer lists of tensor names end in "and N more"

[[noreturn]] void fail(const std::string& file, const std::string& what) {
    throw ModelError(file + ": " + what);
}

std::string name_list(const std::vector<std::string>& names) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < kMaxNamesListed; ++i)
        s += (i ? ", '" : "'") + names[i] + "'";
    if (names.size() > kMaxNamesListed)
        s += " and " + std::to_string(names.size() - kMaxNamesListed) + " more";
    return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The config fields a tensor's expected shape comes from, e.g. "state_size=16,
// intermediate_size=32", so a shape error says which side (config or tensor) to look at.
std::string shape_origin(const ModelConfig& c, const std::string& name);

// The same, for a pooled model's tensors: a layer's sizes are its level's, a pool's both levels'.
std::string pooled_shape_origin(const ModelConfig& c, const std::string& name) {
    const std::string scale = "pool_expand=" + std::to_string(c.pool_expand);
    if (name.rfind("backbone.pools.", 0) == 0)
        return "pool=[...], the hidden sizes of the two levels the pool joins (hidden_size x " + scale + "^level)";
    if (name.rfind("backbone.layers.", 0) == 0) {
        const int layer = std::atoi(name.c_str() + std::strlen("backbone.layers."));
        if (layer >= 0 && layer < c.n_layers && c.layer_level(layer) > 0)
            return shape_origin(c, name) + ", each times " + scale + "^" + std::to_string(c.layer_level(layer)) +
                   " at pooled level " + std::to_string(c.layer_level(layer));
    }
    return shape_origin(c, name);
}

std::string shape_origin(const ModelConfig& c, const std::string& name) {
    const std::string D = "hidden_size=" + std::to_string(c.d_model);
    const std::string E = "intermediate_size=" + std::to_string(c.d_inner);
    const std::string N = "state_size=" + std::to_string(c.d_state);
    const std::string K = "conv_kernel=" + std::to_string(c.d_conv);
    const std::string R = "time_step_rank=" + std::to_string(c.dt_rank);
    if (ends_with(name, "embeddings.weight") || name == "lm_head.weight")
        return "vocab_size=" + std::to_string(c.vocab) + ", " + D;
    if (ends_with(name, "in_proj.weight")) return "2 x " + E + ", " + D;
    if (ends_with(name, "conv1d.weight")) return E + ", " + K;
    if (ends_with(name, "x_proj.weight")) return R + " + 2 x " + N + ", " + E;
    if (ends_with(name, "dt_proj.weight")) return E + ", " + R;
    if (ends_with(name, "A_log") || ends_with(name, "mixer.B") || ends_with(name, "mixer.C"))
        return E + ", " + N;
    if (ends_with(name, "out_proj.weight")) return D + ", " + E;
    if (ends_with(name, "conv1d.bias") || ends_with(name, "dt_proj.bias") ||
        ends_with(name, "mixer.D"))
        return E;
    if (name == "stem.weight") return D + ", 1 + io.n_cond=" + std::to_string(c.n_cond());
    if (name == "head.bias") return "one output sample";
    return D;  // norm weights, stem.bias, head.weight
}

std::string lti_list(const ModelConfig& c) {
    std::string s = "[";
    for (size_t i = 0; i < c.lti_layers.size(); ++i) s += (i ? "," : "") + std::to_string(c.lti_layers[i]);
    return s + "]";
}

// Every expected tensor present, nothing else (an HF checkpoint may carry lm_head.weight
// even when it is tied to the embeddings: then it is ignored).
void check_tensor_names(const std::string& file, const ModelConfig& c,
                        const std::vector<TensorSpec>& expected, const safetensors::File& st) {
    std::vector<std::string> missing;
    std::set<std::string> expected_names;
    for (const TensorSpec& spec : expected) {
        expected_names.insert(spec.name);
        if (!st.find(spec.name)) missing.push_back(spec.name);
    }
    if (!missing.empty())
        fail(file, std::to_string(missing.size()) + " tensor" + (missing.size() > 1 ? "s are" : " is") +
                       " missing: " + name_list(missing) + " (expected by the config: " +
                       to_string(c.kind) + ", num_hidden_layers=" + std::to_string(c.n_layers) +
                       ", use_conv_bias=" + (c.conv_bias ? "true" : "false") +
                       ", tie_word_embeddings=" + (c.tie_embeddings ? "true" : "false") +
                       (c.lti_layers.empty() ? std::string() : ", lti_layers=" + lti_list(c)) +
                       (c.pooled() ? ", pooled: " + std::to_string(c.stacks()) + " stacks" : std::string()) + ")");
    const bool lm_head_ignorable = c.kind == IoKind::mulaw8 && c.tie_embeddings;
    std::vector<std::string> unexpected;
    for (const auto& [name, info] : st.tensors)
        if (!expected_names.count(name) && !(lm_head_ignorable && name == "lm_head.weight"))
            unexpected.push_back(name);
    if (!unexpected.empty())
        fail(file, "unexpected tensor" + std::string(unexpected.size() > 1 ? "s " : " ") +
                       name_list(unexpected) + ": not part of a " + to_string(c.kind) +
                       " model with this config (is the config right?)");
}

void check_shapes(const std::string& file, const ModelConfig& c,
                  const std::vector<TensorSpec>& expected, const safetensors::File& st) {
    for (const TensorSpec& spec : expected) {
        const safetensors::TensorInfo& info = *st.find(spec.name);
        if (info.shape != spec.shape)
            fail(file, "tensor '" + spec.name + "' has shape " + shape_text(info.shape) +
                           ", expected " + shape_text(spec.shape) + " (from " +
                           (c.pooled() ? pooled_shape_origin(c, spec.name) : shape_origin(c, spec.name)) + ")");
    }
}

// "[1, 3]" for flat index 7 of shape [2, 4].
std::string index_text(int64_t flat, const std::vector<int64_t>& shape) {
    std::vector<int64_t> index(shape.size());
    for (size_t d = shape.size(); d-- > 0;) {
        index[d] = flat % shape[d];
        flat /= shape[d];
    }
    return shape_text(index);
}

void copy_weights(const std::string& file, const std::vector<TensorSpec>& expected,
                  const safetensors::File& st, Model& model) {
    for (const TensorSpec& spec : expected) {
        float* out = model.tensor(spec.name);
        st.read_floats(*st.find(spec.name), out);
        for (int64_t i = 0; i < spec.numel(); ++i)
            if (!std::isfinite(out[i]))
                fail(file, "tensor '" + spec.name + "' has a non-finite value (" +
                               (std::isnan(out[i]) ? "NaN" : "Inf") + ") at flat index " +
                               std::to_string(i) + " (element " + index_text(i, spec.shape) +
                               "); the file is damaged or the model diverged in training");
    }
}

// The one place a Model is built from a file: checks first, then allocate, copy, check values.
Model assemble(const std::string& file, const ModelConfig& config, const safetensors::File& st) {
    config.validate(file);
    const std::vector<TensorSpec> expected = expected_tensors(config);
    check_tensor_names(file, config, expected, st);
    check_shapes(file, config, expected, st);
    Model model(config);  // sizes now bounded by the bytes actually in the file
    copy_weights(file, expected, st, model);
    return model;
}

Model load_mambawave(const std::string& name, const uint8_t* data, size_t size) {
    const safetensors::File st = safetensors::parse(name, data, size);
    auto config_text = st.metadata.find("mambawave");
    if (config_text == st.metadata.end()) {
        const bool looks_hf = st.find("backbone.embeddings.weight") != nullptr;
        fail(name, std::string("no MambaWave config in the file (metadata entry 'mambawave' is "
                               "missing), so this is not a MambaWave model file") +
                       (looks_hf ? "; it looks like an HF transformers checkpoint: load its "
                                   "directory (config.json + model.safetensors) instead"
                                 : ""));
    }
    return assemble(name, config_from_json(config_text->second, name), st);
}

std::vector<uint8_t> read_file_bytes(const fs::path& path) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status)) fail(path.string(), "no such file");
    // Not a regular file (a FIFO, /dev/zero): reading it could block or never end.
    if (!fs::is_regular_file(status)) fail(path.string(), "not a regular file");
    const uintmax_t size_bytes = fs::file_size(path, ec);
    if (ec) fail(path.string(), "cannot get the file size: " + ec.message());
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path.string(), std::string("cannot open: ") + std::strerror(errno));
    std::vector<uint8_t> bytes(static_cast<size_t>(size_bytes));
    in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
    if (size_t(in.gcount()) != bytes.size())
        fail(path.string(), "read " + std::to_string(in.gcount()) + " of " +
                                std::to_string(bytes.size()) + " bytes (was it changed while loading?)");
    return bytes;
}

Model load_hf_directory(const fs::path& dir) {
    const fs::path config_path = dir / "config.json";
    const fs::path weights_path = dir / "model.safetensors";
    const std::string layout = "an HF checkpoint directory needs config.json and model.safetensors";
    if (!fs::exists(config_path)) fail(dir.string(), "no config.json in the directory; " + layout);
    if (!fs::exists(weights_path)) {
        std::string hint;
        if (fs::exists(dir / "model.safetensors.index.json"))
            hint = " (sharded checkpoints are not supported: re-save with a larger max_shard_size)";
        else if (fs::exists(dir / "pytorch_model.bin"))
            hint = " (pytorch_model.bin is not read: re-save with safe_serialization=True)";
        fail(dir.string(), "no model.safetensors in the directory; " + layout + hint);
    }
    const std::vector<uint8_t> config_bytes = read_file_bytes(config_path);
    const ModelConfig config = hf_config_from_json(
        std::string(config_bytes.begin(), config_bytes.end()), config_path.string());
    const std::vector<uint8_t> weights = read_file_bytes(weights_path);
    const safetensors::File st =
        safetensors::parse(weights_path.string(), weights.data(), weights.size());
    return assemble(weights_path.string(), config, st);
}

// A temporary file next to the target (same directory, so the rename is atomic), removed
// unless the write completed and was renamed into place.
struct TempFile {
    fs::path path;
    bool committed = false;

    explicit TempFile(const fs::path& target) {
        std::random_device random;
        std::ostringstream name;
        name << target.filename().string() << ".tmp-" << std::hex << random() << random();
        path = target.parent_path() / name.str();
    }
    ~TempFile() {
        if (!committed) {
            std::error_code ignored;
            fs::remove(path, ignored);
        }
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
};

// A model that would not load back is not written.
void check_finite_for_save(const std::string& path, const Model& model) {
    for (const TensorSpec& spec : model.tensors()) {
        const float* w = model.tensor(spec.name);
        for (int64_t i = 0; i < spec.numel(); ++i)
            if (!std::isfinite(w[i]))
                fail(path, "not saved: tensor '" + spec.name + "' has a non-finite value at flat "
                           "index " + std::to_string(i) + " (did training diverge?)");
    }
}

// What a MambaWave file holds: the config in the metadata, every tensor as F32 (pointing into
// the model). Refuses a model that would not load back.
struct FileContents {
    std::map<std::string, std::string> metadata;
    std::vector<safetensors::TensorToWrite> tensors;
};

FileContents file_contents(const Model& model, const std::string& where) {
    model.config().validate(where);
    check_finite_for_save(where, model);
    FileContents file;
    file.metadata = {{"format", "pt"},  // HF tooling expects it
                     {"mambawave", config_to_json(model.config())}};
    for (const TensorSpec& spec : model.tensors())
        file.tensors.push_back({spec.name, safetensors::DType::F32, spec.shape, model.tensor(spec.name)});
    return file;
}

} // namespace

Model load_model_from_bytes(const std::string& name, const uint8_t* data, size_t size) {
    try {
        return load_mambawave(name, data, size);
    } catch (const nlohmann::json::exception& e) {
        // Every JSON access is checked first, so this is a bug in the loader; still a refused
        // load, never a crash of the host. (The fuzzer treats "internal error" as a crash.)
        fail(name, std::string("internal error while reading the header: ") + e.what());
    }
}

Model load_model(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        try {
            return load_hf_directory(path);
        } catch (const nlohmann::json::exception& e) {
            fail(path, std::string("internal error while reading the checkpoint: ") + e.what());
        }
    }
    const std::vector<uint8_t> bytes = read_file_bytes(path);
    return load_model_from_bytes(path, bytes.data(), bytes.size());
}

void save_model(const Model& model, const std::string& path) {
    const FileContents file = file_contents(model, path);

    TempFile temp{fs::path(path)};
    {
        std::ofstream out(temp.path, std::ios::binary | std::ios::trunc);
        if (!out)
            fail(path, "cannot create a temporary file in its directory (" + temp.path.string() +
                           "): " + std::strerror(errno));
        safetensors::write(out, file.metadata, file.tensors);
        out.close();
        if (!out) fail(path, "writing " + temp.path.string() + " failed (disk full?)");
    }
    std::error_code ec;
    fs::rename(temp.path, path, ec);  // atomic: readers see the old file or the new one
    if (ec) fail(path, "cannot move the finished file into place: " + ec.message());
    temp.committed = true;
}

std::vector<uint8_t> save_model_to_bytes(const Model& model) {
    const FileContents file = file_contents(model, "model");
    return safetensors::to_bytes(file.metadata, file.tensors);
}

} // namespace mw
