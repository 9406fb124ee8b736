// The training tape on the GPU (mamba_cuda.h, "training"): the CPU tape's contract
// (kernels/backward.h) for a batch of B sequences at once. The forward keeps, per layer, the
// layer input x [rows][D], the in_proj output u|z [rows][2E], x_proj's output B|C|r [rows][Mp]
// and dt [rows][E], plus the carried-in state; nothing of size L·E·N. The backward goes layer
// by layer from the top and recomputes what it needs: the norm, the conv + SiLU, and the scan
// forward with the backward's chunk length (16 steps, or 8) (which leaves each chunk's start state for
// the scan's backward, scan_backward.cu). Gradients gather in one device buffer with the
// weights' own packing (layer.cuh) and are added into the caller's arrays at the end.
// An LTI layer keeps no x_proj output or dt: its scan (scan_lti.cu) takes the layer's
// constants, and its backward gives B, C, A_log, D and the dt bias's gradients directly.
// Products go through cuBLAS in full fp32; every sum is in a fixed order (no atomics), so a
// step's gradient is the same on every run.
#include "kernels/cuda/train_tape.cuh"

#include "kernels/cuda/scan_lti.cuh"
#include "kernels/counter_draws.h"

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

namespace mw::kernels::cuda {
namespace {

using detail::add_elapsed;
using detail::DevPtr;
using detail::device_alloc;
using detail::round_up;
using namespace layer;

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// ---- backward kernels ---------------------------------------------------------------------

// RMSNorm backward, one warp per row. h = w ⊙ x·s, s = 1/sqrt(mean(x²) + eps):
//   dx += s·(w ⊙ dh) − x·s³/D·Σ_d dh_d·w_d·x_d;  dh is replaced by dh ⊙ x·s (dLoss/dw per row).
struct RmsBackParams {
    const float* __restrict__ x;  // [rows][D]
    const float* __restrict__ w;  // [D]
    float* dh;                    // [rows][D] in: dLoss/dh; out: the weight's per-row gradient
    float* dx;                    // [rows][D] +=
    int64_t rows;
    int D;
    float eps;
};
__global__ void rmsnorm_backward_kernel(const RmsBackParams p) {
    const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = int(threadIdx.x & 31);
    if (r >= p.rows) return;
    const float* x = p.x + r * p.D;
    float* dh = p.dh + r * p.D;
    float* dx = p.dx + r * p.D;
    float ss = 0.0f, dot = 0.0f;
    for (int d = lane; d < p.D; d += 32) {
        ss = fmaf(x[d], x[d], ss);
        dot = fmaf(dh[d] * p.w[d], x[d], dot);
    }
    ss = warp_sum(ss);
    dot = warp_sum(dot);
    const float s = 1.0f / sqrtf(ss / float(p.D) + p.eps);
    const float c = s * s * s * dot / float(p.D);
    for (int d = lane; d < p.D; d += 32) {
        const float g = dh[d];
        dx[d] += s * p.w[d] * g - x[d] * c;
        dh[d] = g * x[d] * s;
    }
}

// The effect head's backward, one warp per row: y = head_b + head_w · (norm_f ⊙ x·s):
//   dhw[r][d] = dy·norm_f_d·x_d·s (head_w's per-row gradient), dh[r][d] = dy·head_w_d (for the
//   norm's backward).
struct HeadBackParams {
    const float* __restrict__ x;       // [rows][D]
    const float* __restrict__ norm_w;  // [D]
    const float* __restrict__ head_w;  // [D]
    const float* __restrict__ dy;      // [rows]
    float* __restrict__ dhw;           // [rows][D]
    float* __restrict__ dh;            // [rows][D]
    int64_t rows;
    int D;
    float eps;
};
__global__ void head_backward_kernel(const HeadBackParams p) {
    const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = int(threadIdx.x & 31);
    if (r >= p.rows) return;
    const float* x = p.x + r * p.D;
    float ss = 0.0f;
    for (int d = lane; d < p.D; d += 32) ss = fmaf(x[d], x[d], ss);
    const float s = 1.0f / sqrtf(warp_sum(ss) / float(p.D) + p.eps);
    const float dy = p.dy[r];
    for (int d = lane; d < p.D; d += 32) {
        p.dhw[r * p.D + d] = dy * p.norm_w[d] * x[d] * s;
        p.dh[r * p.D + d] = dy * p.head_w[d];
    }
}

// The conv's input at step tau of sequence b, channel e: u before the conv, or the carried-in
// window for tau < 0.
struct ConvIn {
    const float* __restrict__ uz;      // [B][L][2E]
    const float* __restrict__ window;  // [B][K-1][E]
    int E, K;
    int64_t L;
    __device__ __forceinline__ float at(int b, int64_t tau, int e) const {
        return tau >= 0 ? uz[(int64_t(b) * L + tau) * 2 * E + e]
                        : window[(int64_t(b) * (K - 1) + (K - 1) + tau) * E + e];
    }
};

// dpre[r][e] = du[r][e] · SiLU'(pre), pre = conv_b + Σ_k conv_w[e][k]·in(t-K+1+k)   per (r, e)
__global__ void conv_dpre_kernel(const ConvIn in, const float* __restrict__ w, const float* __restrict__ bias,
                                 const float* __restrict__ du, float* __restrict__ dpre, int B) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(B) * in.L * in.E) return;
    const int e = int(g % in.E);
    const int64_t r = g / in.E;
    const int64_t t = r % in.L;
    const int b = int(r / in.L);
    float pre = bias[e];
    for (int k = 0; k < in.K; ++k) pre = fmaf(w[e * in.K + k], in.at(b, t - (in.K - 1) + k, e), pre);
    const float s = sigmoidf(pre);
    dpre[g] = du[g] * s * fmaf(pre, 1.0f - s, 1.0f);
}

// d(u before the conv)[b][τ][e] = Σ_k conv_w[e][k] · dpre[b][τ+K-1-k][e] (steps inside the
// segment; what would flow into the carried-in window is dropped)   per (b, τ, e)
__global__ void conv_dinput_kernel(const float* __restrict__ dpre, const float* __restrict__ w,
                                   float* __restrict__ dv, int64_t dv_stride, int B, int64_t L, int E, int K) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(B) * L * E) return;
    const int e = int(g % E);
    const int64_t r = g / E;
    const int64_t tau = r % L;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) {
        const int64_t t = tau + (K - 1 - k);
        if (t < L) acc = fmaf(w[e * K + k], dpre[(r + (K - 1 - k)) * E + e], acc);
    }
    dv[r * dv_stride + e] = acc;
}

// Per block of kConvRows rows and channel e: Σ dpre·in(t-K+1+k) for each tap k into
// part[block][e·K + k] (conv_w's [E][K] order) and Σ dpre (the bias) into part[block][E·K + e].
constexpr int kConvRows = 128;
__global__ void conv_dweight_kernel(const ConvIn in, const float* __restrict__ dpre, float* __restrict__ part,
                                    int B) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t rows = int64_t(B) * in.L;
    const int64_t blocks = (rows + kConvRows - 1) / kConvRows;
    if (g >= blocks * in.E) return;
    const int e = int(g % in.E);
    const int64_t blk = g / in.E;
    const int64_t r0 = blk * kConvRows, r1 = min(rows, r0 + kConvRows);
    float* out = part + blk * int64_t(in.E) * (in.K + 1);
    float sb = 0.0f;
    for (int64_t r = r0; r < r1; ++r) sb += dpre[r * in.E + e];
    out[int64_t(in.E) * in.K + e] = sb;
    for (int k = 0; k < in.K; ++k) {
        float acc = 0.0f;
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t t = r % in.L;
            const int b = int(r / in.L);
            acc = fmaf(dpre[r * in.E + e], in.at(b, t - (in.K - 1) + k, e), acc);
        }
        out[int64_t(e) * in.K + k] = acc;
    }
}

