// A Mamba model in memory: its config (what the file's __metadata__ says), its weights (one
// allocation, tensors laid out back to back) and a kernels::ModelView pointing into them.
#pragma once

#include "kernels/backward.h"
#include "kernels/model_view.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace mw {

// The one error type of model/: the message names the file, the tensor or field, and
// expected vs found, and says how to fix it where it can.
struct ModelError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class IoKind { mulaw8, continuous };  // file strings: "mulaw8", "continuous" (append-only)

const char* to_string(IoKind kind);

// One control input of an effect (e.g. a drive knob), in the units the user sees.
struct ControlSpec {
    std::string name;          // "drive"
    std::string unit;          // "", "Hz", "dB"
    float min_value = 0.0f;
    float max_value = 1.0f;
    float default_value = 0.0f;
    bool log_scale = false;    // normalised on a log axis (frequencies)

    // The value the network sees: user units mapped onto [-1, 1].
    float normalise(float value) const;
    // The value at position t in [0, 1] of the range (clamped), as a knob or a pedal sweeps it
    // (control_at).
    float at(float t) const { return control_at(min_value, max_value, log_scale, t); }
    static float control_at(float min_value, float max_value, bool log_scale, float t);
};

// A generator's class for silence: mu-law's for 0.0 (dsp::mulaw_encode(0.0f), which test_mulaw
// checks). Generation primes with it, `train --pad-end` pads with it, the Synth ends on it.
constexpr int32_t kSilenceClass = 128;

struct ModelConfig {
    // The backbone: HF transformers MambaConfig fields.
    int d_model = 16;          // hidden_size
    int n_layers = 4;          // num_hidden_layers
    int d_inner = 32;          // intermediate_size (= expand * d_model)
    int d_state = 16;          // state_size
    int d_conv = 4;            // conv_kernel
    int dt_rank = 1;           // time_step_rank (ceil(d_model / 16) by default)
    float norm_eps = 1e-5f;    // layer_norm_epsilon
    bool conv_bias = true;     // use_conv_bias (false: conv1d.bias absent, taken as zero)
    bool tie_embeddings = true;// tie_word_embeddings (generators: lm_head = embeddings)
    // Layers whose SSM is linear time-invariant (file: "lti_layers", ascending indices; empty:
    // every layer selective, as in HF Mamba). Such a layer has no x_proj.weight and no
    // dt_proj.weight; it has mixer.B and mixer.C [d_inner, d_state] instead (kernels/model_view.h).
    std::vector<int> lti_layers;
    // A pooled generator (file: "pool", "pool_expand"; docs/POOLED.md): empty for the flat
    // model above. pool[i] is the factor between level i and level i+1. Level 0 runs at the
    // sample rate with d_model, d_inner and dt_rank; level i at 1/(pool[0]·…·pool[i-1]) of it,
    // each size times pool_expand^i. The n_layers layers form 2·pool.size()+1 stacks of equal
    // depth, numbered in the order they run: the down stacks of levels 0, 1, …, the centre at
    // the deepest level, the up stacks of levels …, 1, 0 (stack_level()).
    std::vector<int> pool;
    int pool_expand = 2;

    // The io section.
    IoKind kind = IoKind::mulaw8;
    int vocab = 256;                       // mulaw8 only
    double sample_rate_hz = 8000.0;
    std::vector<ControlSpec> controls;     // continuous only; n_cond = controls.size()
    bool skip = false;                     // continuous only: add the input sample to the output
    // mulaw8 only: a generator told which label (say, which digit) to make (file: "io.labels",
    // "io.label_prefix"; docs/DIGITS.md). Each training clip starts with label_prefix samples of
    // its label's token (label i: token i, a full-scale value that audio does not hold), whose
    // own predictions are not scored; generation primes with the same. Empty / 0: none.
    std::vector<std::string> labels;
    int label_prefix = 0;
    // Trained with label dropout (`train --label-dropout`): some clips led by the null label's
    // prefix instead of their own, so the model also predicts audio whatever the label
    // ("io.label_null"). Guidance then needs two streams (the label's and the null one) instead
    // of one per label. The null label's token is label_token(labels.size()).
    bool label_null = false;
    // The label guidance weight this model scores best with ("io.guidance"; docs/DIGITS.md):
    // `generate --label` uses it when --guidance is not given, and the Synth's Guidance knob moves
    // to it when the model is picked. 0: none declared (generate unguided, the knob where it was).
    float guidance = 0;

