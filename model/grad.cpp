// The model-level face of the training tape: gradients as a Model, states as the engine's.
#include "model/grad.h"

#include "kernels/backward.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace mw {

Model zeros_like(const Model& m) { return Model(m.config()); }

Tape::Tape() : Tape(64) {}
Tape::Tape(int chunk_samples) : tape_(std::make_unique<kernels::TrainTape>(chunk_samples)) {}
Tape::~Tape() = default;
Tape::Tape(Tape&&) noexcept = default;
Tape& Tape::operator=(Tape&&) noexcept = default;

int Tape::chunk_samples() const { return tape_->chunk(); }
int64_t Tape::bytes_held() const { return tape_->bytes_held(); }

void Tape::forward_continuous(const Model& m, const float* x, int64_t L, const float* state_in,
                              float* y, float* state_out) {
    if (m.config().kind != IoKind::continuous)
        throw std::invalid_argument("Tape::forward_continuous: the model is a generator (kind mulaw8)");
    tape_->forward_continuous(m.view(), x, L, state_in, y, state_out);
    specs_ = m.tensors();
    conv_bias_ = m.config().conv_bias;
    tied_ = m.config().tie_embeddings;
}

void Tape::forward_tokens(const Model& m, const int32_t* tokens, int64_t L, const float* state_in,
                          float* logits, float* state_out) {
    if (m.config().kind != IoKind::mulaw8)
        throw std::invalid_argument("Tape::forward_tokens: the model is an effect (kind continuous)");
    tape_->forward_tokens(m.view(), tokens, L, state_in, logits, state_out);
    specs_ = m.tensors();
    conv_bias_ = m.config().conv_bias;
    tied_ = m.config().tie_embeddings;
}

void Tape::backward(const float* d_out, Model& grads) {
    if (tape_->length() == 0) throw std::logic_error("Tape::backward: no forward to go back through");
    const std::vector<TensorSpec>& have = grads.tensors();
    bool same = have.size() == specs_.size();
    for (size_t i = 0; same && i < have.size(); ++i)
        same = have[i].name == specs_[i].name && have[i].shape == specs_[i].shape;
    if (!same)
        throw std::invalid_argument("Tape::backward: the gradient model's tensors differ from the forward's "
                                    "model (make it with zeros_like(model))");
    const ModelConfig& c = grads.config();
    std::vector<kernels::LayerGrad> layers(static_cast<size_t>(c.n_layers));
    for (int i = 0; i < c.n_layers; ++i) {
        const std::string p = "backbone.layers." + std::to_string(i) + ".";
        kernels::LayerGrad& l = layers[static_cast<size_t>(i)];
        l.norm_w = grads.tensor(p + "norm.weight");
        l.in_proj_w = grads.tensor(p + "mixer.in_proj.weight");
        l.conv_w = grads.tensor(p + "mixer.conv1d.weight");
        l.conv_b = conv_bias_ ? grads.tensor(p + "mixer.conv1d.bias") : nullptr;
        l.x_proj_w = grads.tensor(p + "mixer.x_proj.weight");
        l.dt_proj_w = grads.tensor(p + "mixer.dt_proj.weight");
        l.dt_proj_b = grads.tensor(p + "mixer.dt_proj.bias");
        l.A_log = grads.tensor(p + "mixer.A_log");
        l.D = grads.tensor(p + "mixer.D");
        l.out_proj_w = grads.tensor(p + "mixer.out_proj.weight");
    }
    kernels::ModelGrad g;
    g.layers = layers.data();
    g.norm_f_w = grads.tensor("backbone.norm_f.weight");
    if (c.kind == IoKind::mulaw8) {
        g.embed_w = grads.tensor("backbone.embeddings.weight");
        g.lm_head_w = tied_ ? g.embed_w : grads.tensor("lm_head.weight");
    } else {
        g.stem_w = grads.tensor("stem.weight");
        g.stem_b = grads.tensor("stem.bias");
        g.head_w = grads.tensor("head.weight");
        g.head_b = grads.tensor("head.bias");
    }
    tape_->backward(d_out, g);
}

} // namespace mw