// The three above in one pass, for K <= layer::kConvMaxK: thread (x, y) of a block takes channel
// e = 32·tile + x of sequence b and the run of kConvSteps steps t0 = (8·tb + y)·kConvSteps.
// It reads the run's inputs with K-1 on either side, recomputes pre and dpre for the run and
// the K-1 steps after it (the input's gradient at τ needs dpre up to τ+K-1), writes d(u before
// the conv) for the run, and sums the weights' and the bias's products over its run; the block's
// eight runs are then added in order into part[b·tblocks + tb] (conv_dweight_kernel's layout).
// dpre itself never goes to memory. Same products in the same order as the kernels above for
// dpre and the input's gradient; the weights' sums are grouped by run instead of by 128 rows.
constexpr int kConvRunsPerBlock = 8;
constexpr int kConvBlockSteps = kConvRunsPerBlock * layer::kConvSteps;
template <int K>
__global__ void conv_backward_kernel(const ConvIn in, const float* __restrict__ w, const float* __restrict__ bias,
                                     const float* __restrict__ du, float* __restrict__ dv, int64_t dv_stride,
                                     float* __restrict__ part, int64_t tblocks) {
    constexpr int S = layer::kConvSteps;
    __shared__ float sums[kConvRunsPerBlock][K + 1][32];
    const int64_t etiles = (in.E + 31) / 32;
    const int64_t tb = int64_t(blockIdx.x) / etiles;
    const int e = int(int64_t(blockIdx.x) % etiles) * 32 + int(threadIdx.x);
    const int b = int(blockIdx.y);
    const int64_t t0 = (tb * kConvRunsPerBlock + threadIdx.y) * S;
    float sw[K + 1];
#pragma unroll
    for (int k = 0; k <= K; ++k) sw[k] = 0.0f;
    if (e < in.E && t0 < in.L) {
        float wk[K];
#pragma unroll
        for (int k = 0; k < K; ++k) wk[k] = w[e * K + k];
        const float be = bias[e];
        // x[j] = in(t0 - (K-1) + j), j < S + 2(K-1); steps at or past L read as 0 (unused)
        float x[S + 2 * (K - 1)];
#pragma unroll
        for (int j = 0; j < S + 2 * (K - 1); ++j) {
            const int64_t tau = t0 - (K - 1) + j;
            x[j] = tau < in.L ? in.at(b, tau, e) : 0.0f;
        }
        // dp[i] = dpre(t0 + i), i < S + K - 1 (0 past L)
        float dp[S + K - 1];
        const float* dui = du + (int64_t(b) * in.L + t0) * in.E + e;
#pragma unroll
        for (int i = 0; i < S + K - 1; ++i) {
            if (t0 + i < in.L) {
                float pre = be;
#pragma unroll
                for (int k = 0; k < K; ++k) pre = fmaf(wk[k], x[i + k], pre);
                const float sg = sigmoidf(pre);
                dp[i] = dui[int64_t(i) * in.E] * sg * fmaf(pre, 1.0f - sg, 1.0f);
            } else {
                dp[i] = 0.0f;
            }
        }
        float* dvi = dv + (int64_t(b) * in.L + t0) * dv_stride + e;
#pragma unroll
        for (int i = 0; i < S; ++i) {
            if (t0 + i >= in.L) break;
            float acc = 0.0f;
#pragma unroll
            for (int k = 0; k < K; ++k) acc = fmaf(wk[k], dp[i + K - 1 - k], acc);
            dvi[int64_t(i) * dv_stride] = acc;
            sw[K] += dp[i];
#pragma unroll
            for (int k = 0; k < K; ++k) sw[k] = fmaf(dp[i], x[i + k], sw[k]);
        }
    }
#pragma unroll
    for (int k = 0; k <= K; ++k) sums[threadIdx.y][k][threadIdx.x] = sw[k];
    __syncthreads();
    if (threadIdx.y != 0 || e >= in.E) return;
    float* out = part + (int64_t(b) * tblocks + tb) * int64_t(in.E) * (K + 1);
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        float a = 0.0f;
        for (int r = 0; r < kConvRunsPerBlock; ++r) a += sums[r][k][threadIdx.x];
        if (k < K) out[int64_t(e) * K + k] = a;
        else out[int64_t(in.E) * K + e] = a;
    }
}

// Rows of conv partial sums the backward of a tape of B sequences of up to L steps writes (the
// fused kernel's per-sequence blocks, or conv_dweight_kernel's blocks of rows).
int64_t conv_partial_rows(int B, int64_t L) {
    return std::max(int64_t(B) * ((L + kConvBlockSteps - 1) / kConvBlockSteps),
                    (int64_t(B) * L + kConvRows - 1) / kConvRows);
}

// dEmbed[v][d] += Σ_{r: token_r = v} dx[r][d]: block v, one thread per d (in row order).
__global__ void embed_backward_kernel(const int32_t* __restrict__ tokens, const float* __restrict__ dx,
                                      float* __restrict__ d_embed, int64_t rows, int D) {
    const int v = int(blockIdx.x);
    for (int d0 = 0; d0 < D; d0 += int(blockDim.x)) {
        const int d = d0 + int(threadIdx.x);
        float acc = 0.0f;
        for (int64_t r = 0; r < rows; ++r)
            if (tokens[r] == v && d < D) acc += dx[r * D + d];
        if (d < D) d_embed[int64_t(v) * D + d] += acc;
    }
}

// The same as a sum of per-slice tables, for V <= kEmbedMaxV: block (x, s), one warp, takes
// columns 32x..32x+31 and rows s·R .. s·R+R-1 in order, adding each row of dx into its token's
// row of a [V][32] table in shared memory (a lane owns its column, so no two lanes meet and the
// order is fixed), then writes the table to part[s][V][D]; column_sums adds the slices in order.
// Every row is read once, where the kernel above reads the token column V times: 6 ms per
// step for B32 × L4000 on an H200, a quarter of the whole training step's kernels.
constexpr int kEmbedMaxV = 256;
constexpr int kEmbedRowsPerSlice = 512;
__global__ void embed_backward_slices_kernel(const int32_t* __restrict__ tokens, const float* __restrict__ dx,
                                             float* __restrict__ part, int64_t rows, int D, int V) {
    __shared__ float table[kEmbedMaxV][32];
    const int lane = int(threadIdx.x);
    const int d = int(blockIdx.x) * 32 + lane;
    for (int v = 0; v < V; ++v) table[v][lane] = 0.0f;
    const int64_t r0 = int64_t(blockIdx.y) * kEmbedRowsPerSlice;
    const int64_t r1 = min(rows, r0 + kEmbedRowsPerSlice);
    if (d < D) {
        constexpr int U = 8;  // rows in flight per iteration
        int64_t r = r0;
        for (; r + U <= r1; r += U) {
            int tok[U];
            float val[U];
#pragma unroll
            for (int i = 0; i < U; ++i) {
                tok[i] = tokens[r + i];
                val[i] = dx[(r + i) * D + d];
            }
#pragma unroll
            for (int i = 0; i < U; ++i) table[tok[i]][lane] += val[i];
        }
        for (; r < r1; ++r) table[tokens[r]][lane] += dx[r * D + d];
        float* out = part + int64_t(blockIdx.y) * V * D + d;
        for (int v = 0; v < V; ++v) out[int64_t(v) * D] = table[v][lane];
    }
}

int64_t embed_slices(int64_t rows) { return (rows + kEmbedRowsPerSlice - 1) / kEmbedRowsPerSlice; }

