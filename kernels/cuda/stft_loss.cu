// The multi-resolution STFT loss on the GPU (stft_cuda.h). For each FFT size N (hop N/4, Hann
// window, frames wholly inside a lane's range), the same steps as model/losses.cpp's
// mrstft_loss, for every lane at once:
//   1. frame:   the windowed frames of y and of the target, [2][B][F][N] (F: the most frames any
//               lane has; a lane's missing frames are zeros and are never counted)
//   2. cuFFT:   their half spectra, [2][B][F][N/2+1] (double precision, D2Z)
//   3. sums:    per lane, Σ(|Y|−|T|)², Σ|T|² and Σ|ln|Y| − ln|T||, one block a lane
//   4. (host):  the lane's loss for this size, and the two factors its gradient needs
//   5. grad:    dloss/dY per cell, halved where the inverse real FFT counts a bin twice
//   6. cuFFT:   back to the frames (Z2D)
//   7. add:     the frames' gradients, windowed, overlap-added into each sample (a gather over
//               the at most N/hop frames that cover it: no atomics, the same sum every run)
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/stft_cuda.h"

#include <cufft.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

namespace mw::kernels::cuda {

namespace {

void check_cufft(cufftResult r, const char* call, const char* file, int line) {
    if (r != CUFFT_SUCCESS)
        throw CudaError(std::string("cuFFT error at ") + file + ":" + std::to_string(line) + ": " + call +
                        " failed (cufftResult " + std::to_string(int(r)) + ")");
}
#define MW_CUFFT_CHECK(call) check_cufft((call), #call, __FILE__, __LINE__)

using detail::DevPtr;
using detail::device_alloc;

__global__ void frame_kernel(const float* __restrict__ y, const float* __restrict__ t, int B, int64_t stride,
                             const int64_t* __restrict__ begin, const int* __restrict__ frames, int F, int N,
                             int hop, const double* __restrict__ win, double* __restrict__ out) {
    const int64_t total = int64_t(2) * B * F * N;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int n = int(i % N);
        const int64_t fb = i / N;  // (which, b, f)
        const int f = int(fb % F);
        const int b = int((fb / F) % B);
        const int which = int(fb / (int64_t(F) * B));
        double v = 0;
        if (f < frames[b]) {
            const float* x = (which == 0 ? y : t) + b * stride + begin[b] + int64_t(f) * hop + n;
            v = win[n] * double(*x);
        }
        out[i] = v;
    }
}

__device__ inline double smoothed_magnitude(cufftDoubleComplex z, double eps2) {
    return sqrt(z.x * z.x + z.y * z.y + eps2);
}

constexpr int kSumThreads = 256;  // sums_kernel's block: a power of two (its tree reduction)

// One block a lane: sums[b] = {Σ(A−T)², ΣT², Σ|ln A − ln T|} over its frames' cells.
__global__ void sums_kernel(const cufftDoubleComplex* __restrict__ spec, int B, int F, int K,
                            const int* __restrict__ frames, double eps2, double* __restrict__ sums) {
    const int b = blockIdx.x;
    const int64_t cells = int64_t(frames[b]) * K;
    const cufftDoubleComplex* Y = spec + int64_t(b) * F * K;
    const cufftDoubleComplex* T = spec + (int64_t(B) + b) * F * K;
    double d2 = 0, r2 = 0, lg = 0;
    for (int64_t i = threadIdx.x; i < cells; i += blockDim.x) {  // a lane's frames are its first cells
        const double a = smoothed_magnitude(Y[i], eps2), m = smoothed_magnitude(T[i], eps2);
        d2 += (a - m) * (a - m);
        r2 += m * m;
        lg += fabs(log(a) - log(m));
    }
    __shared__ double part[3][kSumThreads];
    part[0][threadIdx.x] = d2;
    part[1][threadIdx.x] = r2;
    part[2][threadIdx.x] = lg;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            for (int j = 0; j < 3; ++j) part[j][threadIdx.x] += part[j][threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        for (int j = 0; j < 3; ++j) sums[3 * b + j] = part[j][0];
}

// z[b][f][k] = dloss/dA / A · Y, with dloss/dA = (A − T)·c1[b] + sign(ln A − ln T)·c2[b] / A; the
// inner bins halved, since the inverse real FFT adds each of them twice (as k and N − k).
__global__ void grad_kernel(const cufftDoubleComplex* __restrict__ spec, int B, int F, int K,
                            const int* __restrict__ frames, const double* __restrict__ coef, double eps2,
                            cufftDoubleComplex* __restrict__ z) {
    const int64_t total = int64_t(B) * F * K;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int k = int(i % K);
        const int64_t bf = i / K;
        const int f = int(bf % F), b = int(bf / F);
        cufftDoubleComplex out{0, 0};
        if (f < frames[b]) {
            const cufftDoubleComplex Y = spec[i], T = spec[int64_t(B) * F * K + i];
            const double a = smoothed_magnitude(Y, eps2), m = smoothed_magnitude(T, eps2);
            const double lr = log(a) - log(m);
            double dA = (a - m) * coef[2 * b];
            dA += (lr > 0 ? 1.0 : lr < 0 ? -1.0 : 0.0) * coef[2 * b + 1] / a;
            const double g = dA / a * (k == 0 || k == K - 1 ? 1.0 : 0.5);
            out.x = g * Y.x;
            out.y = g * Y.y;
        }
        z[i] = out;
    }
}

// acc[b][begin + t] += weight[b] · Σ_f win[t − f·hop] · fgrad[b][f][t − f·hop] over the frames
// that cover sample t of lane b.
__global__ void overlap_add_kernel(const double* __restrict__ fgrad, int B, int F, int N, int hop,
                                   const int* __restrict__ frames, const int64_t* __restrict__ begin,
                                   const int64_t* __restrict__ end, const double* __restrict__ weight,
                                   const double* __restrict__ win, int64_t stride, double* __restrict__ acc) {
    const int64_t total = int64_t(B) * stride;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int b = int(i / stride);
        const int64_t t = i % stride - begin[b];
        const int fb = frames[b];
        if (fb == 0 || t < 0 || t >= end[b] - begin[b]) continue;
        const int64_t f_last = t / hop < fb - 1 ? t / hop : fb - 1;
        const int64_t f_first = t >= N ? (t - N) / hop + 1 : 0;
        double g = 0;
        for (int64_t f = f_first; f <= f_last; ++f) {
            const int n = int(t - f * hop);
            g += win[n] * fgrad[(int64_t(b) * F + f) * N + n];
        }
        acc[i] += weight[b] * g;
    }
}

