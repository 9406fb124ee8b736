// The whole-model forward on the GPU (mamba_cuda.h): per layer, RMSNorm, in_proj (cuBLAS
// SGEMM, full fp32), the causal depthwise conv + SiLU, x_proj and dt_proj (cuBLAS), the
// chunked selective scan (scan.cu), out_proj with the residual added by the SGEMM itself;
// then norm_f and the head. An LTI layer has no x_proj or dt_proj: its scan (scan_lti.cu)
// takes its constants instead. Sequences go through in segments of up to max_segment steps; the
// conv windows and SSM states carry from one segment (and one call) to the next.
//
// Device buffers of a segment are row-major [B][Lseg][width]: row b·Lseg + t.
#include "kernels/cuda/mamba_cuda.h"

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/layer.cuh"
#include "kernels/cuda/scan.cuh"
#include "kernels/cuda/scan_lti.cuh"

#include <cuda_profiler_api.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace mw::kernels::cuda {
namespace {

using detail::add_elapsed;
using detail::DevPtr;
using detail::device_alloc;
using namespace layer;

} // namespace

// ---- the Forward ------------------------------------------------------------------------

struct Forward : layer::GpuContext, layer::ModelShape {
    int B = 0;
    int64_t max_seg = 0;
    int chunk_override = 0;
    int scan_variant = 0;

    layer::Weights w;                   // every tensor back to back

    DevPtr<float> scratch;              // the activations of one segment, below
    float* xin = nullptr;               // [B][S][I]     effect input
    float* x = nullptr;                 // [B][S][D]     residual stream
    float* h = nullptr;                 // [B][S][D]     normed
    float* uz = nullptr;                // [B][S][2E]    in_proj out: u (pre-conv), z
    float* u = nullptr;                 // [B][S][E]     after conv + SiLU
    float* xdbc = nullptr;              // [B][S][Mp]    x_proj out: B, C, r, zeros (selective layers)
    float* dt = nullptr;                // [B][S][E]     dt_proj out (before bias, softplus) (selective layers)
    float* y = nullptr;                 // [B][S][E]     scan out, gated
    float* out = nullptr;               // [B][S][1 or V]
    float* audio = nullptr;             // [B][S]        forward_effect's samples
    DevPtr<float> controls;             // [I-1]         forward_effect's controls
    DevPtr<int32_t> tokens;             // [B][S]

    DevPtr<float> state;                // conv windows [layers][B][K-1][E], then SSM [layers][B][N][E]
    layer::ScanWorkspace scan_ws;       // the selective scan's or the LTI scan's, whichever needs more
    bool any_selective = false;         // a layer with x_proj
    bool any_lti = false;               // an LTI layer

    Timing time;

    float* conv_window(int l) const {
        return state.get() + int64_t(l) * B * (dims.d_conv - 1) * dims.d_inner;
    }
    float* ssm_state(int l) const {
        return state.get() + int64_t(dims.n_layers) * B * (dims.d_conv - 1) * dims.d_inner +
               int64_t(l) * B * dims.d_state * dims.d_inner;
    }
    int64_t state_floats() const {
        return int64_t(dims.n_layers) * B * (dims.d_conv - 1 + dims.d_state) * dims.d_inner;
    }
};

void ForwardDeleter::operator()(Forward* f) const { delete f; }

bool available() {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();  // clear it, so that later calls start clean
        return false;
    }
    return n > 0;
}

std::string device_name() {
    if (!available()) return "";
    int dev = 0;
    cudaDeviceProp prop{};
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess)
        return "";
    return prop.name;
}

namespace detail {
std::atomic<int64_t> host_wait_ns{0};

HostTrace* host_trace() {
    static HostTrace* const trace = []() -> HostTrace* {
        const char* v = std::getenv("MW_HOST_TRACE");
        if (!v || std::string(v) != "1") return nullptr;
        std::atexit([] {
            const std::string r = host_trace()->report();
            if (!r.empty()) std::fputs(r.c_str(), stderr);
        });
        return new HostTrace;  // (left to the process's end: the report runs at exit)
    }();
    return trace;
}
} // namespace detail

void host_trace_step(bool begins) {
    if (HostTrace* t = detail::host_trace()) {
        if (begins)
            t->mark(detail::steady_ns());
        else
            t->pause();
    }
}

double host_wait_seconds() { return 1e-9 * double(detail::host_wait_ns.load(std::memory_order_relaxed)); }

void profiler_capture(bool on) {
    if (on)
        MW_CUDA_CHECK(cudaProfilerStart());
    else
        MW_CUDA_CHECK(cudaProfilerStop());
}

