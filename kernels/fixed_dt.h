// Fixed Δ: a layer whose step size does not depend on its input. When x_proj's first dt_rank
// rows (which make r) or dt_proj.weight are all zero, Δ = softplus(dt_proj.bias) per channel,
// so the decays exp(Δ·A) are constants of the layer while B and C stay selective. The fast CPU
// paths then take the decays from a table made once (prepare_model) instead of one exponential
// per state and sample. `mambawave train --fixed-dt` trains such layers (docs/ABLATION.md).
#pragma once

#include "kernels/model_view.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace mw::kernels {

// A fixed layer's Δ = softplus(dt_bias), in float64 as the reference forms it (rounded once by
// the caller): the fast paths' decay table and the training tape's LTI constants.
inline double fixed_delta(double dt_bias) { return dt_bias > 20.0 ? dt_bias : std::log1p(std::exp(dt_bias)); }

// The step sizes past which a channel's decays 2^(Δ·A2) fall below 2^-125, A2 = A·log2(e) =
// -exp(A_log)·log2(e) as every path rounds it (in float64, once), A_log the channel's [N] row:
// past decays_vanish_dt (125 / min_n |A2|) every decay does, so Δ may be clamped there; up to
// fastest_vanish_dt (125 / max_n |A2|) none does, so Δ·A2 >= -125 needs no clamp. 3e38 where
// no decay is below 1 (no states, or A2 = 0). |A2| grows with A_log, so the extreme A_log gives it.
// Where |A2| overflows a float (A_log above about 88) its decays vanish at any step: no clamp of
// Δ then (a bound of 125/inf = 0 would make the product 0·inf; each path's clamp of the product
// Δ·A2 at -125 holds it instead), and no step is safe from the product's clamp.
inline float vanish_dt(float a_log, float where_rate_overflows) {
    const float a2 = float(std::exp(double(a_log)) * 1.4426950408889634);
    if (!std::isfinite(a2)) return where_rate_overflows;
    return a2 > 0.0f ? 125.0f / a2 : 3.0e38f;
}
inline float decays_vanish_dt(const float* A_log, int N) {
    return N > 0 ? vanish_dt(*std::min_element(A_log, A_log + N), 3.0e38f) : 3.0e38f;
}
inline float fastest_vanish_dt(const float* A_log, int N) {
    return N > 0 ? vanish_dt(*std::max_element(A_log, A_log + N), 0.0f) : 3.0e38f;
}

// An LTI layer's Δ is fixed by construction (it has neither x_proj nor dt_proj.weight).
inline bool dt_fixed(const LayerView& w, const Dims& d) {
    if (is_lti(w)) return true;
    const int64_t n = int64_t(d.dt_rank) * d.d_inner;  // x_proj rows [0, R) and dt_proj.weight: R·E each
    auto zero = [n](const float* p) { return std::all_of(p, p + n, [](float v) { return v == 0.0f; }); };
    return zero(w.x_proj_w) || zero(w.dt_proj_w);
}

} // namespace mw::kernels
