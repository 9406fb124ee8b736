// The layer's pieces that the inference forward (mamba_cuda.cu) and the training tape
// (train_cuda.cu) share: the elementwise and per-row kernels (stem, embedding, RMSNorm, causal
// conv + SiLU, head), the row-major cuBLAS product, and the device weights as both pack them
// (x_proj rows reordered to B, C, r; A stored as A·log2(e); an LTI layer's constants made once,
// scan_lti.cuh). Internal to kernels/cuda/.
//
// Device arrays are row-major [rows][width], row b·L + t for step t of sequence b.
#pragma once

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/scan.cuh"
#include "kernels/cuda/scan_lti.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mw::kernels::cuda::layer {

constexpr int kThreads = 256;

using detail::round_up;

inline unsigned blocks_for(int64_t threads, int per_block) {
    return unsigned((threads + per_block - 1) / per_block);
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + __expf(-x)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// ---- kernels, one params struct each ----------------------------------------------------

// x[r][d] = stem_b[d] + Σ_i stem_w[d][i] · xin[r][i]             one thread per (r, d)
struct StemParams {
    const float* __restrict__ xin;  // [rows][I]
    const float* __restrict__ w;    // [D][I]
    const float* __restrict__ b;    // [D]
    float* __restrict__ x;          // [rows][D]
    int64_t rows;
    int D, I;
};
static __global__ void stem_kernel(const StemParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= p.rows * p.D) return;
    const int d = int(g % p.D);
    const int64_t r = g / p.D;
    float acc = p.b[d];
    for (int i = 0; i < p.I; ++i) acc = fmaf(p.w[d * p.I + i], p.xin[r * p.I + i], acc);
    p.x[g] = acc;
}

// xin[r] = [audio[r], controls...]                                 one thread per (r, i)
static __global__ void effect_rows_kernel(const float* __restrict__ audio, const float* __restrict__ controls,
                                   float* __restrict__ xin, int64_t rows, int I) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= rows * I) return;
    const int i = int(g % I);
    xin[g] = i == 0 ? audio[g / I] : controls[i - 1];
}

// x[r][d] = embed[token_r][d]                                      one thread per (r, d)
struct EmbedParams {
    const int32_t* __restrict__ tokens;  // [rows]
    const float* __restrict__ embed;     // [V][D]
    float* __restrict__ x;               // [rows][D]
    int64_t rows;
    int D;
};
static __global__ void embed_kernel(const EmbedParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= p.rows * p.D) return;
    const int d = int(g % p.D);
    const int64_t r = g / p.D;
    p.x[g] = p.embed[int64_t(p.tokens[r]) * p.D + d];
}

// h[r] = x[r] / sqrt(mean(x[r]²) + eps) ⊙ w                       one warp per row
struct RmsNormParams {
    const float* __restrict__ x;  // [rows][D]
    const float* __restrict__ w;  // [D]
    float* __restrict__ h;        // [rows][D]
    int64_t rows;
    int D;
    float eps;
};
static __global__ void rmsnorm_kernel(const RmsNormParams p) {
    const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = int(threadIdx.x & 31);
    if (r >= p.rows) return;  // the whole warp shares r
    const float* x = p.x + r * p.D;
    float ss = 0.0f;
    for (int d = lane; d < p.D; d += 32) ss = fmaf(x[d], x[d], ss);
    const float scale = 1.0f / sqrtf(warp_sum(ss) / float(p.D) + p.eps);
    float* h = p.h + r * p.D;
    for (int d = lane; d < p.D; d += 32) h[d] = x[d] * scale * p.w[d];
}