// Cross-entropy per row, one warp per row: nll[r] = logsumexp(logits[r]) − logits[r][target_r]
// and dlogits[r] = (softmax(logits[r]) − onehot(target_r))·scale; a row with target −1 is not
// counted (nll 0, gradient 0).
__global__ void cross_entropy_kernel(const float* __restrict__ logits, const int32_t* __restrict__ targets,
                                     float* __restrict__ dlogits, float* __restrict__ nll, int64_t rows, int V,
                                     float scale) {
    const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = int(threadIdx.x & 31);
    if (r >= rows) return;
    const float* l = logits + r * V;
    float* d = dlogits + r * V;
    const int target = targets[r];
    if (target < 0) {
        for (int v = lane; v < V; v += 32) d[v] = 0.0f;
        if (lane == 0) nll[r] = 0.0f;
        return;
    }
    float mx = -INFINITY;
    for (int v = lane; v < V; v += 32) mx = fmaxf(mx, l[v]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float z = 0.0f;
    for (int v = lane; v < V; v += 32) z += expf(l[v] - mx);
    z = warp_sum(z);
    for (int v = lane; v < V; v += 32) d[v] = (expf(l[v] - mx) / z - (v == target ? 1.0f : 0.0f)) * scale;
    if (lane == 0) nll[r] = mx + logf(z) - l[target];
}

// train_self_feed: one thread a row r = b·L + i; feed [4][B] holds each sequence's lane, place
// of row 0, first and end row. Most rows keep their class (the coin says so, or they lie
// outside [first, end)); a drawn row reads logits row r − 1, the prediction for place i.
__global__ void self_feed_kernel(const float* __restrict__ logits, int32_t* __restrict__ tokens,
                                 const int64_t* __restrict__ feed, int B, int64_t L, int V, double chance,
                                 uint64_t seed, int64_t step) {
    const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= int64_t(B) * L) return;
    const int b = int(r / L);
    const int64_t i = r % L;
    if (i < feed[2 * B + b] || i >= feed[3 * B + b]) return;
    const SelfFeedCoin coin = self_feed_coin(chance, seed, step, int(feed[b]), feed[B + b] + i);
    if (coin.drawn) tokens[r] = draw_class(logits + (r - 1) * V, V, coin.u, nullptr);
}

} // namespace

// ---- the tape (struct TrainTape: train_tape.cuh) ----------------------------------------------

void TrainTapeDeleter::operator()(TrainTape* t) const { delete t; }

namespace {

TrainTapePtr make_tape(const ModelView& m, int batch, int64_t max_len, bool rows_in, const std::string& who) {
    auto fail = [&](const std::string& what) { throw std::invalid_argument(who + ": " + what); };
    if (batch < 1) fail("batch is " + std::to_string(batch) + ", expected >= 1");
    if (max_len < 1) fail("max_len is " + std::to_string(max_len) + ", expected >= 1");
    if (int64_t(batch) * max_len > INT32_MAX / 4)
        fail("batch x max_len is " + std::to_string(int64_t(batch) * max_len) + ", expected at most " +
             std::to_string(INT32_MAX / 4));
    detail::check_model_view(m, who, rows_in);
    if (rows_in && m.head == HeadKind::continuous)
        fail("a stack with rows in ends in rows (a hidden head) or in a generator's logits, not an effect's head");
    if (!available()) throw CudaError(who + ": no CUDA device is present or usable");

    TrainTapePtr t(new TrainTape);
    const Dims& d = m.dims;
    const int D = d.d_model, E = d.d_inner, N = d.d_state, K = d.d_conv;
    t->set_shape(m);
    t->B = batch;
    t->max_len = max_len;
    t->rows_in = rows_in;
    const int Mp = t->Mp();

    t->start();

    upload_weights(m, t->w, t->stream);
    t->grad = device_alloc<float>(t->w.floats);

    const int64_t rows = int64_t(batch) * max_len;
    const size_t L_ = size_t(d.n_layers);
    t->x.resize(L_ + 1);  // sized first: keep.take holds pointers to the elements
    t->uz.resize(L_);
    t->xdbc.resize(L_);
    t->dt.resize(L_);
    detail::Carving keep;
    for (size_t l = 0; l < L_; ++l) {
        const bool lti = is_lti(m.layers[l]);
        keep.take(&t->x[l], rows * D);
        keep.take(&t->uz[l], rows * 2 * E);
        keep.take(&t->xdbc[l], lti ? 0 : rows * Mp);
        keep.take(&t->dt[l], lti ? 0 : rows * E);
    }
    keep.take(&t->x[L_], rows * D);
    keep.take(&t->xin, m.head == HeadKind::continuous ? rows * t->I : 0);
    t->keep = keep.allocate();
    if (m.head == HeadKind::tokens) {
        t->tokens = device_alloc<int32_t>(rows);
        t->targets = device_alloc<int32_t>(rows);
    }
    t->state_in = device_alloc<float>(t->state_floats());
    t->state = device_alloc<float>(t->state_floats());
    t->ssm_tmp = device_alloc<float>(int64_t(batch) * N * E);

    const int out_w = m.head == HeadKind::tokens ? m.vocab : m.head == HeadKind::continuous ? 1 : 0;
    const bool embeds = m.head == HeadKind::tokens && !rows_in;  // the embedding's gradient
    const int64_t conv_blocks = conv_partial_rows(batch, max_len);
    const int64_t embed_part = embeds ? embed_backward_part(rows, m.vocab, D) : 0;
    const int64_t part = std::max({rows * D, conv_blocks * E * (K + 1), embed_part});
    detail::Carving scratch;
    scratch.take(&t->h, rows * D);
    scratch.take(&t->u, rows * E);
    scratch.take(&t->y, rows * E);
    scratch.take(&t->out, rows * out_w);
    scratch.take(&t->dout, rows * out_w);
    scratch.take(&t->dx, rows * D);
    scratch.take(&t->dh, rows * D);
    scratch.take(&t->dyg, rows * E);
    scratch.take(&t->duz, rows * 2 * E);
    scratch.take(&t->dxdbc, rows * Mp);
    scratch.take(&t->ddt, rows * E);
    scratch.take(&t->du, rows * E);
    scratch.take(&t->part, part);
    t->scratch = scratch.allocate();
    // The scan's backward (selective or LTI, whichever needs more), then the backward's column
    // sums (`sums`): over at most `rows` rows (conv_blocks <= rows), D columns (norms, head_w,
    // stem_b), E·K (conv_w) or fewer (E, 1).
    // (The LTI scan's backward needs less for most shapes; train_backward grows the buffer when
    // it needs more: ensure_backward_workspace.)
    for (int l = 0; l < d.n_layers; ++l) t->any_lti = t->any_lti || is_lti(m.layers[l]);
    t->sums_at = scan_backward_workspace_size(batch, max_len, E, N, 8).total();  // the most chunks
    t->sums_floats = column_sums_scratch(rows, std::max(D, E * K));
    if (embeds) t->sums_floats = std::max(t->sums_floats, embed_backward_sums(rows, m.vocab, D));
    t->bwd_ws = device_alloc<float>(t->sums_at + t->sums_floats);
    return t;
}

} // namespace

TrainTapePtr make_train_tape(const ModelView& m, int batch, int64_t max_len) {
    return make_tape(m, batch, max_len, false, "cuda::make_train_tape");
}
TrainTapePtr make_train_tape_rows(const ModelView& m, int batch, int64_t max_len) {
    return make_tape(m, batch, max_len, true, "cuda::make_train_tape_rows");
}

