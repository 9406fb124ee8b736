// The multi-resolution STFT loss (model/losses.h, mrstft_loss) of a whole batch of lanes on the
// GPU: the frames' spectra by cuFFT (double precision, so it agrees with the CPU's double FFT to
// rounding), the spectral-convergence and log-magnitude sums per lane, and the gradient back
// through an inverse cuFFT and an overlap-add. The trainer calls it for effects trained with
// `--stft-weight` on `--device cuda`, where the FFTs used to run on the host, one lane after
// another. A plain C++ API, like mamba_cuda.h.
//
//   auto S = make_stft_loss({128, 512, 2048}, 1e-5);
//   stft_loss(*S, y, target, B, stride, begin, end, scale, loss, d_y);
//
// Every CUDA or cuFFT failure throws CudaError (mamba_cuda.h) naming the call.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace mw::kernels::cuda {

struct StftLoss;  // cuFFT plans, windows and device buffers, grown as the batches need
struct StftLossDeleter { void operator()(StftLoss* s) const; };
using StftLossPtr = std::unique_ptr<StftLoss, StftLossDeleter>;

// `sizes`: the FFT sizes (powers of two, >= 4), `eps`: the magnitudes' smoothing, as in
// StftLossParams. Throws std::invalid_argument for a size that is not a power of two.
StftLossPtr make_stft_loss(std::vector<int> sizes, double eps);

// B lanes, host arrays [B][stride]: lane b's signal is y[b·stride + begin[b], b·stride + end[b])
// against the same samples of target. For each lane, loss[b] = mrstft_loss of that range times
// scale[b] (0 when no size fits in it); with d_y not null, d_y [B][stride] gets scale[b] times its
// gradient there and 0 outside the range (written, not added).
void stft_loss(StftLoss& s, const float* y, const float* target, int B, int64_t stride, const int64_t* begin,
               const int64_t* end, const double* scale, double* loss, float* d_y);

} // namespace mw::kernels::cuda
