// A pooled generator's training tape on the GPU (mamba_cuda.h, "pooled generators' training";
// the equations are model/pooled.h's). One rows-in TrainTape per stack of layers; between them
// the pools, as cuBLAS products over the rows, which never leave the device:
//
//   down:  x_{i+1} [B·n][D_{i+1}] = frames(a_i) · W↓ᵀ + b↓      frames(a_i): a_i [B][L_i][D_i]
//                                                             read as [B·n][p·D_i], n = L_i / p
//   up:    v_i [B·n][p·D_i] = h_{i+1} · W↑ᵀ + b↑;  u_i = a_i + v_i moved one frame later
//          (frame 0 of each sequence: the carried rows; the last frame's v goes to the state out)
//
// and the backward of each. Every length is a multiple of the pooling period, so frames never
// straddle two sequences. The stacks' tapes run on their own streams; each call to one returns
// when its GPU work is done, and this tape waits for its own stream before handing rows on.
#include "kernels/cuda/train_tape.cuh"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace mw::kernels::cuda {
namespace {

using detail::DevPtr;
using detail::device_alloc;
using namespace layer;

// out [rows][n] = bias [n]
__global__ void fill_rows_kernel(float* __restrict__ out, const float* __restrict__ bias, int64_t rows, int n) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g < rows * n) out[g] = bias[g % n];
}

// Viewed as frames [B][n][F]: u[b][k] = a[b][k] + (k > 0 ? v[b][k-1] : carried[b]).
__global__ void up_merge_kernel(const float* __restrict__ a, const float* __restrict__ v,
                                const float* __restrict__ carried, float* __restrict__ u, int B, int64_t n, int F) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(B) * n * F) return;
    const int r = int(g % F);
    const int64_t k = (g / F) % n;
    const int64_t b = g / (F * n);
    u[g] = a[g] + (k > 0 ? v[g - F] : carried[b * F + r]);
}

// The up pool's output gradient from u's: dv[b][k] = du[b][k+1]; the last frame's v went to
// the state out, which no gradient comes back through (truncated back-propagation): zero.
__global__ void up_shift_back_kernel(const float* __restrict__ du, float* __restrict__ dv, int B, int64_t n, int F) {
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= int64_t(B) * n * F) return;
    const int64_t k = (g / F) % n;
    dv[g] = k + 1 < n ? du[g + F] : 0.0f;
}

void fill_rows(float* out, const float* bias, int64_t rows, int n, cudaStream_t s) {
    fill_rows_kernel<<<blocks_for(rows * n, kThreads), kThreads, 0, s>>>(out, bias, rows, n);
    MW_CUDA_CHECK_LAUNCH();
}

int stack_level(int s, int P) { return s <= P ? s : 2 * P - s; }

int64_t stack_state_floats(const Dims& d) {
    return int64_t(d.n_layers) * d.d_inner * (d.d_conv - 1 + d.d_state);
}

} // namespace

struct PooledTape : layer::GpuContext {
    int B = 0, P = 0, V = 0;
    int64_t max_len = 0, period = 1;
    std::vector<int> factor, D;            // [P], [P+1]: pool factors, each level's width
    std::vector<int64_t> state_at;         // per stream: each stack's state, then each pool's rows
    int64_t state_floats = 0;
    std::vector<TrainTapePtr> tapes;       // [2P+1]
    std::vector<int64_t> pool_at;          // [P]: pool i's down_w, down_b, up_w, up_b, packed
    int64_t pool_floats = 0;
    DevPtr<float> weights;                 // the pools, then the embedding [V][D_0]
    DevPtr<float> grad;                    // the same layout
    DevPtr<int32_t> tokens;                // [B·L]
    DevPtr<float> rows;                    // the buffers below
    std::vector<float*> x, u, v, carried, du, dh, dx;
    float *part = nullptr, *sums = nullptr;
    int64_t L = 0;                         // of the last forward (0: none)
    std::vector<int64_t> Ln;               // the levels' lengths
    bool tf32 = false;
    TrainTiming time;
    // Host arrays kept from step to step (a step's fresh ones cost page faults): the pools and
    // embedding going up and their gradients coming down, page-locked; each stack's state in and
    // out in its tape's order.
    PinnedFloats weights_host, grad_host;
    std::vector<std::vector<float>> st_in, st_out;

