#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace mw {

const char* to_string(IoKind kind) {
    switch (kind) {
    case IoKind::mulaw8: return "mulaw8";
    case IoKind::continuous: return "continuous";
    }
    return "?";
}

float ControlSpec::normalise(float value) const {
    double lo = min_value, hi = max_value, v = value;
    if (log_scale) {
        lo = std::log(lo);
        hi = std::log(hi);
        v = std::log(v);
    }
    if (hi <= lo) return 0.0f;
    return static_cast<float>(2.0 * (v - lo) / (hi - lo) - 1.0);
}

// Linear, or on a log axis (equal ratios for equal travel) where the control says so and its
// range is positive.
float ControlSpec::control_at(float min_value, float max_value, bool log_scale, float t) {
    t = std::clamp(t, 0.0f, 1.0f);
    if (log_scale && min_value > 0.0f && max_value > min_value) return min_value * std::pow(max_value / min_value, t);
    return min_value + t * (max_value - min_value);
}

kernels::Dims ModelConfig::dims() const {
    kernels::Dims d;
    d.d_model = d_model;
    d.n_layers = n_layers;
    d.d_inner = d_inner;
    d.d_state = d_state;
    d.d_conv = d_conv;
    d.dt_rank = dt_rank;
    d.norm_eps = norm_eps;
    return d;
}

kernels::Dims ModelConfig::level_dims(int level) const {
    kernels::Dims d = dims();
    int scale = 1;
    for (int i = 0; i < level; ++i) scale *= pool_expand;
    d.d_model *= scale;
    d.d_inner *= scale;
    d.dt_rank *= scale;
    d.n_layers = pooled() ? stack_layers() : n_layers;
    return d;
}

kernels::Dims ModelConfig::layer_dims(int layer) const {
    return pooled() ? level_dims(layer_level(layer)) : dims();
}

namespace {
void check_range(const std::string& where, const char* field, long long value, long long lo,
                 long long hi) {
    if (value < lo || value > hi)
        throw ModelError(where + ": config field '" + field + "' is " + std::to_string(value) +
                         ", expected " + std::to_string(lo) + ".." + std::to_string(hi));
}
} // namespace