// u[b][t][e] = SiLU(conv_b[e] + Σ_k conv_w[e][k] · pre(t-(K-1)+k))   one thread per (b, t, e)
// pre(τ) = uz[b][τ][e] for τ >= 0, else window[b][K-1+τ][e] (the previous segment's tail).
struct ConvParams {
    const float* __restrict__ uz;  // [B][L][uz_stride], u before the conv in columns 0..E-1
    int64_t uz_stride;
    const float* __restrict__ w;   // [E][K]
    const float* __restrict__ bias;// [E]
    float* window;                 // [B][K-1][E]
    float* __restrict__ u;         // [B][L][E]
    int B, E, K;
    int64_t L;
};
static __global__ void conv_silu_kernel(const ConvParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.L * p.E) return;
    const int e = int(g % p.E);
    const int64_t r = g / p.E;
    const int64_t t = r % p.L;
    const int b = int(r / p.L);
    float acc = p.bias[e];
    for (int k = 0; k < p.K; ++k) {
        const int64_t tau = t - (p.K - 1) + k;
        const float v = tau >= 0 ? p.uz[(int64_t(b) * p.L + tau) * p.uz_stride + e]
                                 : p.window[(int64_t(b) * (p.K - 1) + (p.K - 1) + tau) * p.E + e];
        acc = fmaf(p.w[e * p.K + k], v, acc);
    }
    p.u[g] = silu(acc);
}

// The same for kernel widths up to kConvMaxK, one thread per (b, run of kConvSteps steps, e):
// the K-1 inputs before the run are read once, then each step's input once, kept in a window
// of registers, and the index arithmetic (64-bit divisions) is done once per run rather than
// once per element, which made the kernel above several times slower than its bytes. Same
// products in the same order: the same floats as conv_silu_kernel.
constexpr int kConvSteps = 16;
constexpr int kConvMaxK = 4;
template <int K>
static __global__ void conv_silu_run_kernel(const ConvParams p, int64_t runs) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * runs * p.E) return;
    const int e = int(g % p.E);
    const int64_t rest = g / p.E;
    const int64_t t0 = (rest % runs) * kConvSteps;
    const int b = int(rest / runs);
    float w[K], win[K];
#pragma unroll
    for (int k = 0; k < K; ++k) w[k] = p.w[e * K + k];
    const float bias = p.bias[e];
#pragma unroll
    for (int k = 0; k < K - 1; ++k) {  // inputs t0-(K-1) .. t0-1
        const int64_t tau = t0 - (K - 1) + k;
        win[k] = tau >= 0 ? p.uz[(int64_t(b) * p.L + tau) * p.uz_stride + e]
                          : p.window[(int64_t(b) * (K - 1) + (K - 1) + tau) * p.E + e];
    }
    const float* src = p.uz + (int64_t(b) * p.L + t0) * p.uz_stride + e;
    float* dst = p.u + (int64_t(b) * p.L + t0) * p.E + e;
    auto step = [&](float v) {
        win[K - 1] = v;
        float acc = bias;
#pragma unroll
        for (int k = 0; k < K; ++k) acc = fmaf(w[k], win[k], acc);
#pragma unroll
        for (int k = 0; k < K - 1; ++k) win[k] = win[k + 1];
        return silu(acc);
    };
    const int64_t left = p.L - t0;
    const int n = left < kConvSteps ? int(left) : kConvSteps;
    if (n == kConvSteps) {  // a whole run: every load in flight at once
        float v[kConvSteps];
#pragma unroll
        for (int i = 0; i < kConvSteps; ++i) v[i] = src[i * p.uz_stride];
#pragma unroll
        for (int i = 0; i < kConvSteps; ++i) dst[i * p.E] = step(v[i]);
    } else {
        for (int i = 0; i < n; ++i) dst[i * p.E] = step(src[i * p.uz_stride]);
    }
}