    int F(int i) const { return factor[size_t(i)] * D[size_t(i)]; }
    const float* down_w(int i) const { return weights.get() + pool_at[size_t(i)]; }
    const float* down_b(int i) const { return down_w(i) + int64_t(D[size_t(i) + 1]) * F(i); }
    const float* up_w(int i) const { return down_b(i) + D[size_t(i) + 1]; }
    const float* up_b(int i) const { return up_w(i) + int64_t(F(i)) * D[size_t(i) + 1]; }
    float* g(const float* w) const { return grad.get() + (w - weights.get()); }
    const float* embed() const { return weights.get() + pool_floats; }
    float* d_embed() const { return grad.get() + pool_floats; }
    // (the caller's line goes to MW_HOST_TRACE's table, not this one)
    void sync(const char* file = __builtin_FILE(), int line = __builtin_LINE()) const {
        detail::wait_for(stream, file, line);
    }
};

void PooledTapeDeleter::operator()(PooledTape* t) const { delete t; }

namespace {

// The view's parts fit together: 2P+1 stacks at their levels' widths, the last one a
// generator's head, the others hidden; pools between consecutive levels.
void check_view(const PooledView& m, const std::string& who) {
    auto fail = [&](const std::string& what) { throw std::invalid_argument(who + ": " + what); };
    const int P = int(m.pools.size());
    if (P < 1) fail("no pools (a flat model trains on make_train_tape)");
    if (int(m.stacks.size()) != 2 * P + 1)
        fail(std::to_string(m.stacks.size()) + " stacks for " + std::to_string(P) + " pools, expected " +
             std::to_string(2 * P + 1));
    for (int s = 0; s <= 2 * P; ++s) {
        const ModelView& v = m.stacks[size_t(s)];
        const HeadKind want = s == 2 * P ? HeadKind::tokens : HeadKind::hidden;
        if (v.head != want)
            fail("stack " + std::to_string(s) + (s == 2 * P ? " (the last) must end in the generator's head"
                                                              : " must be a stack of layers alone (HeadKind::hidden)"));
        const int lv = stack_level(s, P);
        const int want_d = lv == 0 ? m.stacks.back().dims.d_model : m.pools[size_t(lv - 1)].d_out;
        if (v.dims.d_model != want_d)
            fail("stack " + std::to_string(s) + " (level " + std::to_string(lv) + ") has d_model " +
                 std::to_string(v.dims.d_model) + ", expected " + std::to_string(want_d));
    }
    for (int i = 0; i < P; ++i) {
        const PoolView& p = m.pools[size_t(i)];
        const int din = i == 0 ? m.stacks.back().dims.d_model : m.pools[size_t(i - 1)].d_out;
        if (p.factor < 1 || p.d_in != din || p.d_out < 1)
            fail("pool " + std::to_string(i) + ": factor " + std::to_string(p.factor) + ", d_in " +
                 std::to_string(p.d_in) + " (expected " + std::to_string(din) + "), d_out " + std::to_string(p.d_out));
        if (!p.down_w || !p.down_b || !p.up_w || !p.up_b) fail("pool " + std::to_string(i) + " lacks a tensor");
    }
    if (!m.stacks.back().embed_w) fail("the last stack lacks the embedding (the model's input table)");
}

// Pools and embedding into one host array, then one copy to the device.
void upload_pooled_weights(PooledTape& t, const PooledView& m) {
    const size_t n = size_t(t.pool_floats) + size_t(t.V) * size_t(t.D[0]);
    float* host = detail::pinned_at_least(t.weights_host, n);
    for (int i = 0; i < t.P; ++i) {
        const PoolView& p = m.pools[size_t(i)];
        const int64_t FD = int64_t(t.F(i)) * t.D[size_t(i) + 1];
        float* dst = host + t.pool_at[size_t(i)];
        dst = std::copy_n(p.down_w, FD, dst);
        dst = std::copy_n(p.down_b, t.D[size_t(i) + 1], dst);
        dst = std::copy_n(p.up_w, FD, dst);
        std::copy_n(p.up_b, t.F(i), dst);
    }
    std::copy_n(m.stacks.back().embed_w, int64_t(t.V) * t.D[0], host + t.pool_floats);
    MW_CUDA_CHECK(cudaMemcpyAsync(t.weights.get(), host, n * sizeof(float), cudaMemcpyHostToDevice, t.stream));
    t.sync();  // (the next upload rewrites host)
}

} // namespace