void ModelConfig::validate(const std::string& where) const {
    check_range(where, "hidden_size", d_model, 1, 8192);
    check_range(where, "num_hidden_layers", n_layers, 1, 256);
    check_range(where, "intermediate_size", d_inner, 1, 32768);
    check_range(where, "state_size", d_state, 1, 1024);
    check_range(where, "conv_kernel", d_conv, 1, 64);
    check_range(where, "time_step_rank", dt_rank, 1, 8192);
    if (!(norm_eps > 0.0f && norm_eps < 1.0f))
        throw ModelError(where + ": config field 'layer_norm_epsilon' is " +
                         std::to_string(norm_eps) + ", expected a value in (0, 1)");
    for (size_t i = 0; i < lti_layers.size(); ++i) {
        const int l = lti_layers[i];
        if (l < 0 || l >= n_layers)
            throw ModelError(where + ": config field 'lti_layers' holds layer " + std::to_string(l) +
                             ", expected a layer index 0.." + std::to_string(n_layers - 1));
        if (i > 0 && l <= lti_layers[i - 1])
            throw ModelError(where + ": config field 'lti_layers' is not in ascending order without "
                             "repeats (layer " + std::to_string(l) + " after " +
                             std::to_string(lti_layers[i - 1]) + ")");
    }
    if (pooled()) {
        check_range(where, "pool (its number of factors)", int64_t(pool.size()), 1, 4);
        for (size_t i = 0; i < pool.size(); ++i)
            check_range(where, ("pool[" + std::to_string(i) + "]").c_str(), pool[i], 2, 64);
        check_range(where, "pool_expand", pool_expand, 1, 4);
        int64_t period = 1;  // (each factor is at most 64, so this cannot overflow)
        for (int f : pool) period *= f;
        if (period > 4096)
            throw ModelError(where + ": config field 'pool' multiplies to a period of " + std::to_string(period) +
                             " samples, expected at most 4096 (the deepest level would hear a frame that long)");
        if (n_layers % stacks() != 0)
            throw ModelError(where + ": config field 'num_hidden_layers' is " + std::to_string(n_layers) +
                             ", expected a multiple of " + std::to_string(stacks()) + " for a model with " +
                             std::to_string(pool.size()) + " pooling factors (" + std::to_string(stacks()) +
                             " stacks of equal depth)");
        if (kind != IoKind::mulaw8)
            throw ModelError(where + ": config field 'pool' is set on an effect: pooled models are generators "
                             "(an effect answers every sample at once, and a pooled level hears its input one "
                             "frame late)");
        const kernels::Dims deepest = level_dims(int(pool.size()));
        check_range(where, "hidden_size at the deepest pooled level", deepest.d_model, 1, 8192);
        check_range(where, "intermediate_size at the deepest pooled level", deepest.d_inner, 1, 32768);
    }
    if (labelled() || !labels.empty()) {
        if (kind != IoKind::mulaw8)
            throw ModelError(where + ": field 'io.labels' is set on an effect: labels are for generators");
        check_range(where, "io.label_prefix", label_prefix, 1, 4096);
        check_range(where, "io.labels (their number)", int64_t(labels.size()), 2, 64);
        for (size_t i = 0; i < labels.size(); ++i) {
            if (labels[i].empty() || labels[i].size() > 64)
                throw ModelError(where + ": field 'io.labels[" + std::to_string(i) + "]' is '" + labels[i] +
                                 "', expected a name of 1..64 characters");
            if (label_index(labels[i]) != int(i))
                throw ModelError(where + ": field 'io.labels' names '" + labels[i] + "' twice");
        }
    }
    if (guidance != 0.0f && !labelled())
        throw ModelError(where + ": field 'io.guidance' is " + std::to_string(guidance) +
                         " on a model without labels ('io.label_prefix' 0): guidance is for labelled generators");
    if (!(guidance >= 0.0f && guidance <= 20.0f))
        throw ModelError(where + ": field 'io.guidance' is " + std::to_string(guidance) + ", expected 0..20");
    if (label_null && !labelled())
        throw ModelError(where + ": field 'io.label_null' is true on a model without labels ('io.label_prefix' 0)");
    if (!(sample_rate_hz >= 1000.0 && sample_rate_hz <= 768000.0))
        throw ModelError(where + ": field 'io.sample_rate' is " + std::to_string(sample_rate_hz) +
                         ", expected 1000..768000 Hz");
    if (kind == IoKind::mulaw8) {
        check_range(where, "vocab_size", vocab, 256, 256);
        if (!controls.empty())
            throw ModelError(where + ": field 'io.controls' has " +
                             std::to_string(controls.size()) +
                             " entries, expected none for kind 'mulaw8'");
    } else {
        check_range(where, "io.n_cond", n_cond(), 0, 64);
        for (const ControlSpec& c : controls) {
            if (c.name.empty())
                throw ModelError(where + ": a control in 'io.controls' has an empty name");
            if (!(c.max_value > c.min_value) || !std::isfinite(c.min_value) ||
                !std::isfinite(c.max_value))
                throw ModelError(where + ": control '" + c.name + "' has range " +
                                 std::to_string(c.min_value) + ".." + std::to_string(c.max_value) +
                                 ", expected finite min < max");
            if (c.log_scale && !(c.min_value > 0.0f))
                throw ModelError(where + ": control '" + c.name +
                                 "' is log-scaled, so its min must be > 0, found " +
                                 std::to_string(c.min_value));
            if (!(c.default_value >= c.min_value && c.default_value <= c.max_value))
                throw ModelError(where + ": control '" + c.name + "' default " +
                                 std::to_string(c.default_value) + " is outside its range " +
                                 std::to_string(c.min_value) + ".." + std::to_string(c.max_value));
        }
    }
}

ModelConfig make_config(IoKind kind, int d_model, int n_layers, int d_state, int expand) {
    ModelConfig c;
    c.kind = kind;
    c.d_model = d_model;
    c.n_layers = n_layers;
    c.d_state = d_state;
    c.d_inner = expand * d_model;
    c.dt_rank = (d_model + 15) / 16;
    c.sample_rate_hz = kind == IoKind::mulaw8 ? 8000.0 : 48000.0;
    return c;
}

