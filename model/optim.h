// The optimiser of the trainer: AdamW (decoupled weight decay), a warm-up + cosine learning
// rate schedule and clipping by the global gradient norm. Plain loops over the model's one
// flat weight array (Model::data()), so it is the same for every model size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mw {

class Model;
namespace kernels {
class ThreadPool;
}

struct AdamWParams {
    double lr = 3e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;  // applied to projection/embedding weights only (decay_mask)
};

// Learning rate at `step` (0-based): linear warm-up over warmup_steps, then a cosine from lr
// down to lr * final_ratio at total_steps (and flat after that).
double scheduled_lr(double lr, int64_t step, int64_t warmup_steps, int64_t total_steps,
                    double final_ratio = 0.1);

// Scales grads [n] so their L2 norm is at most max_norm (<= 0: no clipping). Returns the
// norm before clipping. The sum of squares is taken in fixed blocks of kUpdateBlock elements,
// summed in block order, so the norm is the same with or without a pool and for any pool size.
double clip_grad_norm(float* grads, int64_t n, double max_norm, kernels::ThreadPool* pool = nullptr);

// Elements per task of the parallel update and norm (256 KiB of floats).
inline constexpr int64_t kUpdateBlock = int64_t(1) << 16;

// 1 for the weights that weight decay applies to (in_proj, conv1d, x_proj, dt_proj and
// out_proj weights, embeddings, heads, stem), 0 for norms, biases, A_log and D. [n params]
std::vector<uint8_t> decay_mask(const Model& model);

class AdamW {
public:
    AdamW(int64_t n_params, AdamWParams params);
    // One update of weights [n] from grads [n] at learning rate lr (see scheduled_lr). With a
    // pool, blocks of kUpdateBlock elements are shared out over its threads: each element's
    // update is independent, so the floats are the same as without.
    void step(float* weights, const float* grads, double lr, const uint8_t* decay_mask,
              kernels::ThreadPool* pool = nullptr);

    int64_t steps_taken() const { return t_; }
    // The moments, for checkpoints: [n] each.
    std::vector<float>& m() { return m_; }
    std::vector<float>& v() { return v_; }
    void set_steps_taken(int64_t t) { t_ = t; }
    const AdamWParams& params() const { return p_; }

private:
    AdamWParams p_;
    int64_t t_ = 0;
    std::vector<float> m_, v_;  // [n]
};

} // namespace mw