    // Provenance.
    bool untrained = false;       // random weights (`mambawave init`): `info` says so loudly
    std::string description;
    std::string training_json = "{}";  // the training record, kept as JSON text

    int n_cond() const { return static_cast<int>(controls.size()); }
    bool is_lti(int layer) const {
        return std::find(lti_layers.begin(), lti_layers.end(), layer) != lti_layers.end();
    }
    int n_in() const { return 1 + n_cond(); }
    // Level 0's sizes (the flat model's), n_layers all the layers.
    kernels::Dims dims() const;

    bool labelled() const { return label_prefix > 0; }
    int label_index(const std::string& name) const {  // -1: not one of labels
        const auto it = std::find(labels.begin(), labels.end(), name);
        return it == labels.end() ? -1 : int(it - labels.begin());
    }
    // The prefix of label i: label_prefix copies of its token, label_token(i).
    static int32_t label_token(int i) { return int32_t(i); }
    std::vector<int32_t> label_tokens(int i) const { return std::vector<int32_t>(size_t(label_prefix), label_token(i)); }
    int null_label() const { return int(labels.size()); }  // label_token(null_label()): label_null only

    bool pooled() const { return !pool.empty(); }
    int stacks() const { return 2 * int(pool.size()) + 1; }
    int stack_layers() const { return n_layers / stacks(); }
    // The level stack s runs at: s for a down stack, pool.size() for the centre, and then back up.
    int stack_level(int s) const {
        const int P = int(pool.size());
        return s <= P ? s : 2 * P - s;
    }
    int layer_level(int layer) const { return stack_level(layer / stack_layers()); }
    // A level's sizes (n_layers: one stack's), and those of a layer's level.
    kernels::Dims level_dims(int level) const;
    kernels::Dims layer_dims(int layer) const;
    // Samples between a pooled model's phase-0 points: the product of the factors (1 if flat).
    int pool_period() const {
        int p = 1;
        for (int f : pool) p *= f;
        return p;
    }
    // n samples rounded up to whole pooling periods (n itself for a flat model).
    int64_t whole_periods(int64_t n) const {
        const int64_t p = pool_period();
        return (n + p - 1) / p * p;
    }
    // Throws ModelError naming `where` (a file name) when a size is out of range.
    void validate(const std::string& where) const;
};

// Defaults the way HF transformers derives them: d_inner = expand * d_model,
// dt_rank = ceil(d_model / 16).
ModelConfig make_config(IoKind kind, int d_model, int n_layers, int d_state = 16, int expand = 2);

// A tensor's name and shape as the file stores it.
struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;
    int64_t numel() const;
    bool operator==(const TensorSpec& o) const { return name == o.name && shape == o.shape; }
};

// Every tensor a model of this config has, in file order (HF names).
std::vector<TensorSpec> expected_tensors(const ModelConfig& config);

class Model {
public:
    Model() = default;
    // Zero weights of the right shapes (use init_random or fill through tensor()).
    explicit Model(ModelConfig config);

    Model(const Model& other);
    Model& operator=(const Model& other);
    Model(Model&&) noexcept = default;
    Model& operator=(Model&&) noexcept = default;

    const ModelConfig& config() const { return config_; }
    ModelConfig& mutable_config() { return config_; }  // metadata only; sizes must not change
    // The whole model for the kernels. A pooled model has no single view: this throws
    // ModelError saying so (model/pooled.h runs it from stack_view() and the pool tensors).
    const kernels::ModelView& view() const {
        if (config_.pooled()) throw_pooled_view();
        return view_;
    }
    // A pooled model's stack s (config().stacks() of them): HeadKind::hidden, except the last
    // (level 0's up stack), which carries norm_f and the generator's head (HeadKind::tokens).
    const kernels::ModelView& stack_view(int s) const { return stacks_.at(size_t(s)); }

