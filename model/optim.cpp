#include "model/optim.h"

#include "model/model.h"

#include <cmath>
#include <numbers>

namespace mw {

double scheduled_lr(double lr, int64_t step, int64_t warmup_steps, int64_t total_steps,
                    double final_ratio) {
    if (warmup_steps > 0 && step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
    if (total_steps <= warmup_steps) return lr;
    const double progress =
        std::min(1.0, double(step - warmup_steps) / double(total_steps - warmup_steps));
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));  // 1 -> 0
    return lr * (final_ratio + (1.0 - final_ratio) * cosine);
}

double clip_grad_norm(float* grads, int64_t n, double max_norm) {
    double sum_sq = 0;
    for (int64_t i = 0; i < n; ++i) sum_sq += double(grads[i]) * grads[i];
    const double norm = std::sqrt(sum_sq);
    if (max_norm > 0 && norm > max_norm) {
        const float scale = float(max_norm / norm);
        for (int64_t i = 0; i < n; ++i) grads[i] *= scale;
    }
    return norm;
}

std::vector<uint8_t> decay_mask(const Model& model) {
    std::vector<uint8_t> mask(size_t(model.parameter_count()), 0);
    const float* base = model.data();
    for (const TensorSpec& t : model.tensors()) {
        const std::string& n = t.name;
        const bool decays = n.find("in_proj.weight") != std::string::npos ||
                            n.find("conv1d.weight") != std::string::npos ||
                            n.find("x_proj.weight") != std::string::npos ||
                            n.find("dt_proj.weight") != std::string::npos ||
                            n.find("out_proj.weight") != std::string::npos ||
                            n == "backbone.embeddings.weight" || n == "lm_head.weight" ||
                            n == "stem.weight" || n == "head.weight" ||
                            (n.rfind("backbone.pools.", 0) == 0 && n.find(".weight") != std::string::npos);
        if (!decays) continue;
        const int64_t offset = model.tensor(n) - base;
        for (int64_t i = 0; i < t.numel(); ++i) mask[size_t(offset + i)] = 1;
    }
    return mask;
}

AdamW::AdamW(int64_t n_params, AdamWParams params)
    : p_(params), m_(size_t(n_params), 0.0f), v_(size_t(n_params), 0.0f) {}

void AdamW::step(float* weights, const float* grads, double lr, const uint8_t* mask) {
    ++t_;
    // θ -= lr·(m̂ / (sqrt(v̂) + eps) + wd·θ), m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t)
    const double c1 = 1.0 - std::pow(p_.beta1, double(t_));
    const double c2 = 1.0 - std::pow(p_.beta2, double(t_));
    const float b1 = float(p_.beta1), b2 = float(p_.beta2);
    const float step_size = float(lr / c1), inv_sqrt_c2 = float(1.0 / std::sqrt(c2));
    const float eps = float(p_.eps), decay = float(lr * p_.weight_decay);
    const int64_t n = int64_t(m_.size());
    for (int64_t i = 0; i < n; ++i) {
        const float g = grads[i];
        m_[size_t(i)] = b1 * m_[size_t(i)] + (1.0f - b1) * g;
        v_[size_t(i)] = b2 * v_[size_t(i)] + (1.0f - b2) * g * g;
        if (mask && mask[i]) weights[i] -= decay * weights[i];
        weights[i] -= step_size * m_[size_t(i)] / (std::sqrt(v_[size_t(i)]) * inv_sqrt_c2 + eps);
    }
}

} // namespace mw
