#include "model/optim.h"

#include "kernels/thread_pool.h"
#include "model/model.h"

#include <cmath>
#include <numbers>
#include <vector>

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

namespace {

int64_t blocks_of(int64_t n) { return (n + kUpdateBlock - 1) / kUpdateBlock; }

// fn(begin, end) over [0, n) in blocks of kUpdateBlock, on the pool's threads where there is one
template <class Fn>
void for_blocks(int64_t n, kernels::ThreadPool* pool, Fn&& fn) {
    const int64_t nb = blocks_of(n);
    auto block = [&](int b) { fn(int64_t(b) * kUpdateBlock, std::min(n, int64_t(b + 1) * kUpdateBlock)); };
    if (pool && pool->size() > 1 && nb > 1) pool->run(int(nb), block);
    else for (int64_t b = 0; b < nb; ++b) block(int(b));
}

// Σ g² over [begin, end) in eight interleaved sums (vectorisable: the order is fixed by the
// code, not left to the compiler), added in a fixed order
double sum_squares(const float* g, int64_t begin, int64_t end) {
    double acc[8] = {};
    int64_t i = begin;
    for (; i + 8 <= end; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += double(g[i + k]) * double(g[i + k]);
    for (int k = 0; i < end; ++i, ++k) acc[k] += double(g[i]) * double(g[i]);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

} // namespace

double clip_grad_norm(float* grads, int64_t n, double max_norm, kernels::ThreadPool* pool) {
    std::vector<double> partial(size_t(blocks_of(n)), 0.0);
    for_blocks(n, pool, [&](int64_t b, int64_t e) { partial[size_t(b / kUpdateBlock)] = sum_squares(grads, b, e); });
    double sum_sq = 0;
    for (const double p : partial) sum_sq += p;
    const double norm = std::sqrt(sum_sq);
    if (max_norm > 0 && norm > max_norm) {
        const float scale = float(max_norm / norm);
        for_blocks(n, pool, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) grads[i] *= scale;
        });
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

namespace {

struct AdamCoefficients {
    float b1, b2, step_size, inv_sqrt_c2, eps, decay;
};

// One block of the update. Branch-free, so that the compiler vectorises it: the decay is a
// select whose result is the old branch's exactly (an undecayed weight is left as it was, not
// changed by w - 0·w); without a mask, nothing decays.
void adam_block(const AdamCoefficients k, float* __restrict w, float* __restrict m, float* __restrict v,
                const float* __restrict g, const uint8_t* __restrict mask, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        m[i] = k.b1 * m[i] + (1.0f - k.b1) * g[i];
        v[i] = k.b2 * v[i] + (1.0f - k.b2) * g[i] * g[i];
        const float wi = w[i], wd = wi - k.decay * wi;
        const float decayed = mask[i] ? wd : wi;
        w[i] = decayed - k.step_size * m[i] / (std::sqrt(v[i]) * k.inv_sqrt_c2 + k.eps);
    }
}

} // namespace

void AdamW::step(float* weights, const float* grads, double lr, const uint8_t* mask, kernels::ThreadPool* pool) {
    ++t_;
    // θ -= lr·(m̂ / (sqrt(v̂) + eps) + wd·θ), m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t)
    const double c1 = 1.0 - std::pow(p_.beta1, double(t_));
    const double c2 = 1.0 - std::pow(p_.beta2, double(t_));
    const AdamCoefficients k{float(p_.beta1), float(p_.beta2), float(lr / c1), float(1.0 / std::sqrt(c2)),
                             float(p_.eps), mask ? float(lr * p_.weight_decay) : 0.0f};
    // (no mask: every weight's select reads a zero byte from this block-sized row of zeros)
    static const std::vector<uint8_t> none(size_t(kUpdateBlock), 0);
    for_blocks(int64_t(m_.size()), pool, [&](int64_t begin, int64_t end) {
        adam_block(k, weights + begin, m_.data() + begin, v_.data() + begin, grads + begin,
                   mask ? mask + begin : none.data(), end - begin);
    });
}

} // namespace mw