namespace {

// The scan of layer l over the kept activations, from the SSM state at `ssm` (advanced in
// place), gated output into t.y; the workspace then starts with the chunks' start states.
// T 0: the automatic chunk (the forward), else T steps (the backward's recompute).
void layer_scan(TrainTape& t, int l, float* ssm, int T) {
    const size_t i = size_t(l);
    if (t.w.layers[i].lti) {
        const int64_t TL = T > 0 ? T : lti_auto_chunk(t.B, t.L, t.dims.d_inner, t.sm_count);
        t.scan_ws.ensure_floats(lti_scan_workspace_size(t.B, t.L, t.dims.d_inner, t.dims.d_state, TL).total(),
                                t.stream);
        lti_scan(layer_lti_problem(t.dims, t.B, t.L, t.u, t.uz[i], t.y, t.w.layers[i], ssm), TL, t.scan_ws.get(),
                 t.stream);
        return;
    }
    if (T == 0) T = auto_scan_chunk(t.B, t.L, t.dims.d_inner, t.dims.d_state, t.sm_count, t.fwd_variant);
    ScanProblem q =
        layer_scan_problem(t.dims, t.B, t.L, t.dt[i], t.u, t.uz[i], t.xdbc[i], t.y, t.w.layers[i], ssm);
    q.variant = t.fwd_variant;
    t.scan_ws.ensure(t.B, t.max_len, t.dims, T, t.stream);
    selective_scan(q, T, t.scan_ws.get(), t.stream);
}

// Host state [B][layers][(K-1)·E + N·E] (tape_state_floats per stream) <-> the device layout.
// (out: t.state_floats(); every float of it is written, zeros where `in` is null)
void state_to_device_layout(const TrainTape& t, const float* in, float* out) {
    const Dims& d = t.dims;
    const int64_t E = d.d_inner, W = int64_t(d.d_conv - 1) * E, S = int64_t(d.d_state) * E;
    const int64_t per_stream = d.n_layers * (W + S);
    if (!in) {
        std::fill_n(out, t.state_floats(), 0.0f);
        return;
    }
    for (int b = 0; b < t.B; ++b)
        for (int l = 0; l < d.n_layers; ++l) {
            const float* src = in + b * per_stream + l * (W + S);
            std::copy_n(src, W, out + t.conv_offset(l) + b * W);
            std::copy_n(src + W, S, out + t.ssm_offset(l) + b * S);
        }
}
void state_from_device_layout(const TrainTape& t, const float* in, float* out) {
    const Dims& d = t.dims;
    const int64_t E = d.d_inner, W = int64_t(d.d_conv - 1) * E, S = int64_t(d.d_state) * E;
    const int64_t per_stream = d.n_layers * (W + S);
    for (int b = 0; b < t.B; ++b)
        for (int l = 0; l < d.n_layers; ++l) {
            float* dst = out + b * per_stream + l * (W + S);
            std::copy_n(in + t.conv_offset(l) + b * W, W, dst);
            std::copy_n(in + t.ssm_offset(l) + b * S, S, dst + W);
        }
}

// rows: the call is train_forward_rows (the tape must be a rows-in one, and the head the tape's).
void check_call(const TrainTape& t, const ModelView& m, int64_t L, HeadKind want, bool rows, const char* who) {
    auto fail = [&](const std::string& what) { throw std::invalid_argument(std::string(who) + ": " + what); };
    if (rows != t.rows_in)
        fail(t.rows_in ? "the tape takes rows in (a pooled model's stack): use train_forward_rows"
                       : "the tape was made by make_train_tape: its input is the model's own");
    if (m.head != want)
        fail(rows ? "the model's head differs from the tape's (make a tape for this model)"
             : want == HeadKind::continuous ? "the model is a generator; use train_forward_tokens"
                                            : "the model is an effect; use train_forward_continuous");
    if (m.head != t.head || m.dims.d_model != t.dims.d_model || m.dims.n_layers != t.dims.n_layers ||
        m.dims.d_inner != t.dims.d_inner || m.dims.d_state != t.dims.d_state ||
        m.dims.d_conv != t.dims.d_conv || m.dims.dt_rank != t.dims.dt_rank || m.skip != t.skip ||
        (m.head == HeadKind::tokens ? m.vocab != t.V : m.n_in != t.I))
        fail("the model's sizes differ from the tape's (make a tape for this model)");
    if (L < 1 || L > t.max_len)
        fail("L is " + std::to_string(L) + ", expected 1.." + std::to_string(t.max_len));
    for (int l = 0; l < t.dims.n_layers; ++l)
        if (is_lti(m.layers[l]) != t.w.layers[size_t(l)].lti)
            fail("layer " + std::to_string(l) + " is " + (is_lti(m.layers[l]) ? "LTI" : "selective") +
                 " in the model but not in the tape's (make a tape for this model)");
}

// Every layer, keeping what the backward needs, then the head into t.out.
void forward_layers(TrainTape& t, const float* state_in, float* state_out) {
    const Dims& d = t.dims;
    const int D = d.d_model, E = d.d_inner, K = d.d_conv, R = d.dt_rank, N = d.d_state;
    const int Mp = t.Mp();
    const int64_t rows = int64_t(t.B) * t.L;

    // (the host's copy of the state lives in page-locked memory the tape keeps: the copies run
    // at the bus's speed; the forward's caller waits for the stream before the next forward)
    const size_t n_state = size_t(t.state_floats());
    float* st = detail::pinned_at_least(t.state_host, n_state);
    state_to_device_layout(t, state_in, st);
    MW_CUDA_CHECK(cudaMemcpyAsync(t.state_in.get(), st, n_state * sizeof(float), cudaMemcpyHostToDevice, t.stream));
    MW_CUDA_CHECK(cudaMemcpyAsync(t.state.get(), t.state_in.get(), n_state * sizeof(float),
                                  cudaMemcpyDeviceToDevice, t.stream));

    for (int l = 0; l < d.n_layers; ++l) {
        const LayerWeights& w = t.w.layers[size_t(l)];
        float* x = t.x[size_t(l)];
        const RmsNormParams rp{x, w.norm_w, t.h, rows, D, d.norm_eps};
        rmsnorm_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(rp);
        MW_CUDA_CHECK_LAUNCH();
        gemm_rows(t.blas, rows, 2 * E, D, t.h, D, w.in_w, D, t.uz[size_t(l)], 2 * E, 0.0f);
        const ConvParams cp{t.uz[size_t(l)], 2 * E, w.conv_w, w.conv_b, t.state.get() + t.conv_offset(l), t.u,
                            t.B, E, K, t.L};
        launch_conv_silu(cp, t.stream);
        if (K > 1) {
            conv_window_kernel<<<blocks_for(int64_t(t.B) * E, kThreads), kThreads, 0, t.stream>>>(cp);
            MW_CUDA_CHECK_LAUNCH();
        }
        if (!w.lti) {
            gemm_rows(t.blas, rows, Mp, E, t.u, E, w.x_w, E, t.xdbc[size_t(l)], Mp, 0.0f);
            gemm_rows(t.blas, rows, E, R, t.xdbc[size_t(l)] + 2 * N, Mp, w.dt_w, R, t.dt[size_t(l)], E, 0.0f);
        }
        layer_scan(t, l, t.state.get() + t.ssm_offset(l), 0);
        float* next = t.x[size_t(l) + 1];
        MW_CUDA_CHECK(cudaMemcpyAsync(next, x, size_t(rows * D) * sizeof(float), cudaMemcpyDeviceToDevice,
                                      t.stream));
        gemm_rows(t.blas, rows, D, E, t.y, E, w.out_w, E, next, D, 1.0f);
    }
    const float* xl = t.x[size_t(d.n_layers)];
    if (t.head == HeadKind::hidden) {  // the output is xl itself
    } else if (t.head == HeadKind::continuous) {
        const HeadParams hp{xl, t.w.norm_f, t.w.head_w, t.w.head_b, t.xin, t.out, rows, D, t.I, d.norm_eps, t.skip};
        head_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(hp);
        MW_CUDA_CHECK_LAUNCH();
    } else {
        const RmsNormParams rp{xl, t.w.norm_f, t.h, rows, D, d.norm_eps};
        rmsnorm_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(rp);
        MW_CUDA_CHECK_LAUNCH();
        gemm_rows(t.blas, rows, t.V, D, t.h, D, t.w.lm_head, D, t.out, t.V, 0.0f);
    }
    if (state_out) {
        MW_CUDA_CHECK(cudaMemcpyAsync(st, t.state.get(), n_state * sizeof(float), cudaMemcpyDeviceToHost, t.stream));
        detail::wait_for(t.stream);
        state_from_device_layout(t, st, state_out);
    }
}

// A forward of the tape, either head: input(rows) puts the first layer's input in t.x[0] (on
// t.stream, after the weights are uploaded: the stem or the embeddings); then every layer and
// the head, whose output [rows][1 or V] comes back to `out` (host) unless it is null.
template <class Input>
void train_forward(TrainTape& t, const ModelView& m, int64_t L, const float* state_in, float* out,
                   float* state_out, WeightUpload up, Input&& input) {
    t.L = 0;  // no valid tape until this forward completes
    t.dout_on_device = false;
    MW_CUDA_CHECK(cudaEventRecord(t.ev[0], t.stream));
    if (up == WeightUpload::fresh) upload_weights(m, t.w, t.stream);  // (make_tape made the first)
    const int64_t rows = int64_t(t.B) * L;
    input(rows);
    t.L = L;
    forward_layers(t, state_in, state_out);
    const int out_w = t.head == HeadKind::tokens ? t.V : 1;
    if (out && t.head != HeadKind::hidden)
        MW_CUDA_CHECK(cudaMemcpyAsync(out, t.out, size_t(rows * out_w) * sizeof(float), cudaMemcpyDeviceToHost,
                                      t.stream));
    MW_CUDA_CHECK(cudaEventRecord(t.ev[1], t.stream));
    detail::wait_for(t.stream);
    add_elapsed(t.time.forward_ms, t.ev[0], t.ev[1]);
    t.time.samples += rows;
}

} // namespace

