#include "model/losses.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

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

namespace {

// In-place iterative radix-2 FFT of n = 2^k points: a_k = Σ_j a_j e^{sign·2πi·jk/n}.
void fft(std::vector<std::complex<double>>& a, int sign) {
    const size_t n = a.size();
    for (size_t i = 1, j = 0; i < n; ++i) {  // bit reversal
        size_t bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) std::swap(a[i], a[j]);
    }
    for (size_t len = 2; len <= n; len <<= 1) {
        const double ang = sign * 2.0 * std::numbers::pi / double(len);
        const std::complex<double> wl(std::cos(ang), std::sin(ang));
        for (size_t i = 0; i < n; i += len) {
            std::complex<double> w(1.0);
            for (size_t k = 0; k < len / 2; ++k, w *= wl) {
                const std::complex<double> u = a[i + k], v = a[i + k + len / 2] * w;
                a[i + k] = u + v;
                a[i + k + len / 2] = u - v;
            }
        }
    }
}

bool power_of_two(int n) { return n >= 2 && (n & (n - 1)) == 0; }

} // namespace

double mrstft_loss(const float* y, const float* target, int64_t L, const StftLossParams& p, double scale,
                   float* d_y) {
    if (d_y) std::fill(d_y, d_y + L, 0.0f);
    int used = 0;
    for (int N : p.sizes)
        if (!power_of_two(N)) throw std::invalid_argument("mrstft_loss: FFT size " + std::to_string(N) +
                                                          " is not a power of two");
        else if (N <= L) ++used;
    if (used == 0) return 0.0;
    const double eps2 = p.eps * p.eps;
    double total = 0;
    std::vector<double> grad(d_y ? static_cast<size_t>(L) : 0, 0.0);
    for (int N : p.sizes) {
        if (N > L) continue;
        const int hop = N / 4, K = N / 2 + 1;
        const int64_t frames = 1 + (L - N) / hop;
        std::vector<double> win(static_cast<size_t>(N));
        for (int n = 0; n < N; ++n) win[size_t(n)] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * n / N);
        // Spectra of every frame: Y (kept for the gradient), |Y| and |T|.
        std::vector<std::complex<double>> Y(static_cast<size_t>(frames * K)), buf(static_cast<size_t>(N));
        std::vector<double> A(static_cast<size_t>(frames * K)), B(static_cast<size_t>(frames * K));
        for (int64_t f = 0; f < frames; ++f) {
            for (int which = 0; which < 2; ++which) {
                const float* x = (which == 0 ? y : target) + f * hop;
                for (int n = 0; n < N; ++n) buf[size_t(n)] = win[size_t(n)] * double(x[n]);
                fft(buf, -1);
                for (int k = 0; k < K; ++k) {
                    const double mag = std::sqrt(std::norm(buf[size_t(k)]) + eps2);
                    if (which == 0) {
                        Y[size_t(f * K + k)] = buf[size_t(k)];
                        A[size_t(f * K + k)] = mag;
                    } else {
                        B[size_t(f * K + k)] = mag;
                    }
                }
            }
        }
        double diff2 = 0, ref2 = 0, logsum = 0;
        for (size_t i = 0; i < A.size(); ++i) {
            diff2 += (A[i] - B[i]) * (A[i] - B[i]);
            ref2 += B[i] * B[i];
            logsum += std::fabs(std::log(A[i]) - std::log(B[i]));
        }
        const double num = std::sqrt(diff2), den = std::sqrt(ref2), cells = double(A.size());
        total += num / den + logsum / cells;
        if (!d_y) continue;
        // dloss/dA, then through |Y| = sqrt(|Y|² + eps²) to Y: G = dloss/dA / A, Z_k = G_k·Y_k, and
        // dloss/dx_n = Re Σ_{k<=N/2} Z_k e^{+2πi·kn/N} for the windowed frame x; d y = win·dx.
        const double w_res = scale / double(used);
        for (int64_t f = 0; f < frames; ++f) {
            std::fill(buf.begin(), buf.end(), std::complex<double>(0.0));
            for (int k = 0; k < K; ++k) {
                const size_t i = size_t(f * K + k);
                double dA = (num > 0 ? (A[i] - B[i]) / (num * den) : 0.0);
                const double lr = std::log(A[i]) - std::log(B[i]);
                dA += (lr > 0 ? 1.0 : lr < 0 ? -1.0 : 0.0) / (cells * A[i]);
                buf[size_t(k)] = (dA / A[i]) * Y[i];
            }
            fft(buf, +1);
            for (int n = 0; n < N; ++n) grad[size_t(f * hop + n)] += w_res * win[size_t(n)] * buf[size_t(n)].real();
        }
    }
    if (d_y)
        for (int64_t t = 0; t < L; ++t) d_y[t] = float(grad[size_t(t)]);
    return scale * total / double(used);
}

double NllSums::bits_per_sample() const {
    return count > 0 ? nats / double(count) / std::numbers::ln2 : 0.0;
}

NllSums cross_entropy(const float* logits, const int32_t* next_tokens, int64_t L, int V,
                      int64_t skip, float* d_logits, double scale) {
    NllSums s;
    std::vector<double> e(static_cast<size_t>(V));  // a row's exponentials, for its sum and its gradient
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
        for (int v = 0; v < V; ++v) {
            e[size_t(v)] = std::exp(double(z[v]) - zmax);
            sum += e[size_t(v)];
        }
        const int32_t k = next_tokens[t];
        s.nats += std::log(sum) + zmax - z[k];
        ++s.count;
        if (dz) {
            for (int v = 0; v < V; ++v) dz[v] = float(scale * e[size_t(v)] / sum);
            dz[k] -= float(scale);
        }
    }
    return s;
}

} // namespace mw