__global__ void to_float_kernel(const double* __restrict__ a, int64_t n, float* __restrict__ out) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = float(a[i]);
}

// The element-wise kernels' launch: kThreads a block, enough blocks for n (grid-stride loops past 4096).
constexpr int kThreads = 256;
int blocks_for(int64_t n) { return int(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 4096)); }

bool power_of_two(int n) { return n >= 4 && (n & (n - 1)) == 0; }

// A device array that keeps its largest size.
template <class T>
struct Grown {
    DevPtr<T> p;
    int64_t n = 0;
    T* get(int64_t want) {
        if (want > n) {
            p.reset();
            p = device_alloc<T>(want);
            n = want;
        }
        return p.get();
    }
};

} // namespace

struct StftLoss {
    std::vector<int> sizes;
    double eps = 0;
    std::map<int, DevPtr<double>> windows;                  // per size: the Hann window [N]
    std::map<std::pair<int, int>, cufftHandle> forward, inverse;  // per (N, batch)
    Grown<float> y, t;
    Grown<double> frames_buf, acc, sums, coef, weight;
    Grown<cufftDoubleComplex> spec, z;
    Grown<int64_t> begin, end;
    Grown<int> frames;

    ~StftLoss() {
        for (auto& [key, h] : forward) cufftDestroy(h);
        for (auto& [key, h] : inverse) cufftDestroy(h);
    }
    cufftHandle plan(std::map<std::pair<int, int>, cufftHandle>& cache, int N, int batch, cufftType type) {
        const auto key = std::make_pair(N, batch);
        if (auto it = cache.find(key); it != cache.end()) return it->second;
        if (cache.size() >= 16) {  // lanes of changing lengths: keep the cache small
            for (auto& [k, h] : cache) cufftDestroy(h);
            cache.clear();
        }
        const int K = N / 2 + 1;
        int n[1] = {N};
        cufftHandle h = 0;
        if (type == CUFFT_D2Z)
            MW_CUFFT_CHECK(cufftPlanMany(&h, 1, n, nullptr, 1, N, nullptr, 1, K, CUFFT_D2Z, batch));
        else
            MW_CUFFT_CHECK(cufftPlanMany(&h, 1, n, nullptr, 1, K, nullptr, 1, N, CUFFT_Z2D, batch));
        cache.emplace(key, h);
        return h;
    }
    const double* window(int N) {
        auto it = windows.find(N);
        if (it == windows.end()) {
            const double pi = std::acos(-1.0);  // (the .cu files are C++17: no <numbers>)
            std::vector<double> w(static_cast<size_t>(N));
            for (int n = 0; n < N; ++n) w[size_t(n)] = 0.5 - 0.5 * std::cos(2.0 * pi * n / N);
            DevPtr<double> d = device_alloc<double>(N);
            MW_CUDA_CHECK(cudaMemcpy(d.get(), w.data(), size_t(N) * sizeof(double), cudaMemcpyHostToDevice));
            it = windows.emplace(N, std::move(d)).first;
        }
        return it->second.get();
    }
};