void train_forward_continuous(TrainTape& t, const ModelView& m, const float* x, int64_t L, const float* state_in,
                              float* y, float* state_out, WeightUpload up) {
    check_call(t, m, L, HeadKind::continuous, false, "cuda::train_forward_continuous");
    train_forward(t, m, L, state_in, y, state_out, up, [&](int64_t rows) {
        MW_CUDA_CHECK(cudaMemcpyAsync(t.xin, x, size_t(rows * t.I) * sizeof(float), cudaMemcpyHostToDevice,
                                      t.stream));
        const StemParams sp{t.xin, t.w.stem_w, t.w.stem_b, t.x[0], rows, t.dims.d_model, t.I};
        stem_kernel<<<blocks_for(rows * t.dims.d_model, kThreads), kThreads, 0, t.stream>>>(sp);
        MW_CUDA_CHECK_LAUNCH();
    });
}

void train_forward_tokens(TrainTape& t, const ModelView& m, const int32_t* tokens, int64_t L,
                          const float* state_in, float* logits, float* state_out, WeightUpload up) {
    check_call(t, m, L, HeadKind::tokens, false, "cuda::train_forward_tokens");
    const int64_t n = int64_t(t.B) * L;
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= t.V)
            throw std::invalid_argument("cuda::train_forward_tokens: token " + std::to_string(tokens[i]) +
                                        " at sequence " + std::to_string(i / L) + ", step " +
                                        std::to_string(i % L) + " is outside 0.." + std::to_string(t.V - 1));
    train_forward(t, m, L, state_in, logits, state_out, up, [&](int64_t rows) {
        MW_CUDA_CHECK(cudaMemcpyAsync(t.tokens.get(), tokens, size_t(rows) * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, t.stream));
        const EmbedParams ep{t.tokens.get(), t.w.embed, t.x[0], rows, t.dims.d_model};
        embed_kernel<<<blocks_for(rows * t.dims.d_model, kThreads), kThreads, 0, t.stream>>>(ep);
        MW_CUDA_CHECK_LAUNCH();
    });
}

void train_forward_rows(TrainTape& t, const ModelView& m, const float* x, int64_t L, const float* state_in,
                        float* state_out, WeightUpload up) {
    check_call(t, m, L, t.head, true, "cuda::train_forward_rows");
    train_forward(t, m, L, state_in, nullptr, state_out, up, [&](int64_t rows) {
        MW_CUDA_CHECK(cudaMemcpyAsync(t.x[0], x, size_t(rows * t.dims.d_model) * sizeof(float),
                                      cudaMemcpyDeviceToDevice, t.stream));
    });
}

const float* rows_out(const TrainTape& t) { return t.x[size_t(t.dims.n_layers)]; }

int64_t embed_backward_part(int64_t rows, int V, int D) {
    return V <= kEmbedMaxV ? embed_slices(rows) * V * D : 0;
}
int64_t embed_backward_sums(int64_t rows, int V, int D) {
    return V <= kEmbedMaxV ? column_sums_scratch(embed_slices(rows), V * D) : 0;
}
void embed_backward(const int32_t* tokens, const float* dx, int64_t rows, int D, int V, float* d_embed, float* part,
                    float* sums, cudaStream_t stream) {
    if (V <= kEmbedMaxV && embed_slices(rows) <= 65535) {
        const int64_t slices = embed_slices(rows);
        embed_backward_slices_kernel<<<dim3(unsigned((D + 31) / 32), unsigned(slices)), 32, 0, stream>>>(
            tokens, dx, part, rows, D, V);
        MW_CUDA_CHECK_LAUNCH();
        column_sums(part, slices, V * D, int64_t(V) * D, d_embed, true, sums, stream);
    } else {
        embed_backward_kernel<<<unsigned(V), unsigned(std::min(round_up(D, 32), int64_t(256))), 0, stream>>>(
            tokens, dx, d_embed, rows, D);
        MW_CUDA_CHECK_LAUNCH();
    }
}

