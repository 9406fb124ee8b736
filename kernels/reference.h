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

// The backbone alone: hidden [L][D] in, final-normed hidden [L][D] out, float64 throughout.
void reference_backbone(const ModelView& m, const double* in, int64_t L, double* out);

} // namespace mw::kernels