int64_t pooled_state_floats(const PooledView& m) {
    const int P = int(m.pools.size());
    int64_t n = 0;
    for (const ModelView& v : m.stacks) n += stack_state_floats(v.dims);
    for (int i = 0; i < P; ++i) n += int64_t(m.pools[size_t(i)].factor) * m.pools[size_t(i)].d_in;
    return n;
}

PooledTapePtr make_pooled_tape(const PooledView& m, int batch, int64_t max_len) {
    const std::string who = "cuda::make_pooled_tape";
    auto fail = [&](const std::string& what) { throw std::invalid_argument(who + ": " + what); };
    check_view(m, who);
    PooledTapePtr t(new PooledTape);
    t->P = int(m.pools.size());
    t->B = batch;
    t->V = m.stacks.back().vocab;
    for (const PoolView& p : m.pools) {
        t->factor.push_back(p.factor);
        t->period *= p.factor;
    }
    if (batch < 1) fail("batch is " + std::to_string(batch) + ", expected >= 1");
    if (max_len < t->period || max_len % t->period != 0)
        fail("max_len is " + std::to_string(max_len) + ", expected a multiple of the pooling period " +
             std::to_string(t->period));
    t->max_len = max_len;
    t->D.push_back(m.stacks.back().dims.d_model);
    for (const PoolView& p : m.pools) t->D.push_back(p.d_out);
    const int P = t->P;
    for (const ModelView& v : m.stacks) {
        t->state_at.push_back(t->state_floats);
        t->state_floats += stack_state_floats(v.dims);
    }
    for (int i = 0; i < P; ++i) {
        t->state_at.push_back(t->state_floats);
        t->state_floats += t->F(i);
        t->pool_at.push_back(t->pool_floats);
        t->pool_floats += 2 * int64_t(t->F(i)) * t->D[size_t(i) + 1] + t->D[size_t(i) + 1] + t->F(i);
    }

    t->start();
    std::vector<int64_t> len{max_len};
    for (int p : t->factor) len.push_back(len.back() / p);
    for (int s = 0; s <= 2 * P; ++s)
        t->tapes.push_back(make_train_tape_rows(m.stacks[size_t(s)], batch, len[size_t(stack_level(s, P))]));
    const int64_t weights = t->pool_floats + int64_t(t->V) * t->D[0];
    t->weights = device_alloc<float>(weights);
    t->grad = device_alloc<float>(weights);
    t->tokens = device_alloc<int32_t>(int64_t(batch) * max_len);

    detail::Carving c;
    auto level_rows = [&](int i) { return int64_t(batch) * len[size_t(i)] * t->D[size_t(i)]; };
    t->x.resize(size_t(P) + 1);
    t->dx.resize(size_t(P) + 1);
    t->dh.resize(size_t(P) + 1);
    t->u.resize(size_t(P));
    t->v.resize(size_t(P));
    t->carried.resize(size_t(P));
    t->du.resize(size_t(P));
    int64_t sums = embed_backward_sums(int64_t(batch) * max_len, t->V, t->D[0]);
    for (int i = 0; i <= P; ++i) {
        c.take(&t->x[size_t(i)], level_rows(i));
        c.take(&t->dx[size_t(i)], level_rows(i));
        c.take(&t->dh[size_t(i)], level_rows(i));
        if (i == P) break;
        c.take(&t->u[size_t(i)], level_rows(i));
        c.take(&t->v[size_t(i)], level_rows(i));  // [B·L_{i+1}][p·D_i]: as many floats
        c.take(&t->du[size_t(i)], level_rows(i));
        c.take(&t->carried[size_t(i)], int64_t(batch) * t->F(i));
        const int64_t frames = int64_t(batch) * len[size_t(i) + 1];
        sums = std::max({sums, column_sums_scratch(frames, t->F(i)), column_sums_scratch(frames, t->D[size_t(i) + 1])});
    }
    c.take(&t->part, std::max<int64_t>(embed_backward_part(int64_t(batch) * max_len, t->V, t->D[0]), 1));
    c.take(&t->sums, std::max<int64_t>(sums, 1));
    t->rows = c.allocate();
    upload_pooled_weights(*t, m);  // (as the stacks' tapes do: a forward with WeightUpload::as_last may come first)
    return t;
}