namespace {

// The backward of one layer: t.dx holds dLoss/d(layer output) and becomes dLoss/d(layer input).
void backward_layer(TrainTape& t, int l) {
    const Dims& d = t.dims;
    const int D = d.d_model, E = d.d_inner, N = d.d_state, K = d.d_conv, R = d.dt_rank;
    const int Mp = t.Mp();
    const int64_t rows = int64_t(t.B) * t.L;
    const LayerWeights& w = t.w.layers[size_t(l)];
    const float* x = t.x[size_t(l)];
    const float* uz = t.uz[size_t(l)];
    const float* xdbc = t.xdbc[size_t(l)];
    float* sums = t.bwd_ws.get() + t.sums_at;

    // Recompute h, u and the scan (its chunk start states and the gated output y).
    const RmsNormParams rp{x, w.norm_w, t.h, rows, D, d.norm_eps};
    rmsnorm_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(rp);
    MW_CUDA_CHECK_LAUNCH();
    const ConvIn cin{uz, t.state_in.get() + t.conv_offset(l), E, K, t.L};
    const ConvParams cp{uz, 2 * E, w.conv_w, w.conv_b, t.state_in.get() + t.conv_offset(l), t.u, t.B, E, K, t.L};
    launch_conv_silu(cp, t.stream);
    MW_CUDA_CHECK(cudaMemcpyAsync(t.ssm_tmp.get(), t.state_in.get() + t.ssm_offset(l),
                                  size_t(t.B) * N * E * sizeof(float), cudaMemcpyDeviceToDevice, t.stream));
    layer_scan(t, l, t.ssm_tmp.get(), t.bwd_chunk);

    // out_proj: x_out = x + y · out_projᵀ
    gemm_dw(t.blas, rows, D, E, t.dx, D, t.y, E, t.gw(w.out_w), E);
    gemm_dx(t.blas, rows, D, E, t.dx, D, w.out_w, E, t.dyg, E, 0.0f);

    if (w.lti) {
        // The LTI scan (with the gate, D, and B, C, A_log and the dt bias through its constants):
        // du and dz written, the parameters' gradients added.
        LtiScanBackwardProblem q;
        q.B = t.B;
        q.L = t.L;
        q.E = E;
        q.N = N;
        q.chunk = t.bwd_chunk;
        q.sm_count = t.sm_count;
        q.run = t.lti_run;
        q.u = t.u;         q.u_stride = E;
        q.z = uz + E;      q.z_stride = 2 * E;
        q.dy = t.dyg;      q.dy_stride = E;
        q.decay = w.lti_k;
        q.bbar = w.lti_k + int64_t(N) * E;
        q.C = w.lti_k + 2 * int64_t(N) * E;
        q.D = w.D;
        q.A = w.lti_A;
        q.Bw = w.lti_B;
        q.delta = w.lti_dt;
        q.dsig = w.lti_dt + E;
        q.chunk_start = t.scan_ws.get();
        q.du = t.du;       q.du_stride = E;
        q.dz = t.duz + E;  q.dz_stride = 2 * E;
        q.dB = t.gw(w.lti_B);
        q.dC = t.gw(w.lti_C);
        q.dA_log = t.gw(w.A2);  // the A slot of the gradient buffer holds dLoss/dA_log
        q.dD = t.gw(w.D);
        q.d_bias = t.gw(w.dt_b);
        lti_scan_backward(q, t.bwd_ws.get(), t.stream);
    } else {
        // The scan (with the gate, D and the dt bias + softplus).
        MW_CUDA_CHECK(cudaMemsetAsync(t.dxdbc, 0, size_t(rows * Mp) * sizeof(float), t.stream));
        ScanBackwardProblem q;
        q.B = t.B;
        q.L = t.L;
        q.E = E;
        q.N = N;
        q.chunk = t.bwd_chunk;
        q.variant = t.bwd_variant;
        q.dt = t.dt[size_t(l)];   q.dt_stride = E;
        q.u = t.u;                q.u_stride = E;
        q.z = uz + E;             q.z_stride = 2 * E;
        q.Bm = xdbc;
        q.Cm = xdbc + N;          q.bc_stride = Mp;
        q.dy = t.dyg;             q.dy_stride = E;
        q.A2 = w.A2;
        q.D = w.D;
        q.dt_bias = w.dt_b;
        q.chunk_start = t.scan_ws.get();
        q.du = t.du;              q.du_stride = E;
        q.ddt = t.ddt;            q.ddt_stride = E;
        q.dz = t.duz + E;         q.dz_stride = 2 * E;
        q.dB = t.dxdbc;
        q.dC = t.dxdbc + N;       q.dbc_stride = Mp;
        q.dA_log = t.gw(w.A2);    // the A slot of the gradient buffer holds dLoss/dA_log
        q.dD = t.gw(w.D);
        selective_scan_backward(q, t.bwd_ws.get(), t.stream);
        column_sums(t.ddt, rows, E, E, t.gw(w.dt_b), true, sums, t.stream);

        // dt_proj: dt = r · dt_projᵀ;  x_proj: [B, C, r] = u · x_projᵀ
        gemm_dw(t.blas, rows, E, R, t.ddt, E, xdbc + 2 * N, Mp, t.gw(w.dt_w), R);
        gemm_dx(t.blas, rows, E, R, t.ddt, E, w.dt_w, R, t.dxdbc + 2 * N, Mp, 0.0f);
        gemm_dw(t.blas, rows, Mp, E, t.dxdbc, Mp, t.u, E, t.gw(w.x_w), E);
        gemm_dx(t.blas, rows, Mp, E, t.dxdbc, Mp, w.x_w, E, t.du, E, 1.0f);
    }

    // conv + SiLU: the input's gradient into duz's u columns, the weights' sums into part.
    int64_t cblocks = 0;
    if (K <= kConvMaxK && t.B <= 65535) {
        const int64_t tblocks = (t.L + kConvBlockSteps - 1) / kConvBlockSteps;
        cblocks = int64_t(t.B) * tblocks;
        const dim3 grid(unsigned(tblocks * ((E + 31) / 32)), unsigned(t.B)), block(32, kConvRunsPerBlock);
        switch (K) {
        case 1: conv_backward_kernel<1><<<grid, block, 0, t.stream>>>(cin, w.conv_w, w.conv_b, t.du, t.duz, 2 * E, t.part, tblocks); break;
        case 2: conv_backward_kernel<2><<<grid, block, 0, t.stream>>>(cin, w.conv_w, w.conv_b, t.du, t.duz, 2 * E, t.part, tblocks); break;
        case 3: conv_backward_kernel<3><<<grid, block, 0, t.stream>>>(cin, w.conv_w, w.conv_b, t.du, t.duz, 2 * E, t.part, tblocks); break;
        default: conv_backward_kernel<4><<<grid, block, 0, t.stream>>>(cin, w.conv_w, w.conv_b, t.du, t.duz, 2 * E, t.part, tblocks); break;
        }
        MW_CUDA_CHECK_LAUNCH();
    } else {  // wider kernels: dpre into dyg (free now), then the input's and the weights' gradients
        conv_dpre_kernel<<<blocks_for(rows * E, kThreads), kThreads, 0, t.stream>>>(cin, w.conv_w, w.conv_b, t.du,
                                                                                  t.dyg, t.B);
        MW_CUDA_CHECK_LAUNCH();
        conv_dinput_kernel<<<blocks_for(rows * E, kThreads), kThreads, 0, t.stream>>>(t.dyg, w.conv_w, t.duz,
                                                                                    2 * E, t.B, t.L, E, K);
        MW_CUDA_CHECK_LAUNCH();
        cblocks = (rows + kConvRows - 1) / kConvRows;
        conv_dweight_kernel<<<blocks_for(cblocks * E, kThreads), kThreads, 0, t.stream>>>(cin, t.dyg, t.part, t.B);
        MW_CUDA_CHECK_LAUNCH();
    }
    column_sums(t.part, cblocks, E * K, int64_t(E) * (K + 1), t.gw(w.conv_w), true, sums, t.stream);
    column_sums(t.part + int64_t(E) * K, cblocks, E, int64_t(E) * (K + 1), t.gw(w.conv_b), true, sums, t.stream);

    // in_proj: [u, z] = h · in_projᵀ
    gemm_dw(t.blas, rows, 2 * E, D, t.duz, 2 * E, t.h, D, t.gw(w.in_w), D);
    gemm_dx(t.blas, rows, 2 * E, D, t.duz, 2 * E, w.in_w, D, t.dh, D, 0.0f);

    // RMSNorm, into the residual's gradient.
    const RmsBackParams bp{x, w.norm_w, t.dh, t.dx, rows, D, d.norm_eps};
    rmsnorm_backward_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(bp);
    MW_CUDA_CHECK_LAUNCH();
    column_sums(t.dh, rows, D, D, t.gw(w.norm_w), true, sums, t.stream);
}

// The backward's workspace holds the LTI scan's backward for this L (its runs depend on L).
void ensure_backward_workspace(TrainTape& t) {
    if (!t.any_lti) return;
    const int64_t need = lti_scan_backward_workspace_size(t.B, t.L, t.dims.d_inner, t.dims.d_state, t.bwd_chunk,
                                                          t.sm_count, t.lti_run).total();
    if (need <= t.sums_at) return;
    detail::wait_for(t.stream);
    t.bwd_ws.reset();
    t.bwd_ws = device_alloc<float>(need + t.sums_floats);
    t.sums_at = need;
}

// Device gradient (packed layout) -> += into the caller's arrays (HF layout).
void add_gradients(const TrainTape& t, const float* g, const ModelGrad& out) {
    const Dims& d = t.dims;
    const int D = d.d_model, E = d.d_inner, N = d.d_state, K = d.d_conv, R = d.dt_rank;
    auto add = [&](float* dst, const float* weight, int64_t n) {  // (a layer kind's absent tensors: skipped)
        if (!dst || !weight) return;
        const float* src = g + t.w.offset(weight);
        for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
    };
    for (int l = 0; l < d.n_layers; ++l) {
        const LayerWeights& w = t.w.layers[size_t(l)];
        const LayerGrad& o = out.layers[l];
        add(o.norm_w, w.norm_w, D);
        add(o.in_proj_w, w.in_w, int64_t(2) * E * D);
        add(o.conv_w, w.conv_w, int64_t(E) * K);
        add(o.conv_b, w.conv_b, E);
        if (o.x_proj_w && w.x_w) {  // packed rows B, C, r -> the model's r, B, C
            const float* src = g + t.w.offset(w.x_w);
            for (int64_t i = 0; i < int64_t(R) * E; ++i) o.x_proj_w[i] += src[int64_t(2) * N * E + i];
            for (int64_t i = 0; i < int64_t(2) * N * E; ++i) o.x_proj_w[int64_t(R) * E + i] += src[i];
        }
        add(o.dt_proj_w, w.dt_w, int64_t(E) * R);
        add(o.dt_proj_b, w.dt_b, E);
        add(o.A_log, w.A2, int64_t(E) * N);
        add(o.D, w.D, E);
        add(o.out_proj_w, w.out_w, int64_t(D) * E);
        add(o.lti_B, w.lti_B, int64_t(E) * N);
        add(o.lti_C, w.lti_C, int64_t(E) * N);
    }
    add(out.norm_f_w, t.w.norm_f, D);
    if (t.head == HeadKind::tokens) {
        if (!t.rows_in) add(out.embed_w, t.w.embed, int64_t(t.V) * D);  // (rows in: no embedding)
        add(out.lm_head_w, t.w.lm_head, int64_t(t.V) * D);
    } else if (t.head == HeadKind::continuous) {
        add(out.stem_w, t.w.stem_w, int64_t(D) * t.I);
        add(out.stem_b, t.w.stem_b, D);
        add(out.head_w, t.w.head_w, D);
        add(out.head_b, t.w.head_b, 1);
    }
}

// The backward, every kind of tape: d_out on the host (d_out_dev null) or the device; rows-in
// tapes write dLoss/dx into d_in (device).
void backward(TrainTape& t, const float* d_out, const float* d_out_dev, const ModelGrad& g, float* d_in,
              const char* who) {
    if (t.L < 1) throw std::logic_error(std::string(who) + ": no forward before it");
    if (!g.layers) throw std::invalid_argument(std::string(who) + ": the gradient has no layers");
    if (!d_out && !d_out_dev && !t.dout_on_device)
        throw std::invalid_argument(std::string(who) + ": d_out is null and no train_cross_entropy gave it");
    for (int l = 0; l < t.dims.n_layers; ++l) {  // the gradient's layer kinds must be the forward's
        const LayerGrad& o = g.layers[l];
        const bool lti = t.w.layers[size_t(l)].lti;
        if (lti ? !o.lti_B || !o.lti_C : !o.x_proj_w || !o.dt_proj_w)
            throw std::invalid_argument(std::string(who) + ": layer " + std::to_string(l) + " was " +
                                        (lti ? "LTI" : "selective") +
                                        " in the forward, but its gradient lacks that kind's tensors");
    }
    const Dims& d = t.dims;
    const int D = d.d_model;
    const int64_t rows = int64_t(t.B) * t.L;
    ensure_backward_workspace(t);
    float* sums = t.bwd_ws.get() + t.sums_at;
    MW_CUDA_CHECK(cudaEventRecord(t.ev[1], t.stream));
    MW_CUDA_CHECK(cudaMemsetAsync(t.grad.get(), 0, size_t(t.w.floats) * sizeof(float), t.stream));
    const int out_w = t.head == HeadKind::tokens ? t.V : t.head == HeadKind::continuous ? 1 : D;
    float* dout = t.head == HeadKind::hidden ? t.dx : t.dout;  // a hidden head's d_out is dLoss/d(last rows)
    if (d_out)
        MW_CUDA_CHECK(cudaMemcpyAsync(dout, d_out, size_t(rows * out_w) * sizeof(float), cudaMemcpyHostToDevice,
                                      t.stream));
    else if (d_out_dev)
        MW_CUDA_CHECK(cudaMemcpyAsync(dout, d_out_dev, size_t(rows * out_w) * sizeof(float),
                                      cudaMemcpyDeviceToDevice, t.stream));
    const float* xl = t.x[size_t(d.n_layers)];
    if (t.head != HeadKind::hidden) {
        MW_CUDA_CHECK(cudaMemsetAsync(t.dx, 0, size_t(rows * D) * sizeof(float), t.stream));
        if (t.head == HeadKind::continuous) {
            column_sums(t.dout, rows, 1, 1, t.gw(t.w.head_b), true, sums, t.stream);
            const HeadBackParams hp{xl, t.w.norm_f, t.w.head_w, t.dout, t.part, t.dh, rows, D, d.norm_eps};
            head_backward_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(hp);
            MW_CUDA_CHECK_LAUNCH();
            column_sums(t.part, rows, D, D, t.gw(t.w.head_w), true, sums, t.stream);
        } else {
            const RmsNormParams rp{xl, t.w.norm_f, t.h, rows, D, d.norm_eps};
            rmsnorm_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(rp);
            MW_CUDA_CHECK_LAUNCH();
            gemm_dw(t.blas, rows, t.V, D, t.dout, t.V, t.h, D, t.gw(t.w.lm_head), D);
            gemm_dx(t.blas, rows, t.V, D, t.dout, t.V, t.w.lm_head, D, t.dh, D, 0.0f);
        }
        const RmsBackParams bp{xl, t.w.norm_f, t.dh, t.dx, rows, D, d.norm_eps};
        rmsnorm_backward_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(bp);
        MW_CUDA_CHECK_LAUNCH();
        column_sums(t.dh, rows, D, D, t.gw(t.w.norm_f), true, sums, t.stream);
    }
    for (int l = d.n_layers - 1; l >= 0; --l) backward_layer(t, l);
    if (t.rows_in) {
        MW_CUDA_CHECK(cudaMemcpyAsync(d_in, t.dx, size_t(rows * D) * sizeof(float), cudaMemcpyDeviceToDevice,
                                      t.stream));
    } else if (t.head == HeadKind::continuous) {
        gemm_dw(t.blas, rows, D, t.I, t.dx, D, t.xin, t.I, t.gw(t.w.stem_w), t.I);
        column_sums(t.dx, rows, D, D, t.gw(t.w.stem_b), true, sums, t.stream);
    } else {
        embed_backward(t.tokens.get(), t.dx, rows, D, t.V, t.gw(t.w.embed), t.part, sums, t.stream);
    }
    float* host = detail::pinned_at_least(t.grad_host, size_t(t.w.floats));
    MW_CUDA_CHECK(cudaMemcpyAsync(host, t.grad.get(), size_t(t.w.floats) * sizeof(float), cudaMemcpyDeviceToHost,
                                  t.stream));
    MW_CUDA_CHECK(cudaEventRecord(t.ev[2], t.stream));
    detail::wait_for(t.stream);
    add_elapsed(t.time.backward_ms, t.ev[1], t.ev[2]);
    add_gradients(t, host, g);
}

} // namespace

