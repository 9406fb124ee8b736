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

// An LTI layer's Δ is fixed by construction (it has neither x_proj nor dt_proj.weight).
inline bool dt_fixed(const LayerView& w, const Dims& d) {
    if (is_lti(w)) return true;
    const int64_t n = int64_t(d.dt_rank) * d.d_inner;  // x_proj rows [0, R) and dt_proj.weight: R·E each
    auto zero = [n](const float* p) { return std::all_of(p, p + n, [](float v) { return v == 0.0f; }); };
    return zero(w.x_proj_w) || zero(w.dt_proj_w);
}

} // namespace mw::kernels