// u = SiLU(conv(uz) + bias) over every row: the run kernel for K <= kConvMaxK, else the plain one.
inline void launch_conv_silu(const ConvParams& p, cudaStream_t stream) {
    const int64_t runs = (p.L + kConvSteps - 1) / kConvSteps;
    const unsigned grid = blocks_for(int64_t(p.B) * runs * p.E, kThreads);
    switch (p.K) {
    case 1: conv_silu_run_kernel<1><<<grid, kThreads, 0, stream>>>(p, runs); break;
    case 2: conv_silu_run_kernel<2><<<grid, kThreads, 0, stream>>>(p, runs); break;
    case 3: conv_silu_run_kernel<3><<<grid, kThreads, 0, stream>>>(p, runs); break;
    case 4: conv_silu_run_kernel<4><<<grid, kThreads, 0, stream>>>(p, runs); break;
    default:
        conv_silu_kernel<<<blocks_for(int64_t(p.B) * p.L * p.E, kThreads), kThreads, 0, stream>>>(p);
    }
    MW_CUDA_CHECK_LAUNCH();
}
// window[b][j] = pre(L-(K-1)+j), j = 0..K-2: the last K-1 inputs, for the next segment.
// In place: j ascending reads old entries j+L > j only.                one thread per (b, e)
static __global__ void conv_window_kernel(const ConvParams p) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(p.B) * p.E) return;
    const int e = int(g % p.E);
    const int b = int(g / p.E);
    float* win = p.window + int64_t(b) * (p.K - 1) * p.E + e;
    for (int j = 0; j < p.K - 1; ++j) {
        const int64_t tau = p.L - (p.K - 1) + j;
        win[int64_t(j) * p.E] = tau >= 0 ? p.uz[(int64_t(b) * p.L + tau) * p.uz_stride + e]
                                         : win[(int64_t(j) + p.L) * p.E];
    }
}

// y[r] = head_b + head_w · RMSNorm(x[r]; norm_f) (+ xin[r][0] with skip)   one warp per row
struct HeadParams {
    const float* __restrict__ x;       // [rows][D]
    const float* __restrict__ norm_w;  // [D]
    const float* __restrict__ head_w;  // [D]
    const float* __restrict__ head_b;  // [1]
    const float* __restrict__ xin;     // [rows][I]
    float* __restrict__ y;             // [rows]
    int64_t rows;
    int D, I;
    float eps;
    bool skip;
};
static __global__ void head_kernel(const HeadParams p) {
    const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = int(threadIdx.x & 31);
    if (r >= p.rows) return;
    const float* x = p.x + r * p.D;
    float ss = 0.0f, dot = 0.0f;
    for (int d = lane; d < p.D; d += 32) {
        ss = fmaf(x[d], x[d], ss);
        dot = fmaf(x[d], p.norm_w[d] * p.head_w[d], dot);
    }
    ss = warp_sum(ss);
    dot = warp_sum(dot);
    if (lane == 0) {
        float out = p.head_b[0] + dot / sqrtf(ss / float(p.D) + p.eps);
        if (p.skip) out += p.xin[r * p.I];
        p.y[r] = out;
    }
}

// C[rows][n] (ldc) = A[rows][k] (lda) · W[n][k]ᵀ (ldw) + beta·C, row-major, full fp32.
// (cuBLAS is column-major: the same memory is Cᵀ = W·Aᵀ.)
inline void gemm_rows(cublasHandle_t h, int64_t rows, int n, int k, const float* A, int lda,
               const float* W, int ldw, float* C, int ldc, float beta) {
    const float one = 1.0f;
    MW_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, n, int(rows), k, &one, W, ldw, A, lda,
                                &beta, C, ldc));
}

// dX[rows][k] (ldx) = dY[rows][n] (ldy) · W[n][k] (ldw) + beta·dX.
inline void gemm_dx(cublasHandle_t h, int64_t rows, int n, int k, const float* dY, int ldy, const float* W,
             int ldw, float* dX, int ldx, float beta) {
    const float one = 1.0f;
    MW_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, k, int(rows), n, &one, W, ldw, dY, ldy, &beta,
                                dX, ldx));
}
// dW[n][k] (ldw) += dY[rows][n]ᵀ (ldy) · X[rows][k] (ldx).
inline void gemm_dw(cublasHandle_t h, int64_t rows, int n, int k, const float* dY, int ldy, const float* X,
             int ldx, float* dW, int ldw) {
    const float one = 1.0f;
    MW_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, k, n, int(rows), &one, X, ldx, dY, ldy, &one,
                                dW, ldw));
}

