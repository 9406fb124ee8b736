// The reference: a plain forward of the whole model over one sequence, in float64, written
// to be read. It is the oracle every fast path (SIMD step, threaded scan, CUDA) is tested
// against. Obvious, slow, never optimised.
#pragma once

#include "kernels/model_view.h"

#include <cstdint>

namespace mw::kernels {

// Generator: tokens [L] (0..V-1) -> logits [L][V].
void reference_forward_tokens(const ModelView& m, const int32_t* tokens, int64_t L, float* logits);

// Effect: x [L][I] (sample, then normalised controls) -> y [L].
void reference_forward_continuous(const ModelView& m, const float* x, int64_t L, float* y);

// The same two in float64 from a given recurrent state, with float64 outputs (training runs
// sequences in segments with the state carried over, and the finite-difference gradient checks
// need every digit). state_in / state_out may be null (zero state / not wanted); their layout,
// per layer one after the other: the conv window [K-1][E] (pre-conv inputs, oldest first),
// then the SSM state [N][E] — [n_layers][(K-1)·E + N·E] in all.
void reference_forward_tokens_f64(const ModelView& m, const int32_t* tokens, int64_t L,
                                  const double* state_in, double* logits, double* state_out);
void reference_forward_continuous_f64(const ModelView& m, const float* x, int64_t L,
                                      const double* state_in, double* y, double* state_out);

// A stack of layers alone (HeadKind::hidden, any head in fact: only the layers run): the
// residual stream x [L][D] in, x after the last layer [L][D] out (no norm_f), float64
// throughout, from state_in (null: zero) to state_out (null: not wanted), layout as above.
void reference_stack_f64(const ModelView& m, const double* in, int64_t L, const double* state_in,
                         double* out, double* state_out);

// The backbone alone: hidden [L][D] in, final-normed hidden [L][D] out, float64 throughout.
void reference_backbone(const ModelView& m, const double* in, int64_t L, double* out);

} // namespace mw::kernels
