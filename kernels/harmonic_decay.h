// Harmonic decays: a layer whose A_log rows have the form A_log[e][n] = α_e + log(n+1), so that
// A[e][n] = (n+1)·A[e][0]: the S4D-real structure Mamba starts from, one learnt rate per
// channel. Then exp(Δ·A[e][n]) = exp(Δ·A[e][0])^(n+1): one exponential per channel and step
// where a free A needs N, and the other N-1 decays are products. The fast CPU paths take that
// route wherever a layer has the form (fast.cpp checks it at prepare_model); `mambawave train
// --harmonic-decays` trains a model in it (docs/ABLATION.md says what it costs in quality).
#pragma once

#include "kernels/model_view.h"

namespace mw::kernels {

// Whether every row of A_log [E][N] has the form above, to float rounding: the fast paths'
// products then agree with the reference's N exponentials far inside their 1e-4 bound.
bool decays_harmonic(const float* A_log, int E, int N);
// ... in every layer of m.
bool decays_harmonic(const ModelView& m);

// The nearest harmonic A_log in least squares: α_e = mean_n (A_log[e][n] - log(n+1)).
void make_decays_harmonic(float* A_log, int E, int N);

// The gradient of a harmonic layer's A_log [E][N] restricted to the form: each row replaced by
// its mean, so that an element-wise optimiser (Adam) moves a row's elements together.
void harmonic_decay_gradient(float* dA_log, int E, int N);

} // namespace mw::kernels
