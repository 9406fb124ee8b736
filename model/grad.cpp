// The model-level face of the training tape: gradients as a Model, states as the engine's.
#include "model/grad.h"

#include "kernels/backward.h"
#include "model/pooled.h"

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
int64_t Tape::bytes_held() const { return tape_->bytes_held() + (pooled_ ? pooled_->bytes_held() : 0); }

void Tape::forward_continuous(const Model& m, const float* x, int64_t L, const float* state_in,
                              float* y, float* state_out) {
    if (m.config().kind != IoKind::continuous)
        throw std::invalid_argument("Tape::forward_continuous: the model is a generator (kind mulaw8)");
    tape_->forward_continuous(m.view(), x, L, state_in, y, state_out);
    last_pooled_ = false;
    specs_ = m.tensors();
}

void Tape::forward_tokens(const Model& m, const int32_t* tokens, int64_t L, const float* state_in,
                          float* logits, float* state_out) {
    if (m.config().kind != IoKind::mulaw8)
        throw std::invalid_argument("Tape::forward_tokens: the model is an effect (kind continuous)");
    if (m.config().pooled()) {
        if (!pooled_) pooled_ = std::make_unique<pooled::Tape>(tape_->chunk());
        pooled_->forward_tokens(m, tokens, L, state_in, logits, state_out);
    } else {
        tape_->forward_tokens(m.view(), tokens, L, state_in, logits, state_out);
    }
    last_pooled_ = m.config().pooled();
    specs_ = m.tensors();
}

void Tape::backward(const float* d_out, Model& grads) {
    if (last_pooled_) return pooled_->backward(d_out, grads);
    if (tape_->length() == 0) throw std::logic_error("Tape::backward: no forward to go back through");
    if (grads.tensors() != specs_)
        throw std::invalid_argument("Tape::backward: the gradient model's tensors differ from the forward's "
                                    "model (make it with zeros_like(model))");
    std::vector<kernels::LayerGrad> layers;
    const kernels::ModelGrad g = grads.as_gradient(layers);
    tape_->backward(d_out, g);
}

} // namespace mw