// Columns of the x_proj output: B (N), C (N), r (R), padded to a multiple of 4.
inline int x_proj_cols(const Dims& d) { return int(round_up(2 * d.d_state + d.dt_rank, 4)); }


// ---- what the forward and the training tape both hold ------------------------------------------

// The model's sizes and head, from its view.
struct ModelShape {
    Dims dims;
    HeadKind head = HeadKind::tokens;
    int V = 0, I = 0;  // vocab (generators), inputs per step (effects)
    bool skip = false;
    void set_shape(const ModelView& m) {
        dims = m.dims;
        head = m.head;
        V = m.head == HeadKind::tokens ? m.vocab : 0;
        I = m.head == HeadKind::continuous ? m.n_in : 0;
        skip = m.skip;
    }
};

// A non-blocking stream, a cuBLAS handle on it in full fp32 (no TF32: the paths are tested at
// 1e-4 against float64), four timing events and the GPU's multiprocessor count; released with
// the owner. start() throws CudaError.
struct GpuContext {
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    cudaEvent_t ev[4] = {};
    int sm_count = 1;

    GpuContext() = default;
    GpuContext(const GpuContext&) = delete;
    GpuContext& operator=(const GpuContext&) = delete;
    void start() {
        int dev = 0;
        MW_CUDA_CHECK(cudaGetDevice(&dev));
        MW_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, dev));
        MW_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        for (cudaEvent_t& e : ev) MW_CUDA_CHECK(cudaEventCreate(&e));
        MW_CUBLAS_CHECK(cublasCreate(&blas));
        MW_CUBLAS_CHECK(cublasSetStream(blas, stream));
        MW_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));
    }
    ~GpuContext() {
        // Frees only; errors here are ignored (a destructor does not throw).
        for (cudaEvent_t e : ev)
            if (e) cudaEventDestroy(e);
        if (blas) cublasDestroy(blas);
        if (stream) cudaStreamDestroy(stream);
    }
};

// The forward scan's workspace for B sequences of up to max_len steps. ensure() grows it when
// chunks of T steps need more (a shorter chunk: more chunks); it waits for the stream first,
// whose queued scans may still use the old buffer. Throws CudaError.
struct ScanWorkspace {
    detail::DevPtr<float> buf;
    int64_t floats = 0;

    float* get() const { return buf.get(); }
    void ensure(int B, int64_t max_len, const Dims& d, int T, cudaStream_t stream) {
        ensure_floats(scan_workspace_size(B, max_len, d.d_inner, d.d_state, T).total(), stream);
    }
    // At least `need` floats (the LTI scan's workspace, scan_lti.cuh).
    void ensure_floats(int64_t need, cudaStream_t stream) {
        if (need <= floats) return;
        detail::wait_for(stream);
        buf.reset();
        buf = detail::device_alloc<float>(need);
        floats = need;
    }
};

// ---- the weights on the device ---------------------------------------------------------

struct LayerWeights {
    const float* norm_w;  // [D]
    const float* in_w;    // [2E][D]
    const float* conv_w;  // [E][K]
    const float* conv_b;  // [E]
    const float* x_w;     // [Mp][E]   x_proj rows reordered: B (N), C (N), r (R), zero rows (selective)
    const float* dt_w;    // [E][R]    (selective)
    const float* dt_b;    // [E]
    const float* A2;      // [E][N]  -exp(A_log)·log2(e) (in a gradient buffer: dLoss/dA_log)
    const float* D;       // [E]
    const float* out_w;   // [D][E]
    // An LTI layer (x_w, dt_w null): its B and C in the model's layout (their gradient slots
    // too), and constants made from the weights on every upload (their slots in a gradient
    // buffer stay unused).
    bool lti;
    const float* lti_B;   // [E][N]
    const float* lti_C;   // [E][N]
    const float* lti_k;   // [3][N][E]  the scan's operands: ā = exp(Δ·A), b̄ = Δ·B, C (channel fastest)
    const float* lti_A;   // [E][N]     A = -exp(A_log)
    const float* lti_dt;  // [2][E]     Δ = softplus(dt_bias), σ(dt_bias) = dΔ/d(dt_bias)
};