int64_t TensorSpec::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
    const int64_t D = c.d_model, N = c.d_state, K = c.d_conv;
    std::vector<TensorSpec> t;
    if (c.kind == IoKind::mulaw8) {
        t.push_back({"backbone.embeddings.weight", {c.vocab, D}});
    } else {
        t.push_back({"stem.weight", {D, c.n_in()}});
        t.push_back({"stem.bias", {D}});
    }
    for (int i = 0; i < c.n_layers; ++i) {
        const kernels::Dims ld = c.layer_dims(i);  // a pooled model's layers: their level's sizes
        const int64_t D = ld.d_model, E = ld.d_inner, R = ld.dt_rank;
        const std::string p = "backbone.layers." + std::to_string(i) + ".";
        t.push_back({p + "norm.weight", {D}});
        t.push_back({p + "mixer.in_proj.weight", {2 * E, D}});
        t.push_back({p + "mixer.conv1d.weight", {E, 1, K}});
        if (c.conv_bias) t.push_back({p + "mixer.conv1d.bias", {E}});
        if (!c.is_lti(i)) {
            t.push_back({p + "mixer.x_proj.weight", {R + 2 * N, E}});
            t.push_back({p + "mixer.dt_proj.weight", {E, R}});
        }
        t.push_back({p + "mixer.dt_proj.bias", {E}});
        t.push_back({p + "mixer.A_log", {E, N}});
        if (c.is_lti(i)) {
            t.push_back({p + "mixer.B", {E, N}});
            t.push_back({p + "mixer.C", {E, N}});
        }
        t.push_back({p + "mixer.D", {E}});
        t.push_back({p + "mixer.out_proj.weight", {D, E}});
    }
    // A pooled model's pools: level i's frame of pool[i] rows to one row of level i+1 (down),
    // and one row of level i+1 to the next frame's pool[i] rows of level i (up).
    for (size_t i = 0; i < c.pool.size(); ++i) {
        const int64_t Di = c.level_dims(int(i)).d_model, Dn = c.level_dims(int(i) + 1).d_model, p = c.pool[i];
        const std::string n = "backbone.pools." + std::to_string(i) + ".";
        t.push_back({n + "down.weight", {Dn, p * Di}});
        t.push_back({n + "down.bias", {Dn}});
        t.push_back({n + "up.weight", {p * Di, Dn}});
        t.push_back({n + "up.bias", {p * Di}});
    }
    t.push_back({"backbone.norm_f.weight", {D}});
    if (c.kind == IoKind::mulaw8) {
        if (!c.tie_embeddings) t.push_back({"lm_head.weight", {c.vocab, D}});
    } else {
        t.push_back({"head.weight", {1, D}});
        t.push_back({"head.bias", {1}});
    }
    return t;
}

Model::Model(ModelConfig config) : config_(std::move(config)) {
    config_.validate("model config");
    specs_ = expected_tensors(config_);
    int64_t total = 0;
    for (const TensorSpec& s : specs_) {
        offset_[s.name] = total;
        total += s.numel();
    }
    // One allocation for every tensor, plus E zeros standing in for an absent conv bias.
    weights_.assign(static_cast<size_t>(total + absent_bias_floats()), 0.0f);
    bind();
}

Model::Model(const Model& other)
    : config_(other.config_), specs_(other.specs_), offset_(other.offset_),
      weights_(other.weights_) {
    bind();
}

Model& Model::operator=(const Model& other) {
    if (this != &other) {
        config_ = other.config_;
        specs_ = other.specs_;
        offset_ = other.offset_;
        weights_ = other.weights_;
        bind();
    }
    return *this;
}

float* Model::tensor(const std::string& name) {
    auto it = offset_.find(name);
    if (it == offset_.end()) throw ModelError("model has no tensor '" + name + "'");
    return weights_.data() + it->second;
}

const float* Model::tensor(const std::string& name) const {
    return const_cast<Model*>(this)->tensor(name);
}

int64_t Model::state_floats_per_stream() const {
    const ModelConfig& c = config_;
    int64_t n = 0;
    for (int l = 0; l < c.n_layers; ++l) n += int64_t(c.layer_dims(l).d_inner) * ((c.d_conv - 1) + c.d_state);
    for (size_t i = 0; i < c.pool.size(); ++i) n += int64_t(c.pool[i]) * c.level_dims(int(i)).d_model;
    return n;
}

void Model::throw_pooled_view() {
    throw ModelError("this is a pooled model (config field 'pool'), which runs on the CPU through "
                     "model/pooled.h; this path takes flat models only (docs/POOLED.md says what runs a "
                     "pooled model so far)");
}

