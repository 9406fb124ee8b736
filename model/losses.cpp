#include "model/losses.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace mw {

namespace {
// e_t = p(y)_t − p(t)_t with p(x)_t = x_t − a·x_{t−1} (x_{−1} = 0)
double preemph_error(const float* y, const float* target, int64_t t, double a) {
    const double e = double(y[t]) - target[t];
    if (t == 0 || a == 0) return e;
    return e - a * (double(y[t - 1]) - target[t - 1]);
}
double preemph_target(const float* target, int64_t t, double a) {
    return t == 0 ? double(target[0]) : double(target[t]) - a * target[t - 1];
}
} // namespace

EsrSums esr_sums(const float* y, const float* target, int64_t L, double a, int64_t skip) {
    EsrSums s;
    for (int64_t t = std::max<int64_t>(skip, 0); t < L; ++t) {
        const double e = preemph_error(y, target, t, a);
        const double p = preemph_target(target, t, a);
        s.error += e * e;
        s.signal += p * p;
    }
    return s;
}

void esr_grad(const float* y, const float* target, int64_t L, double a, int64_t skip,
              double signal_total, float* d_y) {
    // Loss = Σ_{t>=skip} e_t² / S, e_t = (y_t − t_t) − a(y_{t−1} − t_{t−1})
    // dLoss/dy_t = 2/S · (e_t·[t>=skip] − a·e_{t+1}·[t+1>=skip])
    const double k = 2.0 / (signal_total > 0 ? signal_total : 1e-30);
    skip = std::max<int64_t>(skip, 0);
    for (int64_t t = 0; t < L; ++t) {
        double g = 0;
        if (t >= skip) g += preemph_error(y, target, t, a);
        if (t + 1 < L && t + 1 >= skip) g -= a * preemph_error(y, target, t + 1, a);
        d_y[t] = float(k * g);
    }
}

double NllSums::bits_per_sample() const {
    return count > 0 ? nats / double(count) / std::numbers::ln2 : 0.0;
}

NllSums cross_entropy(const float* logits, const int32_t* next_tokens, int64_t L, int V,
                      int64_t skip, float* d_logits, double scale) {
    NllSums s;
    for (int64_t t = 0; t < L; ++t) {
        const float* z = logits + t * V;
        float* dz = d_logits ? d_logits + t * V : nullptr;
        if (t < skip) {
            if (dz) std::fill(dz, dz + V, 0.0f);
            continue;
        }
        // −ln p(k) = logsumexp(z) − z_k
        const float zmax = *std::max_element(z, z + V);
        double sum = 0;
        for (int v = 0; v < V; ++v) sum += std::exp(double(z[v]) - zmax);
        const int32_t k = next_tokens[t];
        s.nats += std::log(sum) + zmax - z[k];
        ++s.count;
        if (dz) {
            for (int v = 0; v < V; ++v) dz[v] = float(scale * std::exp(double(z[v]) - zmax) / sum);
            dz[k] -= float(scale);
        }
    }
    return s;
}

} // namespace mw