// The scan of one layer over the arrays both paths keep, rows b·L + t: dt [rows][E], u [rows][E],
// z the second half of uz [rows][2E], B and C the first 2N columns of xdbc [rows][Mp] (B, C, r),
// the gated output y [rows][E]; the SSM state [B][N][E] advances in place. variant: the default.
inline ScanProblem layer_scan_problem(const Dims& d, int B, int64_t L, const float* dt, const float* u,
                                      const float* uz, const float* xdbc, float* y, const LayerWeights& w,
                                      float* state) {
    const int E = d.d_inner, N = d.d_state, Mp = x_proj_cols(d);
    ScanProblem q;
    q.B = B;
    q.L = L;
    q.E = E;
    q.N = N;
    q.dt = dt;          q.dt_stride = E;
    q.u = u;            q.u_stride = E;
    q.z = uz + E;       q.z_stride = 2 * E;
    q.Bm = xdbc;
    q.Cm = xdbc + N;    q.bc_stride = Mp;
    q.y = y;            q.y_stride = E;
    q.A2 = w.A2;
    q.D = w.D;
    q.dt_bias = w.dt_b;
    q.state = state;
    return q;
}

// The LTI scan of one layer over the same arrays as layer_scan_problem (u, z the second half of
// uz, y); the SSM state [B][N][E] advances in place.
inline LtiScanProblem layer_lti_problem(const Dims& d, int B, int64_t L, const float* u, const float* uz,
                                        float* y, const LayerWeights& w, float* state) {
    const int E = d.d_inner, N = d.d_state;
    LtiScanProblem q;
    q.B = B;
    q.L = L;
    q.E = E;
    q.N = N;
    q.u = u;       q.u_stride = E;
    q.z = uz + E;  q.z_stride = 2 * E;
    q.y = y;       q.y_stride = E;
    q.decay = w.lti_k;
    q.bbar = w.lti_k + int64_t(N) * E;
    q.C = w.lti_k + 2 * int64_t(N) * E;
    q.D = w.D;
    q.state = state;
    return q;
}

// Every tensor back to back in one device buffer (each at a 32-float boundary). The offsets
// depend only on the model's sizes and which layers are LTI, so a buffer of the same layout holds the gradients too
// (train_cuda.cu), and new weights of the same model re-upload into the same buffer.
struct Weights {
    detail::DevPtr<float> buf;
    int64_t floats = 0;
    PinnedFloats staging;  // the packed tensors on the host, kept for the next upload (WeightPack)
    std::vector<LayerWeights> layers;
    const float* norm_f = nullptr;   // [D]
    const float* embed = nullptr;    // [V][D]
    const float* lm_head = nullptr;  // [V][D]
    const float* stem_w = nullptr;   // [D][I]
    const float* stem_b = nullptr;   // [D]
    const float* head_w = nullptr;   // [D]
    const float* head_b = nullptr;   // [1]

    // Offset of a tensor in floats from the start of the buffer (the same in a gradient buffer).
    int64_t offset(const float* p) const { return p - buf.get(); }
};