PinnedFloats::PinnedFloats(size_t n) : n_(n) {
    void* p = nullptr;
    MW_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(n, 1) * sizeof(float)));
    data_ = static_cast<float*>(p);
}

PinnedFloats::~PinnedFloats() {
    if (data_) (void)cudaFreeHost(data_);
}

namespace {

void check_sizes(const ModelView& m, int64_t max_segment, int batch) {
    auto fail = [](const std::string& what) {
        throw std::invalid_argument("cuda::make_forward: " + what);
    };
    if (batch < 1) fail("batch is " + std::to_string(batch) + ", expected >= 1");
    if (max_segment < 1) fail("max_segment is " + std::to_string(max_segment) + ", expected >= 1");
    if (int64_t(batch) * max_segment > INT32_MAX / 2)
        fail("batch x max_segment is " + std::to_string(int64_t(batch) * max_segment) +
             ", expected at most " + std::to_string(INT32_MAX / 2) + " rows per segment");
    detail::check_model_view(m, "cuda::make_forward");
}

// Every layer, then the head, over the segment already in f.xin / f.tokens (Lseg steps).
void run_segment(Forward& f, int64_t Lseg) {
    const Dims& d = f.dims;
    const int D = d.d_model, E = d.d_inner, N = d.d_state, K = d.d_conv, R = d.dt_rank;
    const int Mp = x_proj_cols(d);
    const int64_t rows = int64_t(f.B) * Lseg;

    // x = stem · xin + stem_b   |   x = embeddings[token]
    if (f.head == HeadKind::continuous) {
        const StemParams p{f.xin, f.w.stem_w, f.w.stem_b, f.x, rows, D, f.I};
        stem_kernel<<<blocks_for(rows * D, kThreads), kThreads, 0, f.stream>>>(p);
    } else {
        const EmbedParams p{f.tokens.get(), f.w.embed, f.x, rows, D};
        embed_kernel<<<blocks_for(rows * D, kThreads), kThreads, 0, f.stream>>>(p);
    }
    MW_CUDA_CHECK_LAUNCH();

    const int T = f.chunk_override > 0 ? f.chunk_override
                                       : auto_scan_chunk(f.B, Lseg, E, N, f.sm_count, f.scan_variant);
    if (f.any_selective) f.scan_ws.ensure(f.B, f.max_seg, d, T, f.stream);  // grows when a forced chunk needs more
    // LTI layers: their own chunk (set_scan_chunk forces it too) and workspace
    const int64_t T_lti = f.chunk_override > 0 ? f.chunk_override : lti_auto_chunk(f.B, Lseg, E, f.sm_count);
    if (f.any_lti)
        f.scan_ws.ensure_floats(lti_scan_workspace_size(f.B, Lseg, E, N, T_lti).total(), f.stream);

    for (int l = 0; l < d.n_layers; ++l) {
        const LayerWeights& w = f.w.layers[size_t(l)];
        // h = RMSNorm(x)
        {
            const RmsNormParams p{f.x, w.norm_w, f.h, rows, D, d.norm_eps};
            rmsnorm_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, f.stream>>>(p);
            MW_CUDA_CHECK_LAUNCH();
        }
        // [u, z] = h · in_projᵀ
        gemm_rows(f.blas, rows, 2 * E, D, f.h, D, w.in_w, D, f.uz, 2 * E, 0.0f);
        // u = SiLU(causal depthwise conv1d(u)), then keep the last K-1 inputs for the next segment
        {
            const ConvParams p{f.uz, 2 * E, w.conv_w, w.conv_b, f.conv_window(l), f.u, f.B, E, K, Lseg};
            launch_conv_silu(p, f.stream);
            if (K > 1) {
                conv_window_kernel<<<blocks_for(int64_t(f.B) * E, kThreads), kThreads, 0, f.stream>>>(p);
                MW_CUDA_CHECK_LAUNCH();
            }
        }
        if (w.lti) {
            // y = lti_scan(u; ā, b̄, C, D) ⊙ SiLU(z)
            lti_scan(layer_lti_problem(d, f.B, Lseg, f.u, f.uz, f.y, w, f.ssm_state(l)), T_lti, f.scan_ws.get(),
                     f.stream);
        } else {
            // [B, C, r] = u · x_projᵀ (rows reordered);   dt = r · dt_projᵀ (bias, softplus: in the scan)
            gemm_rows(f.blas, rows, Mp, E, f.u, E, w.x_w, E, f.xdbc, Mp, 0.0f);
            gemm_rows(f.blas, rows, E, R, f.xdbc + 2 * N, Mp, w.dt_w, R, f.dt, E, 0.0f);
            // y = selective_scan(...) ⊙ SiLU(z)
            ScanProblem q = layer_scan_problem(d, f.B, Lseg, f.dt, f.u, f.uz, f.xdbc, f.y, w, f.ssm_state(l));
            q.variant = f.scan_variant;
            selective_scan(q, T, f.scan_ws.get(), f.stream);
        }
        // x = x + y · out_projᵀ
        gemm_rows(f.blas, rows, D, E, f.y, E, w.out_w, E, f.x, D, 1.0f);
    }

    if (f.head == HeadKind::continuous) {
        // y = head · RMSNorm(x; norm_f) + head_b (+ xin[0])
        const HeadParams p{f.x, f.w.norm_f, f.w.head_w, f.w.head_b, f.xin, f.out, rows, D, f.I, d.norm_eps, f.skip};
        head_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, f.stream>>>(p);
        MW_CUDA_CHECK_LAUNCH();
    } else {
        // logits = RMSNorm(x; norm_f) · lm_headᵀ
        const RmsNormParams p{f.x, f.w.norm_f, f.h, rows, D, d.norm_eps};
        rmsnorm_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, f.stream>>>(p);
        MW_CUDA_CHECK_LAUNCH();
        gemm_rows(f.blas, rows, f.V, D, f.h, D, f.w.lm_head, D, f.out, f.V, 0.0f);
    }
}

// Segment by segment: upload(off, n) puts steps [off, off + n) of every sequence on the device
// (f's input arrays), the model runs, the output comes back (B rows, pitch L), wait; the
// timings come from events.
template <class Upload>
void run_segments(Forward& f, int64_t L, float* out, int out_width, Upload&& upload) {
    for (int64_t off = 0; off < L; off += f.max_seg) {
        const int64_t n = std::min(f.max_seg, L - off);
        MW_CUDA_CHECK(cudaEventRecord(f.ev[0], f.stream));
        upload(off, n);
        MW_CUDA_CHECK(cudaEventRecord(f.ev[1], f.stream));
        run_segment(f, n);
        MW_CUDA_CHECK(cudaEventRecord(f.ev[2], f.stream));
        MW_CUDA_CHECK(cudaMemcpy2DAsync(out + off * out_width, size_t(L * out_width) * sizeof(float), f.out,
                                        size_t(n * out_width) * sizeof(float),
                                        size_t(n * out_width) * sizeof(float), size_t(f.B),
                                        cudaMemcpyDeviceToHost, f.stream));
        MW_CUDA_CHECK(cudaEventRecord(f.ev[3], f.stream));
        MW_CUDA_CHECK(cudaStreamSynchronize(f.stream));
        add_elapsed(f.time.upload_ms, f.ev[0], f.ev[1]);
        add_elapsed(f.time.compute_ms, f.ev[1], f.ev[2]);
        add_elapsed(f.time.download_ms, f.ev[2], f.ev[3]);
    }
    f.time.steps += L;
}

// Steps [off, off + n) of B host rows of pitch L·width into a device array of pitch n·width.
template <class T>
void upload_rows(const Forward& f, const T* host, int width, int64_t L, int64_t off, int64_t n, T* dev) {
    MW_CUDA_CHECK(cudaMemcpy2DAsync(dev, size_t(n * width) * sizeof(T), host + off * width,
                                    size_t(L * width) * sizeof(T), size_t(n * width) * sizeof(T), size_t(f.B),
                                    cudaMemcpyHostToDevice, f.stream));
}

} // namespace