template <class Layer, class Ptr>
void Model::point_at_layer(int i, Layer& l, Ptr absent_conv_bias) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    l.norm_w = tensor(p + "norm.weight");
    l.in_proj_w = tensor(p + "mixer.in_proj.weight");
    l.conv_w = tensor(p + "mixer.conv1d.weight");
    l.conv_b = config_.conv_bias ? tensor(p + "mixer.conv1d.bias") : absent_conv_bias;
    if (config_.is_lti(i)) {
        l.lti_B = tensor(p + "mixer.B");
        l.lti_C = tensor(p + "mixer.C");
    } else {
        l.x_proj_w = tensor(p + "mixer.x_proj.weight");
        l.dt_proj_w = tensor(p + "mixer.dt_proj.weight");
    }
    l.dt_proj_b = tensor(p + "mixer.dt_proj.bias");
    l.A_log = tensor(p + "mixer.A_log");
    l.D = tensor(p + "mixer.D");
    l.out_proj_w = tensor(p + "mixer.out_proj.weight");
}

void Model::bind() {
    const ModelConfig& c = config_;
    const float* zeros = weights_.data() + (weights_.size() - static_cast<size_t>(absent_bias_floats()));
    layers_.assign(static_cast<size_t>(c.n_layers), {});
    for (int i = 0; i < c.n_layers; ++i) point_at_layer(i, layers_[static_cast<size_t>(i)], zeros);
    view_ = {};
    view_.dims = c.dims();
    view_.layers = layers_.data();
    view_.norm_f_w = tensor("backbone.norm_f.weight");
    if (c.kind == IoKind::mulaw8) {
        view_.head = kernels::HeadKind::tokens;
        view_.vocab = c.vocab;
        view_.embed_w = tensor("backbone.embeddings.weight");
        view_.lm_head_w = c.tie_embeddings ? view_.embed_w : tensor("lm_head.weight");
    } else {
        view_.head = kernels::HeadKind::continuous;
        view_.n_in = c.n_in();
        view_.stem_w = tensor("stem.weight");
        view_.stem_b = tensor("stem.bias");
        view_.head_w = tensor("head.weight");
        view_.head_b = tensor("head.bias");
        view_.skip = c.skip;
    }
    // A pooled model's stacks: each a kernels view of its layers alone; the last one, level 0's
    // up stack, ends in norm_f and the head (its embedding is not its input: the rows are).
    stacks_.clear();
    for (int s = 0; c.pooled() && s < c.stacks(); ++s) {
        kernels::ModelView v;
        v.dims = c.level_dims(c.stack_level(s));
        v.layers = layers_.data() + s * c.stack_layers();
        if (s + 1 < c.stacks()) {
            v.head = kernels::HeadKind::hidden;
        } else {
            v = view_;
            v.dims = c.level_dims(0);
            v.layers = layers_.data() + s * c.stack_layers();
        }
        stacks_.push_back(v);
    }
}