void train_pooled_forward(PooledTape& t, const PooledView& m, const int32_t* tokens, int64_t L,
                          const float* state_in, float* logits, float* state_out, WeightUpload up) {
    const std::string who = "cuda::train_pooled_forward";
    auto fail = [&](const std::string& what) { throw std::invalid_argument(who + ": " + what); };
    check_view(m, who);
    if (int(m.pools.size()) != t.P || m.stacks.back().vocab != t.V || m.stacks.back().dims.d_model != t.D[0])
        fail("the model's sizes differ from the tape's (make a tape for this model)");
    for (int i = 0; i < t.P; ++i)
        if (m.pools[size_t(i)].factor != t.factor[size_t(i)] || m.pools[size_t(i)].d_out != t.D[size_t(i) + 1])
            fail("pool " + std::to_string(i) + "'s sizes differ from the tape's (make a tape for this model)");
    if (L < 1 || L > t.max_len || L % t.period != 0)
        fail("L is " + std::to_string(L) + ", expected a multiple of the pooling period " + std::to_string(t.period) +
             " in 1.." + std::to_string(t.max_len));
    const int64_t n0 = int64_t(t.B) * L;
    for (int64_t i = 0; i < n0; ++i)
        if (tokens[i] < 0 || tokens[i] >= t.V)
            fail("token " + std::to_string(tokens[i]) + " at sequence " + std::to_string(i / L) + ", step " +
                 std::to_string(i % L) + " is outside 0.." + std::to_string(t.V - 1));
    const auto t0 = std::chrono::steady_clock::now();
    t.L = 0;  // no valid tape until this forward completes
    const int P = t.P, B = t.B;
    t.Ln.assign(1, L);
    for (int p : t.factor) t.Ln.push_back(t.Ln.back() / p);

    // Each stack's state in and out as its tape's [B][S_s]; the pools' carried rows to the device.
    // (The state out may be the state in: everything is read before anything is written.)
    const int S = 2 * P + 1;
    std::vector<std::vector<float>>& st_in = t.st_in;
    std::vector<std::vector<float>>& st_out = t.st_out;
    st_in.resize(size_t(S));
    st_out.resize(size_t(S));
    std::vector<float> carried_host;
    for (int s = 0; s < S; ++s) {
        const int64_t n = stack_state_floats(m.stacks[size_t(s)].dims);
        st_out[size_t(s)].resize(size_t(B * n));
        if (!state_in) continue;
        st_in[size_t(s)].resize(size_t(B * n));
        for (int b = 0; b < B; ++b)
            std::copy_n(state_in + b * t.state_floats + t.state_at[size_t(s)], n, st_in[size_t(s)].begin() + b * n);
    }
    if (up == WeightUpload::fresh) upload_pooled_weights(t, m);
    for (int i = 0; i < P; ++i) {
        const int F = t.F(i);
        carried_host.assign(size_t(B) * F, 0.0f);
        if (state_in)
            for (int b = 0; b < B; ++b)
                std::copy_n(state_in + b * t.state_floats + t.state_at[size_t(S + i)], F, carried_host.begin() + b * F);
        MW_CUDA_CHECK(cudaMemcpyAsync(t.carried[size_t(i)], carried_host.data(), carried_host.size() * sizeof(float),
                                      cudaMemcpyHostToDevice, t.stream));
        t.sync();
    }
    auto in = [&](int s) { return state_in ? st_in[size_t(s)].data() : nullptr; };
    auto out = [&](int s) { return state_out ? st_out[size_t(s)].data() : nullptr; };

    // x_0 = embeddings[token]
    MW_CUDA_CHECK(cudaMemcpyAsync(t.tokens.get(), tokens, size_t(n0) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                  t.stream));
    const EmbedParams ep{t.tokens.get(), t.embed(), t.x[0], n0, t.D[0]};
    embed_kernel<<<blocks_for(n0 * t.D[0], kThreads), kThreads, 0, t.stream>>>(ep);
    MW_CUDA_CHECK_LAUNCH();
    t.sync();
    // Down the U: a_i = down_i(x_i); x_{i+1} = frames(a_i) · W↓ᵀ + b↓
    for (int i = 0; i < P; ++i) {
        train_forward_rows(*t.tapes[size_t(i)], m.stacks[size_t(i)], t.x[size_t(i)], t.Ln[size_t(i)], in(i), out(i), up);
        const int64_t frames = int64_t(B) * t.Ln[size_t(i) + 1];
        const int Dn = t.D[size_t(i) + 1], F = t.F(i);
        fill_rows(t.x[size_t(i) + 1], t.down_b(i), frames, Dn, t.stream);
        gemm_rows(t.blas, frames, Dn, F, rows_out(*t.tapes[size_t(i)]), F, t.down_w(i), F, t.x[size_t(i) + 1], Dn, 1.0f);
        t.sync();
    }
    train_forward_rows(*t.tapes[size_t(P)], m.stacks[size_t(P)], t.x[size_t(P)], t.Ln[size_t(P)], in(P), out(P), up);
    // Up the U: v_i = h_{i+1} · W↑ᵀ + b↑; u_i = a_i + v_i a frame later; h_i = up_i(u_i)
    std::vector<float> next;
    for (int i = P - 1; i >= 0; --i) {
        const int64_t frames = int64_t(B) * t.Ln[size_t(i) + 1];
        const int Dn = t.D[size_t(i) + 1], F = t.F(i);
        const float* h = rows_out(*t.tapes[size_t(i + 1 == P ? P : 2 * P - i - 1)]);
        fill_rows(t.v[size_t(i)], t.up_b(i), frames, F, t.stream);
        gemm_rows(t.blas, frames, F, Dn, h, Dn, t.up_w(i), Dn, t.v[size_t(i)], F, 1.0f);
        const int64_t n = t.Ln[size_t(i) + 1];
        up_merge_kernel<<<blocks_for(int64_t(B) * n * F, kThreads), kThreads, 0, t.stream>>>(
            rows_out(*t.tapes[size_t(i)]), t.v[size_t(i)], t.carried[size_t(i)], t.u[size_t(i)], B, n, F);
        MW_CUDA_CHECK_LAUNCH();
        if (state_out) {  // each sequence's last frame of v: the rows the next segment's first frame adds in
            next.resize(size_t(B) * F);
            t.sync();  // (a copy into pageable memory would wait unseen)
            MW_CUDA_CHECK(cudaMemcpy2DAsync(next.data(), size_t(F) * sizeof(float), t.v[size_t(i)] + (n - 1) * F,
                                            size_t(n * F) * sizeof(float), size_t(F) * sizeof(float), size_t(B),
                                            cudaMemcpyDeviceToHost, t.stream));
        }
        t.sync();
        for (int b = 0; state_out && b < B; ++b)
            std::copy_n(next.begin() + b * F, F, state_out + b * t.state_floats + t.state_at[size_t(S + i)]);
        const int s = 2 * P - i;
        train_forward_rows(*t.tapes[size_t(s)], m.stacks[size_t(s)], t.u[size_t(i)], t.Ln[size_t(i)], in(s), out(s), up);
    }
    // (state_out's pool rows are written above, after every carried row was read: state_in is
    // copied into sin and the device before the first one.)
    for (int s = 0; state_out && s < S; ++s) {
        const int64_t n = stack_state_floats(m.stacks[size_t(s)].dims);
        for (int b = 0; b < B; ++b)
            std::copy_n(st_out[size_t(s)].begin() + b * n, n, state_out + b * t.state_floats + t.state_at[size_t(s)]);
    }
    TrainTape& top = *t.tapes[size_t(2 * P)];
    if (logits) {
        MW_CUDA_CHECK(cudaMemcpyAsync(logits, top.out, size_t(n0) * t.V * sizeof(float), cudaMemcpyDeviceToHost,
                                      top.stream));
        detail::wait_for(top.stream);
    }
    t.L = L;
    t.time.forward_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    t.time.samples += n0;
}