ForwardPtr make_forward(const ModelView& m, int64_t max_segment, int batch) {
    check_sizes(m, max_segment, batch);
    if (!available()) throw CudaError("cuda::make_forward: no CUDA device is present or usable");

    ForwardPtr f(new Forward);
    const Dims& d = m.dims;
    const int D = d.d_model, E = d.d_inner;
    const int Mp = x_proj_cols(d);
    f->set_shape(m);
    f->B = batch;
    f->max_seg = max_segment;
    for (int l = 0; l < d.n_layers; ++l) (is_lti(m.layers[l]) ? f->any_lti : f->any_selective) = true;

    f->start();

    upload_weights(m, f->w, f->stream);

    // Activations of one segment.
    const int64_t rows = int64_t(batch) * max_segment;
    const int out_width = m.head == HeadKind::tokens ? m.vocab : 1;
    const int audio_width = m.head == HeadKind::continuous ? 1 : 0;
    detail::Carving scratch;
    scratch.take(&f->xin, rows * f->I);
    scratch.take(&f->x, rows * D);
    scratch.take(&f->h, rows * D);
    scratch.take(&f->uz, rows * 2 * E);
    scratch.take(&f->u, rows * E);
    scratch.take(&f->xdbc, f->any_selective ? rows * Mp : 0);
    scratch.take(&f->dt, f->any_selective ? rows * E : 0);
    scratch.take(&f->y, rows * E);
    scratch.take(&f->out, rows * out_width);
    scratch.take(&f->audio, rows * audio_width);
    f->scratch = scratch.allocate();
    if (m.head == HeadKind::tokens) f->tokens = device_alloc<int32_t>(rows);
    if (m.head == HeadKind::continuous) f->controls = device_alloc<float>(std::max(f->I - 1, 1));

    f->state = device_alloc<float>(f->state_floats());
    if (f->any_selective)  // the shortest automatic chunk: the most chunks (LTI layers size theirs per segment)
        f->scan_ws.ensure(f->B, f->max_seg, f->dims, 64, f->stream);
    reset(*f);
    return f;
}

