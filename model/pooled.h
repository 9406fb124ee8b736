// A pooled generator (ModelConfig::pool; docs/POOLED.md): stacks of Mamba layers at several
// rates, joined by learnt pools, in the style of SaShiMi's U-Net (Goel et al. 2022), which the
// Mamba paper used for its SC09 digits. With levels 0..P (P = pool.size()) and pool[i] = p_i:
//
//   x_0      = embeddings[token]                                   rows of level 0, [L][D_0]
//   a_i      = down_i(x_i)                                          the down stack of level i
//   x_{i+1}  = W↓_i · (a_i[k·p_i], …, a_i[k·p_i + p_i − 1]) + b↓_i  one row per whole frame k
//   h_P      = centre(x_P)
//   u_i[t]   = a_i[t] + (W↑_i · h_{i+1}[k − 1] + b↑_i)[t − k·p_i]   k = t / p_i; frame −1: the
//                                                                    carried state (zero at first)
//   h_i      = up_i(u_i)                                            the up stack of level i
//   logits   = lm_head · (RMSNorm(h_0) ⊙ norm_f)                   (up_0 carries norm_f and the head)
//
// Level i+1 hears a frame once it is whole and answers in the next frame, so every output
// depends only on earlier samples. A level-(i+1) row costs about p_i / pool_expand² of a level-i
// row per sample, so the deeper levels are nearly free on the audio thread; their cost comes in
// bursts at frame ends.
//
// What runs a pooled model so far: the float64 reference, the chunked forward over a sequence,
// the recurrent step (CPU), and the training tape (CPU, and the GPU's: kernels/cuda/mamba_cuda.h's
// PooledTape over cuda_view()), which also gives `run --device cuda` its forward
// (model/engine.h forward_tokens_cuda). The CUDA scan forward and step take flat models only
// (Model::view() refuses a pooled one with a clear error).
//
// Stream state (Model::state_floats_per_stream), at a multiple of pool_period() samples: every
// layer's state in layer order (kernels/backward.h's layout per layer, each at its level's
// size), then for each pool i the p_i rows [p_i][D_i] of W↑_i · h_{i+1} + b↑_i that the next
// frame adds in.
#pragma once

#include "kernels/backward.h"
#include "kernels/cuda/mamba_cuda.h"
#include "kernels/fast.h"
#include "model/model.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace mw::kernels { class ThreadPool; }

namespace mw::pooled {

// float64 reference: tokens [L] -> logits [L][V], from state_in to state_out (either null: zero
// / not wanted). A state in is one at a multiple of pool_period() samples (as every state out
// is); with a state out, L must be such a multiple too.
void reference_forward_tokens_f64(const Model& m, const int32_t* tokens, int64_t L, const double* state_in,
                                  double* logits, double* state_out);

// The fast forward over a sequence, in segments: each stack through the chunked scan
// (kernels::scan_hidden), the pools between, every stack's state and the pools' rows carried
// from one segment to the next. Memory is bounded for any length, and the buffers are made once:
// on this VM a fresh buffer of megabytes costs more in page faults than the stacks' arithmetic.
class Forward {
public:
    // segment: samples per pass, rounded up to a multiple of pool_period().
    explicit Forward(const Model& m, int64_t segment = 8192);
    ~Forward();
    Forward(Forward&&) noexcept;
    Forward& operator=(Forward&&) noexcept;
    void reset();  // back to the zero state
    // tokens [L] -> logits [L][V], continuing from the state the last call left. A call whose
    // length is not a multiple of pool_period() ends mid-frame: the next must follow reset()
    // (std::logic_error otherwise). pool may be null.
    void run(const int32_t* tokens, int64_t L, float* logits, kernels::ThreadPool* pool);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A whole sequence from the zero state through a Forward. tokens [L] -> logits [L][V].
void forward_tokens(const Model& m, const int32_t* tokens, int64_t L, float* logits, kernels::ThreadPool* pool);

// A pooled model's weights in the step's layout (each stack prepared for the kernels, the pools'
// products transposed, the embeddings): made once, read-only, shared by every Stepper of the
// model (the Synth's voices and their guidance streams: one copy in memory and in the caches,
// not one per stream). The model may go away once it is made.
// options: kernels::PrepareOptions for every stack (half_weights off: the step reads floats
// only, to time one against the other).
struct Prepared;
std::shared_ptr<const Prepared> prepare(const Model& m, kernels::PrepareOptions options = {});
// The weights every stack's step reads as halves (kernels::half_weight_count, summed).
int64_t half_weight_count(const Prepared& w);

// The recurrent step of S streams, one sample each per call; allocation-free after construction.
class Stepper {
public:
    // Prepares its own weights (prepare(m)).
    Stepper(const Model& m, int streams);
    // Steps over weights prepared once and shared: only the streams' state is this Stepper's.
    Stepper(std::shared_ptr<const Prepared> weights, int streams);
    ~Stepper();
    Stepper(Stepper&&) noexcept;
    Stepper& operator=(Stepper&&) noexcept;
    int streams() const;
    void reset();  // every stream to the zero state, every level to the start of its frame
    // tokens [S] -> logits [S][V]
    void step(const int32_t* tokens, float* logits);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The model's stacks' gradients inside grads (zeros_like(m)'s): stack s's layers, and for the
// last stack norm_f and the head, the embedding's gradient with them. `layers` holds the views.
std::vector<kernels::ModelGrad> stack_grads(Model& grads, std::vector<kernels::LayerGrad>& layers);

// A whole sequence, tokens [L] -> logits [L][V] from the zero state, through a forward that
// takes whole pooling periods from a state and gives the state after them (Tape::forward_tokens'
// and the GPU tape's contract): segment_forward(tokens, n, state_in, logits, state_out) with n a
// multiple of pool_period() of at most `segment` (rounded up to whole periods). Each state is
// carried into the next segment; the last is padded with silence to a whole period and its logits
// past L dropped (by causality the padding changes none before it). `run --device cuda` runs a
// pooled model so, over the GPU tape (model/engine.cpp); the tests run it over Tape.
// The length of the segments it passes for L samples and `segment` (the most a tape must hold).
int64_t periods_segment(const Model& m, int64_t L, int64_t segment);
using SegmentForward = std::function<void(const int32_t* tokens, int64_t n, const float* state_in, float* logits,
                                          float* state_out)>;
void forward_in_periods(const Model& m, const int32_t* tokens, int64_t L, float* logits, int64_t segment,
                        const SegmentForward& segment_forward);

// The model as the GPU tape's views (pointers into m, which must outlive them) and a gradient
// model (zeros_like(m)'s) as its gradient arrays.
kernels::cuda::PooledView cuda_view(const Model& m);
kernels::cuda::PooledGrad cuda_grad(Model& grads, std::vector<kernels::LayerGrad>& layers);

// The training tape of one sequence: forward (kept), then backward into a gradient model.
class Tape {
public:
    explicit Tape(int chunk_samples = 64);
    ~Tape();
    Tape(Tape&&) noexcept;
    Tape& operator=(Tape&&) noexcept;
    // tokens [L] -> logits [L][V]; states as above (null: zero / not wanted; they may be one
    // buffer). With a state out, L must be a multiple of pool_period().
    void forward_tokens(const Model& m, const int32_t* tokens, int64_t L, const float* state_in, float* logits,
                        float* state_out);
    // dLoss/dlogits [L][V] -> adds dLoss/dθ into grads (zeros_like(m)'s layout).
    void backward(const float* d_logits, Model& grads);
    int64_t bytes_held() const;
    int64_t length() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace mw::pooled
