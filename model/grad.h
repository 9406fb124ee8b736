// Training gradients: one sequence forward with the tape kept, then back (kernels/backward.h
// does the math; docs/TRAINING_MATH.md gives the equations and the memory plan).
#pragma once

#include "model/model.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace mw {

namespace kernels { class TrainTape; }
namespace pooled { class Tape; }

// Gradients have the model's own layout: a Model with the same config whose weights hold
// dLoss/dθ (data() gives them flat, parameter_count() floats, for optimisers).
Model zeros_like(const Model& m);  // same config, all zero

// One training sequence, forward then backward. The initial recurrent state may be carried from
// the previous segment (truncated BPTT; no gradient flows into it); the final state is returned.
// States: Model::state_floats_per_stream() floats, per layer one after the other the conv window
// [K-1][d_inner] (oldest first), then the SSM state [d_state][d_inner]; for d_inner a multiple of
// 8 that is kernels::stream_state's layout.
//
// Reusable scratch, sized on first use, grown as needed; one per thread. The forward copies the
// weights it needs, so the model may change (an optimiser step) before backward() runs.
class Tape {
public:
    Tape();                                // chunk 64
    explicit Tape(int chunk_samples);      // samples between SSM checkpoints in the backward
    ~Tape();
    Tape(Tape&&) noexcept;
    Tape& operator=(Tape&&) noexcept;

    // Effect: x [L][I] -> y [L]. state_in / state_out: [state_floats_per_stream] or nullptr
    // (zero / not wanted); they may be the same buffer.
    void forward_continuous(const Model& m, const float* x, int64_t L, const float* state_in, float* y,
                            float* state_out);
    // Generator: tokens [L] -> logits [L][V]
    void forward_tokens(const Model& m, const int32_t* tokens, int64_t L, const float* state_in,
                        float* logits, float* state_out);
    // After a forward: dLoss/dy [L] (or dLoss/dlogits [L][V]) -> accumulates (+=) into grads,
    // which must have the forward's model config (throws std::invalid_argument otherwise, and
    // std::logic_error without a forward).
    void backward(const float* d_out, Model& grads);

    int chunk_samples() const;
    int64_t bytes_held() const;  // memory held now: the tape of the last forward plus scratch

private:
    std::unique_ptr<kernels::TrainTape> tape_;
    std::unique_ptr<pooled::Tape> pooled_;  // a pooled model's (model/pooled.h), made on first use
    bool last_pooled_ = false;
    std::vector<TensorSpec> specs_;  // the last forward's model's tensors
};

} // namespace mw