void train_backward(TrainTape& t, const float* d_out, const ModelGrad& g) {
    if (t.rows_in)
        throw std::invalid_argument("cuda::train_backward: the tape takes rows in (a pooled model's stack): use "
                                    "train_backward_rows");
    backward(t, d_out, nullptr, g, nullptr, "cuda::train_backward");
}

void train_backward_rows(TrainTape& t, const float* d_out, const ModelGrad& g, float* d_in) {
    if (!t.rows_in)
        throw std::invalid_argument("cuda::train_backward_rows: the tape was made by make_train_tape");
    if (!d_in) throw std::invalid_argument("cuda::train_backward_rows: d_in is null");
    if (t.head == HeadKind::hidden && !d_out)
        throw std::invalid_argument("cuda::train_backward_rows: a hidden head needs d_out (its rows' gradient)");
    backward(t, nullptr, d_out, g, d_in, "cuda::train_backward_rows");
}

void train_cross_entropy(TrainTape& t, const int32_t* targets, double scale, double* nats) {
    if (t.head != HeadKind::tokens)
        throw std::invalid_argument("cuda::train_cross_entropy: the model is an effect");
    if (t.L < 1) throw std::logic_error("cuda::train_cross_entropy: no forward before it");
    const int64_t rows = int64_t(t.B) * t.L;
    for (int64_t i = 0; i < rows; ++i)
        if (targets[i] < -1 || targets[i] >= t.V)
            throw std::invalid_argument("cuda::train_cross_entropy: target " + std::to_string(targets[i]) +
                                        " at sequence " + std::to_string(i / t.L) + ", step " +
                                        std::to_string(i % t.L) + " is outside -1.." + std::to_string(t.V - 1));
    MW_CUDA_CHECK(cudaMemcpyAsync(t.targets.get(), targets, size_t(rows) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                  t.stream));
    float* nll = t.dh;  // [rows] scratch, free between the forward and the backward
    cross_entropy_kernel<<<blocks_for(rows * 32, kThreads), kThreads, 0, t.stream>>>(
        t.out, t.targets.get(), t.dout, nll, rows, t.V, float(scale));
    MW_CUDA_CHECK_LAUNCH();
    std::vector<float> host(static_cast<size_t>(rows));
    detail::wait_for(t.stream);  // (a copy into pageable memory would wait unseen)
    MW_CUDA_CHECK(cudaMemcpyAsync(host.data(), nll, size_t(rows) * sizeof(float), cudaMemcpyDeviceToHost, t.stream));
    detail::wait_for(t.stream);
    for (int b = 0; b < t.B; ++b) {
        double s = 0;
        for (int64_t i = 0; i < t.L; ++i) s += double(host[size_t(b * t.L + i)]);
        nats[b] = s;
    }
    t.dout_on_device = true;
}