void Model::init_random(uint64_t seed, float jitter) {
    const ModelConfig& c = config_;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    auto fill_normal = [&](const std::string& name, float stddev) {
        float* w = tensor(name);
        const int64_t n = [&] {
            for (const TensorSpec& s : specs_)
                if (s.name == name) return s.numel();
            return int64_t(0);
        }();
        for (int64_t i = 0; i < n; ++i) w[i] = stddev * normal(rng);
    };
    const float jit = jitter;
    if (c.kind == IoKind::mulaw8) {
        // HF MambaConfig's initializer_range (0.1): with tied embeddings the logits start
        // near zero instead of betting everything on the class that came in.
        fill_normal("backbone.embeddings.weight", 0.1f);
        if (!c.tie_embeddings) fill_normal("lm_head.weight", 1.0f / std::sqrt(float(c.d_model)));
    } else {
        fill_normal("stem.weight", 1.0f);
        fill_normal("stem.bias", 0.1f + jit);
        // The head starts small: with skip the model starts near the identity (y ≈ x), the
        // right start for a residual effect; without it near silence
        // (ESR ≈ 1) instead of a loud, mostly DC output that the control inputs would make.
        fill_normal("head.weight", (c.skip ? 0.02f : 0.005f) / std::sqrt(float(c.d_model)));
        fill_normal("head.bias", jit);
    }
    for (int i = 0; i < c.n_layers; ++i) {
        const kernels::Dims ld = c.layer_dims(i);
        const int d_model = ld.d_model, d_inner = ld.d_inner, dt_rank = ld.dt_rank;
        const std::string p = "backbone.layers." + std::to_string(i) + ".";
        float* norm = tensor(p + "norm.weight");
        for (int d = 0; d < d_model; ++d) norm[d] = 1.0f + jit * 0.2f * normal(rng);
        fill_normal(p + "mixer.in_proj.weight", 1.0f / std::sqrt(float(d_model)));
        fill_normal(p + "mixer.conv1d.weight", 1.0f / std::sqrt(float(c.d_conv)));
        if (c.conv_bias) fill_normal(p + "mixer.conv1d.bias", 0.1f + jit * 0.2f);
        if (c.is_lti(i)) {
            // B starts at one, C standard normal (S4D's start; docs/ABLATION.md's harness)
            float* b = tensor(p + "mixer.B");
            for (int64_t k = 0; k < int64_t(d_inner) * c.d_state; ++k) b[k] = 1.0f + jit * normal(rng);
            fill_normal(p + "mixer.C", 1.0f);
        } else {
            fill_normal(p + "mixer.x_proj.weight", 1.0f / std::sqrt(float(d_inner)));
            fill_normal(p + "mixer.dt_proj.weight", 1.0f / std::sqrt(float(dt_rank)));
        }
        // dt = exp(U[log 1e-3, log 1e-1]); bias = softplus^-1(dt) = dt + log(-expm1(-dt))
        float* dt_b = tensor(p + "mixer.dt_proj.bias");
        for (int e = 0; e < d_inner; ++e) {
            const float dt = std::exp(std::log(1e-3f) + uniform(rng) * (std::log(1e-1f) - std::log(1e-3f)));
            dt_b[e] = dt + std::log(-std::expm1(-dt)) + jit * normal(rng);
        }
        float* a_log = tensor(p + "mixer.A_log");
        for (int e = 0; e < d_inner; ++e)
            for (int n = 0; n < c.d_state; ++n)
                a_log[e * c.d_state + n] = std::log(float(n + 1)) + jit * 0.5f * normal(rng);
        float* dd = tensor(p + "mixer.D");
        for (int e = 0; e < d_inner; ++e) dd[e] = 1.0f + jit * 0.5f * normal(rng);
        // Output projection scaled down with depth, as in mamba_ssm's prenorm rescale.
        fill_normal(p + "mixer.out_proj.weight",
                    1.0f / std::sqrt(float(d_inner)) / std::sqrt(float(c.n_layers)));
    }
    for (size_t i = 0; i < c.pool.size(); ++i) {  // the pools: fan-in scaled, biases zero
        const std::string n = "backbone.pools." + std::to_string(i) + ".";
        const int Di = c.level_dims(int(i)).d_model, Dn = c.level_dims(int(i) + 1).d_model;
        fill_normal(n + "down.weight", 1.0f / std::sqrt(float(c.pool[i] * Di)));
        fill_normal(n + "up.weight", 1.0f / std::sqrt(float(Dn)) / std::sqrt(float(c.n_layers)));
        fill_normal(n + "down.bias", jit * 0.1f);
        fill_normal(n + "up.bias", jit * 0.1f);
    }
    float* nf = tensor("backbone.norm_f.weight");
    for (int d = 0; d < c.d_model; ++d) nf[d] = 1.0f + jit * 0.2f * normal(rng);
}

kernels::ModelGrad Model::as_gradient(std::vector<kernels::LayerGrad>& layers) {
    const ModelConfig& c = config_;
    layers.assign(static_cast<size_t>(c.n_layers), {});
    for (int i = 0; i < c.n_layers; ++i)
        point_at_layer(i, layers[static_cast<size_t>(i)], static_cast<float*>(nullptr));
    kernels::ModelGrad g;
    g.layers = layers.data();
    g.norm_f_w = tensor("backbone.norm_f.weight");
    if (c.kind == IoKind::mulaw8) {
        g.embed_w = tensor("backbone.embeddings.weight");
        g.lm_head_w = c.tie_embeddings ? g.embed_w : tensor("lm_head.weight");
    } else {
        g.stem_w = tensor("stem.weight");
        g.stem_b = tensor("stem.bias");
        g.head_w = tensor("head.weight");
        g.head_b = tensor("head.bias");
    }
    return g;
}

} // namespace mw
