// The GPU training tape's insides (train_cuda.cu), shared with the pooled generators' tape
// (train_pooled.cu), which runs one TrainTape per stack of layers and the pools between them on
// the device. Not part of the public API (mamba_cuda.h).
#pragma once

#include "kernels/cuda/mamba_cuda.h"

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/layer.cuh"
#include "kernels/cuda/scan.cuh"

#include <vector>

namespace mw::kernels::cuda {

struct TrainTape : layer::GpuContext, layer::ModelShape {
    int B = 0;
    int64_t max_len = 0;
    int64_t L = 0;  // of the last forward (0: none yet)
    int bwd_chunk = kScanBackwardChunk;
    int bwd_variant = 3;
    int fwd_variant = 0;  // the forward scan's (ScanProblem::variant)
    int lti_run = 0;      // LTI backward: chunks per run (0: chosen)
    bool any_lti = false;
    bool tf32 = false;
    // A stack of a pooled model (docs/POOLED.md): its input is rows of the residual stream on the
    // device (train_forward_rows) instead of tokens or effect samples, and the backward hands
    // dLoss/d(those rows) back (train_backward_rows). The head may be HeadKind::hidden (the
    // rows after the last layer are the output: rows_out) or the generator's (logits).
    bool rows_in = false;
    TrainTiming time;

    layer::Weights w;
    detail::DevPtr<float> grad;  // the weights' layout
    PinnedFloats grad_host;      // grad brought back to the host (made at the first backward)
    PinnedFloats state_host;     // the state in and out in the device's layout (made at the first forward)

    // Kept by the forward.
    detail::DevPtr<float> keep;
    std::vector<float*> x;     // [layers + 1] of [rows][D]: each layer's input, then the last output
    std::vector<float*> uz;    // [layers] of [rows][2E]
    std::vector<float*> xdbc;  // [layers] of [rows][Mp] (selective layers; null for LTI ones)
    std::vector<float*> dt;    // [layers] of [rows][E]  (selective layers)
    float* xin = nullptr;      // [rows][I]
    detail::DevPtr<int32_t> tokens;    // [rows]
    detail::DevPtr<int32_t> targets;   // [rows] train_cross_entropy's
    detail::DevPtr<int64_t> feed;      // [4][B] train_self_feed's lanes (made at its first call)
    bool dout_on_device = false;  // train_cross_entropy has put dLoss/dlogits in dout
    detail::DevPtr<float> state_in;    // conv windows [layers][B][K-1][E], then SSM [layers][B][N][E]
    detail::DevPtr<float> state;       // the same, advanced by the forward (-> state_out)

    // Scratch of the forward and backward.
    detail::DevPtr<float> scratch;
    float *h = nullptr, *u = nullptr, *y = nullptr, *out = nullptr, *dout = nullptr;
    float *dx = nullptr, *dh = nullptr, *dyg = nullptr, *duz = nullptr, *dxdbc = nullptr, *ddt = nullptr,
          *du = nullptr, *part = nullptr;
    layer::ScanWorkspace scan_ws;
    detail::DevPtr<float> bwd_ws, ssm_tmp;
    int64_t sums_at = 0;  // bwd_ws + sums_at: the backward's column-sum scratch (after either scan's workspace)
    int64_t sums_floats = 0;

    int Mp() const { return layer::x_proj_cols(dims); }
    int64_t state_floats() const {
        return int64_t(dims.n_layers) * B * (dims.d_conv - 1 + dims.d_state) * dims.d_inner;
    }
    int64_t conv_offset(int l) const { return int64_t(l) * B * (dims.d_conv - 1) * dims.d_inner; }
    int64_t ssm_offset(int l) const {
        return int64_t(dims.n_layers) * B * (dims.d_conv - 1) * dims.d_inner +
               int64_t(l) * B * dims.d_state * dims.d_inner;
    }
    float* gw(const float* weight) const { return grad.get() + w.offset(weight); }
};

// A tape for a stack of a pooled model: its input is rows [B][L][D] on the device. m's head is
// HeadKind::hidden (the stack's output is its last layer's rows) or tokens (level 0's up stack:
// norm_f and the logits). Throws as make_train_tape.
TrainTapePtr make_train_tape_rows(const ModelView& m, int batch, int64_t max_len);

// The forward of a rows-in tape over L steps from x [B·L][D] (device; ready when the call is
// made: the caller has synchronised the stream that wrote it). States as train_forward_*'s
// (host). Returns when the GPU is done. The output stays on the device: rows_out(t) for a
// hidden head, t.out (logits) for a generator's, which train_cross_entropy reads.
void train_forward_rows(TrainTape& t, const ModelView& m, const float* x, int64_t L, const float* state_in,
                        float* state_out, WeightUpload up = WeightUpload::fresh);
// The last layer's output [B·L][D] of the last forward (device).
const float* rows_out(const TrainTape& t);

// The backward of a rows-in tape: d_out on the device ([B·L][D] for a hidden head; for a
// generator's head null: train_cross_entropy's gradient). Adds dLoss/dθ into g (host) and
// writes dLoss/dx [B·L][D] into d_in (device). Returns when the GPU is done.
void train_backward_rows(TrainTape& t, const float* d_out, const ModelGrad& g, float* d_in);

// The embedding's gradient: d_embed[v] (device, [V][D]) += the rows of dx [rows][D] whose token
// is v, in a fixed order. part: embed_backward_part(rows, V, D) floats; sums:
// embed_backward_sums(rows, V, D) floats (column_sums' scratch).
int64_t embed_backward_part(int64_t rows, int V, int D);
int64_t embed_backward_sums(int64_t rows, int V, int D);
void embed_backward(const int32_t* tokens, const float* dx, int64_t rows, int D, int V, float* d_embed, float* part,
                    float* sums, cudaStream_t stream);

} // namespace mw::kernels::cuda