void train_self_feed(TrainTape& t, const SelfFeedDraws& d, int32_t* tokens) {
    const std::string who = "cuda::train_self_feed";
    if (t.head != HeadKind::tokens) throw std::invalid_argument(who + ": the model is an effect");
    if (t.L < 1) throw std::logic_error(who + ": no forward before it");
    const size_t B = size_t(t.B);
    if (d.lane.size() != B || d.pos.size() != B || d.first.size() != B || d.end.size() != B)
        throw std::invalid_argument(who + ": " + std::to_string(d.lane.size()) + " lanes, " +
                                    std::to_string(d.pos.size()) + " places, " + std::to_string(d.first.size()) +
                                    " first and " + std::to_string(d.end.size()) + " end rows for a batch of " +
                                    std::to_string(B));
    std::vector<int64_t> feed(4 * B);
    for (size_t b = 0; b < B; ++b) {
        if (d.first[b] < 1 || d.end[b] > t.L)
            throw std::invalid_argument(who + ": sequence " + std::to_string(b) + " draws rows " +
                                        std::to_string(d.first[b]) + ".." + std::to_string(d.end[b] - 1) +
                                        ", expected within 1.." + std::to_string(t.L - 1));
        feed[b] = d.lane[b];
        feed[B + b] = d.pos[b];
        feed[2 * B + b] = d.first[b];
        feed[3 * B + b] = d.end[b];
    }
    if (!t.feed) t.feed = device_alloc<int64_t>(int64_t(4 * B));
    const int64_t rows = int64_t(t.B) * t.L;
    int32_t* fed = t.targets.get();  // scratch: train_cross_entropy uploads its targets after
    MW_CUDA_CHECK(cudaMemcpyAsync(t.feed.get(), feed.data(), feed.size() * sizeof(int64_t), cudaMemcpyHostToDevice,
                                  t.stream));
    MW_CUDA_CHECK(cudaMemcpyAsync(fed, tokens, size_t(rows) * sizeof(int32_t), cudaMemcpyHostToDevice, t.stream));
    self_feed_kernel<<<blocks_for(rows, kThreads), kThreads, 0, t.stream>>>(t.out, fed, t.feed.get(), t.B, t.L, t.V,
                                                                            d.chance, d.seed, d.step);
    MW_CUDA_CHECK_LAUNCH();
    detail::wait_for(t.stream);  // (a copy into pageable memory would wait unseen)
    MW_CUDA_CHECK(cudaMemcpyAsync(tokens, fed, size_t(rows) * sizeof(int32_t), cudaMemcpyDeviceToHost, t.stream));
    detail::wait_for(t.stream);
}

void set_tf32(TrainTape& t, bool on) {
    MW_CUBLAS_CHECK(cublasSetMathMode(t.blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    t.tf32 = on;
}
bool tf32(const TrainTape& t) { return t.tf32; }

void set_backward_chunk(TrainTape& t, int chunk) {
    if (chunk != 8 && chunk != 16)
        throw std::invalid_argument("cuda::set_backward_chunk: " + std::to_string(chunk) + ", expected 8 or 16");
    t.bwd_chunk = chunk;
}

void set_forward_scan_variant(TrainTape& t, int variant) {
    if (variant < 0 || variant > 4)
        throw std::invalid_argument("cuda::set_forward_scan_variant: " + std::to_string(variant) +
                                    ", expected 0 (chosen), 1, 2, 3 or 4");
    t.fwd_variant = variant;
}

void set_lti_backward_run(TrainTape& t, int chunks_per_run) {
    if (chunks_per_run < 0)
        throw std::invalid_argument("cuda::set_lti_backward_run: " + std::to_string(chunks_per_run) +
                                    ", expected >= 0");
    t.lti_run = chunks_per_run;
}

void set_backward_variant(TrainTape& t, int variant) {
    if (variant < 1 || variant > 3)
        throw std::invalid_argument("cuda::set_backward_variant: " + std::to_string(variant) +
                                    ", expected 1, 2 or 3");
    t.bwd_variant = variant;
}

int train_batch(const TrainTape& t) { return t.B; }
int64_t train_max_len(const TrainTape& t) { return t.max_len; }
TrainTiming timing(const TrainTape& t) { return t.time; }
void reset_timing(TrainTape& t) { t.time = TrainTiming{}; }

} // namespace mw::kernels::cuda