    // A named tensor's storage (throws ModelError for an unknown name).
    float* tensor(const std::string& name);
    const float* tensor(const std::string& name) const;
    const std::vector<TensorSpec>& tensors() const { return specs_; }
    // The number of parameters (the tensors of the file).
    int64_t parameter_count() const {
        return static_cast<int64_t>(weights_.size()) - absent_bias_floats();
    }
    // All parameters as one flat array in file order, parameter_count() floats (optimisers and
    // gradients use this). Behind them sit zeros (the largest d_inner of its layers) that a
    // model without conv bias points its conv bias at; they are not parameters, never trained.
    float* data() { return weights_.data(); }
    const float* data() const { return weights_.data(); }
    // Zeroes, inside `params` (laid out as for_each_A_log's), what makes each selective layer's
    // Δ depend on its input: x_proj's first dt_rank rows and dt_proj.weight. Δ is then
    // softplus(dt_proj.bias) per channel (kernels/fixed_dt.h; `train --fixed-dt`). LTI layers
    // have neither tensor: their Δ is fixed already.
    void zero_dt_inputs(float* params) const {
        for (int l = 0; l < config_.n_layers; ++l) {
            if (config_.is_lti(l)) continue;
            const kernels::Dims d = config_.layer_dims(l);
            const std::string p = "backbone.layers." + std::to_string(l) + ".mixer.";
            for (const char* name : {"x_proj.weight", "dt_proj.weight"}) {
                float* w = params + (tensor(p + name) - data());
                std::fill(w, w + int64_t(d.dt_rank) * d.d_inner, 0.0f);  // R·E floats each
            }
        }
    }
    // f(A_log, E, N) on every layer's A_log [E][N] inside `params`, a flat array in this model's
    // parameter order: data() itself, or a gradient or optimiser array of the same layout.
    template <class F>
    void for_each_A_log(float* params, F f) const {
        for (int l = 0; l < config_.n_layers; ++l) {
            const float* A_log = tensor("backbone.layers." + std::to_string(l) + ".mixer.A_log");
            f(params + (A_log - data()), config_.layer_dims(l).d_inner, config_.d_state);
        }
    }
    // Floats of recurrent state per stream: conv windows and SSM states of all layers (in
    // layer order; each layer's own size). A pooled model adds, for each pool i, the up
    // projection's pool[i] rows of level i that the next frame adds in (model/pooled.h): its
    // state at a multiple of pool_period(), where training segments end.
    int64_t state_floats_per_stream() const;

    // This model's tensors as the place a backward adds its gradients (kernels/backward.h), for
    // a Model used as a gradient (grad.h's zeros_like): `layers` holds the per-layer views and
    // must live as long as the result. A tied lm_head points at the embeddings; an absent conv
    // bias is null.
    kernels::ModelGrad as_gradient(std::vector<kernels::LayerGrad>& layers);

    // Mamba-style initialisation (A_log = log(1..N), D = 1, dt bias for dt in [1e-3, 1e-1],
    // scaled-normal projections) from a seed; jitter > 0 perturbs A_log, D, biases and norm
    // weights away from their special init values, which tests want.
    void init_random(uint64_t seed, float jitter = 0.0f);

private:
    void bind();
    [[noreturn]] static void throw_pooled_view();
    // Layer i's tensors into l (a kernels::LayerView or LayerGrad: the same field names); an
    // absent conv bias points at absent_conv_bias.
    template <class Layer, class Ptr>
    void point_at_layer(int i, Layer& l, Ptr absent_conv_bias);

    // The zeros behind the parameters: the largest d_inner of any layer (d_inner when flat).
    int64_t absent_bias_floats() const {
        int64_t e = 0;
        for (int l = 0; l < config_.n_layers; ++l) e = std::max<int64_t>(e, config_.layer_dims(l).d_inner);
        return e;
    }

    ModelConfig config_;
    std::vector<TensorSpec> specs_;
    std::map<std::string, int64_t> offset_;   // tensor name -> offset into weights_
    std::vector<float> weights_;               // all tensors, back to back
    std::vector<kernels::LayerView> layers_;   // [n_layers]
    kernels::ModelView view_;
    std::vector<kernels::ModelView> stacks_;   // a pooled model's stacks; empty when flat
};

} // namespace mw