// Packs m's tensors on the host and copies them to the device on `stream` (waited for). The
// first call allocates; later calls must be for a model of the same sizes and reuse the buffer.
inline void upload_weights(const ModelView& m, Weights& wt, cudaStream_t stream) {
    const Dims& d = m.dims;
    const int D = d.d_model, E = d.d_inner, N = d.d_state, K = d.d_conv, R = d.dt_rank;
    const int Mp = x_proj_cols(d);
    detail::WeightPack pack(32, &wt.staging);
    std::vector<std::pair<const float**, int64_t>> binds;  // where each tensor's device pointer goes
    auto add = [&](const float** where, const float* src, int64_t count) {
        binds.emplace_back(where, pack.add(src, count));
    };
    wt.layers.resize(size_t(d.n_layers));
    std::vector<float> a2(size_t(E) * N), x_rows, lti_k, lti_A, lti_dt;
    for (int l = 0; l < d.n_layers; ++l) {
        const LayerView& w = m.layers[l];
        LayerWeights& g = wt.layers[size_t(l)];
        g = LayerWeights{};
        g.lti = is_lti(w);
        for (int64_t i = 0; i < int64_t(E) * N; ++i) a2[size_t(i)] = detail::a_log2e(w.A_log[i]);
        add(&g.norm_w, w.norm_w, D);
        add(&g.in_w, w.in_proj_w, int64_t(2) * E * D);
        add(&g.conv_w, w.conv_w, int64_t(E) * K);
        add(&g.conv_b, w.conv_b, E);
        if (!g.lti) {
            // x_proj's rows as B, C, r, then zero rows up to Mp: B_t and C_t start each row, so
            // with Mp and N multiples of 4 the scan copies them in 16-byte pieces.
            x_rows.assign(size_t(Mp) * E, 0.0f);
            std::copy_n(w.x_proj_w + int64_t(R) * E, int64_t(2) * N * E, x_rows.begin());
            std::copy_n(w.x_proj_w, int64_t(R) * E, x_rows.begin() + int64_t(2) * N * E);
            add(&g.x_w, x_rows.data(), int64_t(Mp) * E);
            add(&g.dt_w, w.dt_proj_w, int64_t(E) * R);
        }
        add(&g.dt_b, w.dt_proj_b, E);
        add(&g.A2, a2.data(), int64_t(E) * N);
        add(&g.D, w.D, E);
        add(&g.out_w, w.out_proj_w, int64_t(D) * E);
        if (g.lti) {
            const detail::LtiConstants k = detail::lti_constants(w, E, N);
            lti_k.assign(k.decay.begin(), k.decay.end());  // [3][N][E]: ā, b̄, C
            lti_k.insert(lti_k.end(), k.bbar.begin(), k.bbar.end());
            lti_k.insert(lti_k.end(), k.C.begin(), k.C.end());
            lti_dt.assign(k.delta.begin(), k.delta.end());  // [2][E]: Δ, σ
            lti_dt.insert(lti_dt.end(), k.dsig.begin(), k.dsig.end());
            lti_A = k.A;
            add(&g.lti_B, w.lti_B, int64_t(E) * N);
            add(&g.lti_C, w.lti_C, int64_t(E) * N);
            add(&g.lti_k, lti_k.data(), int64_t(3) * N * E);
            add(&g.lti_A, lti_A.data(), int64_t(E) * N);
            add(&g.lti_dt, lti_dt.data(), int64_t(2) * E);
        }
    }
    if (m.head == HeadKind::hidden) {  // a stack of layers alone: no norm_f, no stem or head
    } else if (m.head == HeadKind::tokens) {
        add(&wt.norm_f, m.norm_f_w, D);
        add(&wt.embed, m.embed_w, int64_t(m.vocab) * D);
        add(&wt.lm_head, m.lm_head_w, int64_t(m.vocab) * D);
    } else {
        add(&wt.norm_f, m.norm_f_w, D);
        add(&wt.stem_w, m.stem_w, int64_t(D) * m.n_in);
        add(&wt.stem_b, m.stem_b, D);
        add(&wt.head_w, m.head_w, D);
        add(&wt.head_b, m.head_b, 1);
    }
    if (!wt.buf) {
        wt.buf = pack.upload(stream);
        wt.floats = pack.floats();
    } else {
        if (pack.floats() != wt.floats)
            throw std::invalid_argument("cuda: new weights of another size (" + std::to_string(pack.floats()) +
                                        " floats, the buffer holds " + std::to_string(wt.floats) + ")");
        pack.upload_into(wt.buf.get(), stream);
    }
    for (auto& [where, off] : binds) *where = wt.buf.get() + off;
}

} // namespace mw::kernels::cuda::layer
