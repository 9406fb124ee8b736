// The CUDA path: the whole model's forward over long sequences on one GPU, parallel over time
// as well as channels (DESIGN.md "scan, CUDA"). A plain C++ API with no CUDA type in it, so
// model/, the CLI and the tests include it without nvcc; the library behind it is built only
// where CMake finds a CUDA compiler (target mw_kernels_cuda, kernels/cuda/CMakeLists.txt).
//
// Shapes use the letters of kernels/model_view.h, plus B: independent sequences (batch).
//
//   auto F = make_forward(model.view(), 1 << 22, 2);   // uploads weights, allocates scratch
//   forward_continuous(*F, x, L, y);                   // x [B][L][I] -> y [B][L]; any L
//   forward_continuous(*F, x2, L2, y2);                // carries on from where the first ended
//   reset(*F);                                         // back to the zero state
//
// Every CUDA or cuBLAS failure throws CudaError naming the call, the file and the line.
#pragma once

#include "kernels/model_view.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace mw::kernels::cuda {

struct CudaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A CUDA device is present and usable (driver loaded, at least one device). Never throws.
bool available();
// The name of the device the forward runs on ("" when none).
std::string device_name();

// Weights uploaded once, scratch for segments of up to max_segment steps of `batch`
// sequences, and each sequence's recurrent state (conv windows and SSM states of every layer),
// carried from one call to the next.
struct Forward;
struct ForwardDeleter { void operator()(Forward* f) const; };
using ForwardPtr = std::unique_ptr<Forward, ForwardDeleter>;

// Throws std::invalid_argument for a bad size, CudaError when the GPU refuses (no device,
// out of memory). The ModelView's arrays are read here and not kept.
ForwardPtr make_forward(const ModelView& m, int64_t max_segment, int batch);

// The model's head kind, batch and maximum segment.
HeadKind head_kind(const Forward& f);
int batch(const Forward& f);
int64_t max_segment(const Forward& f);

// Effect: x [B][L][I] (host, sample then normalised controls) -> y [B][L] (host).
// Generator: tokens [B][L] (host, 0..V-1) -> logits [B][L][V] (host).
// Any L >= 0: longer than max_segment goes through in segments. The state after the last
// step is kept, so a sequence split over several calls gives the same output as one call.
// Throws std::invalid_argument for the wrong head kind or a token out of range (before any
// state changes).
void forward_continuous(Forward& f, const float* x, int64_t L, float* y);
void forward_tokens(Forward& f, const int32_t* tokens, int64_t L, float* logits);

// Zero every sequence's state.
void reset(Forward& f);

// Time steps per scan chunk: 0 (the default) picks one from the GPU's size and the call's
// B and L; tests force others (any value >= 1) to put chunk edges elsewhere.
void set_scan_chunk(Forward& f, int chunk_steps);
// Which scan kernels run (kernels/cuda/scan.cu): 2 (the default) or 1 (the simple baseline,
// kept so tests and the benchmark can compare).
void set_scan_variant(Forward& f, int variant);

// Where the time of the forward calls since the last reset_timing() went, from device events.
struct Timing {
    double upload_ms = 0;    // host -> device copies of the inputs
    double compute_ms = 0;   // the model on the GPU
    double download_ms = 0;  // device -> host copies of the outputs
    int64_t steps = 0;       // time steps per sequence
};
Timing timing(const Forward& f);
void reset_timing(Forward& f);

} // namespace mw::kernels::cuda