void train_pooled_cross_entropy(PooledTape& t, const int32_t* targets, double scale, double* nats) {
    if (t.L < 1) throw std::logic_error("cuda::train_pooled_cross_entropy: no forward before it");
    train_cross_entropy(*t.tapes[size_t(2 * t.P)], targets, scale, nats);
}

void train_pooled_self_feed(PooledTape& t, const SelfFeedDraws& d, int32_t* tokens) {
    if (t.L < 1) throw std::logic_error("cuda::train_pooled_self_feed: no forward before it");
    train_self_feed(*t.tapes[size_t(2 * t.P)], d, tokens);
}

void train_pooled_backward(PooledTape& t, const float* d_logits, const PooledGrad& g) {
    const std::string who = "cuda::train_pooled_backward";
    if (t.L < 1) throw std::logic_error(who + ": no forward before it");
    const int P = t.P, B = t.B;
    if (int(g.stacks.size()) != 2 * P + 1 || int(g.pools.size()) != P)
        throw std::invalid_argument(who + ": the gradient has " + std::to_string(g.stacks.size()) + " stacks and " +
                                    std::to_string(g.pools.size()) + " pools, the tape " + std::to_string(2 * P + 1) +
                                    " and " + std::to_string(P));
    for (const PoolGrad& p : g.pools)
        if (!p.down_w || !p.down_b || !p.up_w || !p.up_b) throw std::invalid_argument(who + ": a pool's gradient is null");
    if (!g.stacks.back().embed_w) throw std::invalid_argument(who + ": the embedding's gradient is null");
    TrainTape& top = *t.tapes[size_t(2 * P)];
    if (!d_logits && !top.dout_on_device)
        throw std::invalid_argument(who + ": d_logits is null and no train_pooled_cross_entropy gave it");
    const auto t0 = std::chrono::steady_clock::now();
    MW_CUDA_CHECK(cudaMemsetAsync(t.grad.get(), 0, size_t(t.pool_floats + int64_t(t.V) * t.D[0]) * sizeof(float),
                                  t.stream));
    if (d_logits) {  // into the top tape's gradient buffer, as train_cross_entropy leaves it
        MW_CUDA_CHECK(cudaMemcpyAsync(top.dout, d_logits, size_t(B * t.L) * t.V * sizeof(float),
                                      cudaMemcpyHostToDevice, top.stream));
        detail::wait_for(top.stream);
        top.dout_on_device = true;
    }
    t.sync();
    // The up stacks from the head: du_i from up_i's tape; the skip takes du_i as it is; frame k+1
    // of du_i is frame k's v's gradient, which gives the up pool's and dh_{i+1}.
    train_backward_rows(top, nullptr, g.stacks[size_t(2 * P)], t.du[0]);
    for (int i = 0; i < P; ++i) {
        const int64_t n = t.Ln[size_t(i) + 1], frames = int64_t(B) * n;
        const int Dn = t.D[size_t(i) + 1], F = t.F(i);
        float* dv = t.v[size_t(i)];  // (v is not needed again)
        up_shift_back_kernel<<<blocks_for(frames * F, kThreads), kThreads, 0, t.stream>>>(t.du[size_t(i)], dv, B, n, F);
        MW_CUDA_CHECK_LAUNCH();
        const float* h = rows_out(*t.tapes[size_t(i + 1 == P ? P : 2 * P - i - 1)]);
        gemm_dw(t.blas, frames, F, Dn, dv, F, h, Dn, t.g(t.up_w(i)), Dn);
        column_sums(dv, frames, F, F, t.g(t.up_b(i)), true, t.sums, t.stream);
        gemm_dx(t.blas, frames, F, Dn, dv, F, t.up_w(i), Dn, t.dh[size_t(i) + 1], Dn, 0.0f);
        t.sync();
        if (i + 1 < P) {
            const int s = 2 * P - i - 1;
            train_backward_rows(*t.tapes[size_t(s)], t.dh[size_t(i) + 1], g.stacks[size_t(s)], t.du[size_t(i) + 1]);
        }
    }
    train_backward_rows(*t.tapes[size_t(P)], t.dh[size_t(P)], g.stacks[size_t(P)], t.dx[size_t(P)]);
    // Down the U: da_i = du_i (the skip) + W↓ᵀ · dx_{i+1} spread over frame k's rows; then down_i.
    for (int i = P - 1; i >= 0; --i) {
        const int64_t frames = int64_t(B) * t.Ln[size_t(i) + 1];
        const int Dn = t.D[size_t(i) + 1], F = t.F(i);
        const float* a = rows_out(*t.tapes[size_t(i)]);
        const float* dxn = t.dx[size_t(i) + 1];
        gemm_dw(t.blas, frames, Dn, F, dxn, Dn, a, F, t.g(t.down_w(i)), F);
        column_sums(dxn, frames, Dn, Dn, t.g(t.down_b(i)), true, t.sums, t.stream);
        gemm_dx(t.blas, frames, Dn, F, dxn, Dn, t.down_w(i), F, t.du[size_t(i)], F, 1.0f);
        t.sync();
        train_backward_rows(*t.tapes[size_t(i)], t.du[size_t(i)], g.stacks[size_t(i)], t.dx[size_t(i)]);
    }
    // x_0 = embeddings[token]
    embed_backward(t.tokens.get(), t.dx[0], int64_t(B) * t.L, t.D[0], t.V, t.d_embed(), t.part, t.sums, t.stream);
    const size_t n_grad = size_t(t.pool_floats + int64_t(t.V) * t.D[0]);
    float* host = detail::pinned_at_least(t.grad_host, n_grad);
    MW_CUDA_CHECK(cudaMemcpyAsync(host, t.grad.get(), n_grad * sizeof(float), cudaMemcpyDeviceToHost, t.stream));
    t.sync();
    for (int i = 0; i < P; ++i) {
        const PoolGrad& o = g.pools[size_t(i)];
        const int64_t FD = int64_t(t.F(i)) * t.D[size_t(i) + 1];
        auto add = [&](float* dst, const float* w, int64_t count) {
            const float* src = host + (w - t.weights.get());
            for (int64_t k = 0; k < count; ++k) dst[k] += src[k];
        };
        add(o.down_w, t.down_w(i), FD);
        add(o.down_b, t.down_b(i), t.D[size_t(i) + 1]);
        add(o.up_w, t.up_w(i), FD);
        add(o.up_b, t.up_b(i), t.F(i));
    }
    float* ge = g.stacks.back().embed_w;
    const float* src = host + t.pool_floats;
    for (int64_t k = 0; k < int64_t(t.V) * t.D[0]; ++k) ge[k] += src[k];
    t.time.backward_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void set_tf32(PooledTape& t, bool on) {
    for (TrainTapePtr& s : t.tapes) set_tf32(*s, on);
    MW_CUBLAS_CHECK(cublasSetMathMode(t.blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    t.tf32 = on;
}

TrainTiming timing(const PooledTape& t) { return t.time; }

} // namespace mw::kernels::cuda