void StftLossDeleter::operator()(StftLoss* s) const { delete s; }

StftLossPtr make_stft_loss(std::vector<int> sizes, double eps) {
    for (int N : sizes)
        if (!power_of_two(N))
            throw std::invalid_argument("stft_loss: FFT size " + std::to_string(N) + " is not a power of two (>= 4)");
    StftLossPtr s(new StftLoss);
    s->sizes = std::move(sizes);
    s->eps = eps;
    return s;
}

void stft_loss(StftLoss& s, const float* y, const float* target, int B, int64_t stride, const int64_t* begin,
               const int64_t* end, const double* scale, double* loss, float* d_y) {
    if (B < 1 || stride < 1) throw std::invalid_argument("stft_loss: needs at least one lane and one sample");
    for (int b = 0; b < B; ++b)
        if (begin[b] < 0 || end[b] < begin[b] || end[b] > stride)
            throw std::invalid_argument("stft_loss: lane " + std::to_string(b) + "'s range [" +
                                        std::to_string(begin[b]) + ", " + std::to_string(end[b]) +
                                        ") is not inside its " + std::to_string(stride) + " samples");
    const int64_t BS = int64_t(B) * stride;
    float* y_d = s.y.get(BS);
    float* t_d = s.t.get(BS);
    MW_CUDA_CHECK(cudaMemcpy(y_d, y, size_t(BS) * sizeof(float), cudaMemcpyHostToDevice));
    MW_CUDA_CHECK(cudaMemcpy(t_d, target, size_t(BS) * sizeof(float), cudaMemcpyHostToDevice));
    int64_t* begin_d = s.begin.get(B);
    int64_t* end_d = s.end.get(B);
    MW_CUDA_CHECK(cudaMemcpy(begin_d, begin, size_t(B) * sizeof(int64_t), cudaMemcpyHostToDevice));
    MW_CUDA_CHECK(cudaMemcpy(end_d, end, size_t(B) * sizeof(int64_t), cudaMemcpyHostToDevice));
    double* acc = d_y ? s.acc.get(BS) : nullptr;
    if (acc) MW_CUDA_CHECK(cudaMemset(acc, 0, size_t(BS) * sizeof(double)));

    // Sizes each lane's range holds: the loss averages over them (as mrstft_loss does per call).
    std::vector<int> used(static_cast<size_t>(B), 0);
    for (int b = 0; b < B; ++b)
        for (int N : s.sizes) used[size_t(b)] += N <= end[b] - begin[b];
    std::vector<double> total(static_cast<size_t>(B), 0.0);
    const double eps2 = s.eps * s.eps;

    for (int N : s.sizes) {
        const int hop = N / 4, K = N / 2 + 1;
        std::vector<int> frames(static_cast<size_t>(B));
        int F = 0;
        for (int b = 0; b < B; ++b) {
            const int64_t L = end[b] - begin[b];
            frames[size_t(b)] = L >= N ? int(1 + (L - N) / hop) : 0;
            F = std::max(F, frames[size_t(b)]);
        }
        if (F == 0) continue;
        int* frames_d = s.frames.get(B);
        MW_CUDA_CHECK(cudaMemcpy(frames_d, frames.data(), size_t(B) * sizeof(int), cudaMemcpyHostToDevice));
        const double* win = s.window(N);
        const int64_t rows = int64_t(B) * F;
        double* fr = s.frames_buf.get(2 * rows * N);
        cufftDoubleComplex* spec = s.spec.get(2 * rows * K);
        frame_kernel<<<blocks_for(2 * rows * N), kThreads>>>(y_d, t_d, B, stride, begin_d, frames_d, F, N, hop, win, fr);
        MW_CUDA_CHECK_LAUNCH();
        MW_CUFFT_CHECK(cufftExecD2Z(s.plan(s.forward, N, int(2 * rows), CUFFT_D2Z), fr, spec));
        double* sums_d = s.sums.get(3 * int64_t(B));
        sums_kernel<<<B, kSumThreads>>>(spec, B, F, K, frames_d, eps2, sums_d);
        MW_CUDA_CHECK_LAUNCH();
        std::vector<double> sums(static_cast<size_t>(3 * B));
        MW_CUDA_CHECK(cudaMemcpy(sums.data(), sums_d, sums.size() * sizeof(double), cudaMemcpyDeviceToHost));
        std::vector<double> coef(static_cast<size_t>(2 * B), 0.0), weight(static_cast<size_t>(B), 0.0);
        for (int b = 0; b < B; ++b) {
            if (frames[size_t(b)] == 0) continue;
            const double num = std::sqrt(sums[size_t(3 * b)]), den = std::sqrt(sums[size_t(3 * b + 1)]);
            const double cells = double(frames[size_t(b)]) * K;
            total[size_t(b)] += num / den + sums[size_t(3 * b + 2)] / cells;
            coef[size_t(2 * b)] = num > 0 ? 1.0 / (num * den) : 0.0;
            coef[size_t(2 * b + 1)] = 1.0 / cells;
            weight[size_t(b)] = scale[b] / double(used[size_t(b)]);
        }
        if (!d_y) continue;
        double* coef_d = s.coef.get(2 * int64_t(B));
        double* weight_d = s.weight.get(B);
        MW_CUDA_CHECK(cudaMemcpy(coef_d, coef.data(), coef.size() * sizeof(double), cudaMemcpyHostToDevice));
        MW_CUDA_CHECK(cudaMemcpy(weight_d, weight.data(), weight.size() * sizeof(double), cudaMemcpyHostToDevice));
        cufftDoubleComplex* z = s.z.get(rows * K);
        grad_kernel<<<blocks_for(rows * K), kThreads>>>(spec, B, F, K, frames_d, coef_d, eps2, z);
        MW_CUDA_CHECK_LAUNCH();
        double* fgrad = fr;  // the frames are spent: their buffer takes the frames' gradients
        MW_CUFFT_CHECK(cufftExecZ2D(s.plan(s.inverse, N, int(rows), CUFFT_Z2D), z, fgrad));
        overlap_add_kernel<<<blocks_for(BS), kThreads>>>(fgrad, B, F, N, hop, frames_d, begin_d, end_d, weight_d, win,
                                                    stride, acc);
        MW_CUDA_CHECK_LAUNCH();
    }
    for (int b = 0; b < B; ++b) loss[b] = used[size_t(b)] > 0 ? scale[b] * total[size_t(b)] / used[size_t(b)] : 0.0;
    if (d_y) {
        float* out = s.y.get(BS);  // the input is spent too
        to_float_kernel<<<blocks_for(BS), kThreads>>>(acc, BS, out);
        MW_CUDA_CHECK_LAUNCH();
        MW_CUDA_CHECK(cudaMemcpy(d_y, out, size_t(BS) * sizeof(float), cudaMemcpyDeviceToHost));
    }
}

} // namespace mw::kernels::cuda