HeadKind head_kind(const Forward& f) { return f.head; }
int batch(const Forward& f) { return f.B; }
int64_t max_segment(const Forward& f) { return f.max_seg; }

void forward_continuous(Forward& f, const float* x, int64_t L, float* y) {
    if (f.head != HeadKind::continuous)
        throw std::invalid_argument("cuda::forward_continuous: the model is a generator (tokens in); "
                                    "use forward_tokens");
    if (L < 0) throw std::invalid_argument("cuda::forward_continuous: L is negative");
    if (L == 0) return;
    run_segments(f, L, y, 1, [&](int64_t off, int64_t n) { upload_rows(f, x, f.I, L, off, n, f.xin); });
}

void forward_effect(Forward& f, const float* audio, const float* controls, int64_t L, float* y) {
    if (f.head != HeadKind::continuous)
        throw std::invalid_argument("cuda::forward_effect: the model is a generator (tokens in); "
                                    "use forward_tokens");
    if (L < 0) throw std::invalid_argument("cuda::forward_effect: L is negative");
    if (L == 0) return;
    if (f.I > 1)
        MW_CUDA_CHECK(cudaMemcpyAsync(f.controls.get(), controls, size_t(f.I - 1) * sizeof(float),
                                      cudaMemcpyHostToDevice, f.stream));
    run_segments(f, L, y, 1, [&](int64_t off, int64_t n) {
        upload_rows(f, audio, 1, L, off, n, f.audio);
        const int64_t rows = int64_t(f.B) * n;
        effect_rows_kernel<<<blocks_for(rows * f.I, kThreads), kThreads, 0, f.stream>>>(f.audio, f.controls.get(),
                                                                                        f.xin, rows, f.I);
        MW_CUDA_CHECK_LAUNCH();
    });
}

void forward_tokens(Forward& f, const int32_t* tokens, int64_t L, float* logits) {
    if (f.head != HeadKind::tokens)
        throw std::invalid_argument("cuda::forward_tokens: the model is an effect (samples in); "
                                    "use forward_continuous");
    if (L < 0) throw std::invalid_argument("cuda::forward_tokens: L is negative");
    if (L == 0) return;
    const int64_t n = int64_t(f.B) * L;
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= f.V)
            throw std::invalid_argument("cuda::forward_tokens: token " + std::to_string(tokens[i]) +
                                        " at sequence " + std::to_string(i / L) + ", step " +
                                        std::to_string(i % L) + " is outside 0.." +
                                        std::to_string(f.V - 1));
    run_segments(f, L, logits, f.V,
                 [&](int64_t off, int64_t n) { upload_rows(f, tokens, 1, L, off, n, f.tokens.get()); });
}

void reset(Forward& f) {
    if (f.state_floats() > 0)
        MW_CUDA_CHECK(cudaMemsetAsync(f.state.get(), 0, size_t(f.state_floats()) * sizeof(float), f.stream));
    MW_CUDA_CHECK(cudaStreamSynchronize(f.stream));
}

void set_scan_chunk(Forward& f, int chunk_steps) {
    if (chunk_steps < 0)
        throw std::invalid_argument("cuda::set_scan_chunk: chunk_steps is negative");
    f.chunk_override = chunk_steps;
}

void set_scan_variant(Forward& f, int variant) {
    if (variant < 0 || variant > 4)
        throw std::invalid_argument("cuda::set_scan_variant: variant " + std::to_string(variant) +
                                    ", expected 0 (chosen), 1, 2, 3 or 4");
    f.scan_variant = variant;
}

Timing timing(const Forward& f) { return f.time; }
void reset_timing(Forward& f) { f.time = Timing{}; }

} // namespace mw::kernels::cuda
