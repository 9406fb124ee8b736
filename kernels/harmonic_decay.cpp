#include "kernels/harmonic_decay.h"

#include <cmath>

namespace mw::kernels {

bool decays_harmonic(const float* A_log, int E, int N) {
    for (int e = 0; e < E; ++e) {
        const float* row = A_log + e * N;
        for (int n = 1; n < N; ++n) {
            // a few float ulps of the two values compared, plus an absolute margin near zero
            const double tol = 1e-6 + 4.0 * 1.2e-7 * (std::fabs(row[0]) + std::fabs(row[n]));
            if (!(std::fabs(double(row[n]) - double(row[0]) - std::log(double(n + 1))) <= tol)) return false;
        }
    }
    return true;
}

bool decays_harmonic(const ModelView& m) {
    for (int l = 0; l < m.dims.n_layers; ++l)
        if (!decays_harmonic(m.layers[l].A_log, m.dims.d_inner, m.dims.d_state)) return false;
    return true;
}

void make_decays_harmonic(float* A_log, int E, int N) {
    for (int e = 0; e < E; ++e) {
        float* row = A_log + e * N;
        double alpha = 0;
        for (int n = 0; n < N; ++n) alpha += double(row[n]) - std::log(double(n + 1));
        alpha /= N;
        // row[0] first: the other elements are rounded around the same float α
        row[0] = float(alpha);
        for (int n = 1; n < N; ++n) row[n] = float(double(row[0]) + std::log(double(n + 1)));
    }
}

void harmonic_decay_gradient(float* dA_log, int E, int N) {
    for (int e = 0; e < E; ++e) {
        float* row = dA_log + e * N;
        double mean = 0;
        for (int n = 0; n < N; ++n) mean += row[n];
        mean /= N;
        for (int n = 0; n < N; ++n) row[n] = float(mean);
    }
}

} // namespace mw::kernels
