// mw_bench_cuda: the CUDA path against the physical limit, measured side by side in one run
// (DESIGN.md "How performance is measured").
//   1. device-to-device copy bandwidth (bytes read + written per second): the ceiling;
//   2. the selective scan alone: achieved GB/s counting its minimal bytes (read Δ, u, B, C, z;
//      write y) and the ratio to the copy; beside it the special-function-unit floor (one exp
//      per state per step in one pass, two when chunked: pass 1 and pass 3); each variant;
//   3. the whole-model forward of two effects over an hour of 48 kHz audio, in x real time;
//   4. the recurrent step of S = 1, 64, 1024, 4096 streams (step.cu): the D16x4 effect and a
//      D64x8 generator sampling on the GPU, both variants (persistent kernel, CUDA Graph), in
//      stream-samples per second, against the byte floor of a step (weights once, every
//      stream's state read and written) at the copy bandwidth.
// Usage: mw_bench_cuda [--seconds S (part 3's audio, default 3600)] [--reps R (scan repeats)]
//                      [--scan B E N L (only this scan)] [--model D LAYERS (only this model)]
//                      [--step (only part 4)] [--step-tune (part 4 plus a sweep of groups and
//                      threads at 1024 and 4096 streams)]
//                      [--step-one effect|generator S (one persistent configuration: profiling)]
//                      [--train (only part 5)] [--train-one D LAYERS B L (one effect's training step)]
//                      [--train-gen D LAYERS B L (one generator's)] [--train-steps N (timed steps, default: 2 s)]
//                      [--lti (parts 3 and 5: every layer LTI, kernels/cuda/scan_lti.cuh)]
//                      [--scan-backward B E N L (only the scan's backward of this shape, both
//                       chunks and both variants: profiling)]
//   5. training: the scan's backward alone in GB/s against the copy, and whole training steps
//      (forward + backward on the GPU tape, transfers included) in samples per second.
//   6. --stft B L: the multi-resolution STFT loss and its gradient for B lanes of L samples
//      (stft_loss.cu, cuFFT, host transfers included) against model/losses.cpp's mrstft_loss
//      run lane after lane on one core, which is what the trainer did before (and still does
//      on the CPU).
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/mamba_cuda.h"
#include "kernels/cuda/stft_cuda.h"
#include "model/losses.h"
#include "kernels/cuda/scan.cuh"
#include "model/model.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

using namespace mw;
using namespace mw::kernels::cuda;

namespace {

struct Row {
    std::string what;
    double ms = 0;          // one run
    double gbps = 0;        // 0: not a bandwidth row
    double pct_copy = 0;
    std::string note;
};
std::vector<Row> g_rows;

__device__ __forceinline__ uint32_t hash32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// p[i] = uniform in [lo, hi), from a hash of (i, seed)
__global__ void fill_uniform(float* p, int64_t n, float lo, float hi, uint32_t seed) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const uint32_t h = hash32(uint32_t(i) ^ hash32(uint32_t(i >> 32) + seed * 0x9e3779b9u));
        p[i] = lo + (hi - lo) * float(h >> 8) * (1.0f / 16777216.0f);
    }
}

void fill(float* p, int64_t n, float lo, float hi, uint32_t seed, int sms) {
    fill_uniform<<<sms * 8, 256>>>(p, n, lo, hi, seed);
    MW_CUDA_CHECK_LAUNCH();
}

float* dev_alloc(int64_t floats) {
    void* p = nullptr;
    MW_CUDA_CHECK(cudaMalloc(&p, size_t(floats) * sizeof(float)));
    return static_cast<float*>(p);
}

// Median time of `reps` runs of fn (after `warm` runs), each timed with events on stream 0.
template <class Fn>
double median_ms(Fn&& fn, int warm, int reps) {
    for (int i = 0; i < warm; ++i) fn();
    MW_CUDA_CHECK(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    MW_CUDA_CHECK(cudaEventCreate(&a));
    MW_CUDA_CHECK(cudaEventCreate(&b));
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        MW_CUDA_CHECK(cudaEventRecord(a, 0));
        fn();
        MW_CUDA_CHECK(cudaEventRecord(b, 0));
        MW_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        MW_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    MW_CUDA_CHECK(cudaEventDestroy(a));
    MW_CUDA_CHECK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

double copy_bandwidth(int sms) {
    const int64_t floats = int64_t(1) << 29;  // 2 GiB each way, far past the L2
    float* src = dev_alloc(floats);
    float* dst = dev_alloc(floats);
    fill(src, floats, -1, 1, 1, sms);
    const double ms = median_ms(
        [&] { MW_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(floats) * 4, cudaMemcpyDeviceToDevice, 0)); },
        3, 20);
    MW_CUDA_CHECK(cudaFree(src));
    MW_CUDA_CHECK(cudaFree(dst));
    const double gbps = 2.0 * double(floats) * 4 / (ms * 1e-3) / 1e9;
    std::printf("device-to-device copy: 2 x %.1f GiB in %.3f ms = %.0f GB/s (read + written)\n",
                double(floats) * 4 / (1 << 30), ms, gbps);
    return gbps;
}

std::string pow2_name(int64_t L) {
    int k = 0;
    while ((int64_t(1) << k) < L) ++k;
    return (int64_t(1) << k) == L ? "2^" + std::to_string(k) : std::to_string(L);
}

int g_reps = 0;  // 0: 15 repeats (5 for the largest scans)
bool g_lti = false;  // --lti: the whole-model and training benchmarks' layers are all LTI
int g_train_steps = 0;  // --train-steps: timed training steps after the warm-up (0: for about 2 s)

// Every layer LTI with --lti.
void apply_lti(ModelConfig& c) {
    for (int l = 0; g_lti && l < c.n_layers; ++l) c.lti_layers.push_back(l);
}
const char* lti_mark() { return g_lti ? " LTI" : ""; }

// The arrays of one benchmarked scan, each dense (rows b·L + t, no padding).
struct ScanArrays {
    float* dt;     // [B][L][E]
    float* u;      // [B][L][E]
    float* z;      // [B][L][E]
    float* y;      // [B][L][E]
    float* bc;     // [B][L][2N]: B_t then C_t
    float* A2;     // [E][N]
    float* Dv;     // [E]
    float* bias;   // [E]
    float* state;  // [B][N][E]
};

// The forward scan over them (default variant).
ScanProblem dense_scan(int B, int64_t L, int E, int N, const ScanArrays& a) {
    ScanProblem q;
    q.B = B; q.L = L; q.E = E; q.N = N;
    q.dt = a.dt; q.dt_stride = E;
    q.u = a.u;   q.u_stride = E;
    q.z = a.z;   q.z_stride = E;
    q.Bm = a.bc; q.Cm = a.bc + N; q.bc_stride = 2 * N;
    q.y = a.y;   q.y_stride = E;
    q.A2 = a.A2; q.D = a.Dv; q.dt_bias = a.bias; q.state = a.state;
    return q;
}

__global__ void to_bf16(const float* in, __nv_bfloat16* out, int64_t n) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

// bf16: the scan reads Δ, u, z, B and C as bf16 (converted from the same random floats
// first), so its minimal bytes are 2 per input element and 4 per output.
// variant 0 takes what scan_choice picks (one pass, segments or chunked tiles); lanes forces the
// one pass's lanes per channel (variant 3).
void bench_scan(int B, int E, int N, int64_t L, int variant, double copy_gbps, int sms, double clock_hz,
                bool bf16 = false, int lanes = 0) {
    const int64_t rows = int64_t(B) * L;
    const int T = auto_scan_chunk(B, L, E, N, sms, variant);
    const ScanChoice choice = scan_choice(B, L, E, N, sms, variant, lanes);
    const int one_pass = choice.mode == ScanChoice::chunked ? 0 : choice.lanes;
    const ScanWorkspaceSize ws = scan_workspace_size(B, L, E, N, T);
    const int64_t floats = 4 * rows * E + rows * 2 * N + ws.total() + int64_t(E) * (N + 2) + int64_t(B) * N * E;
    size_t free_b = 0, total_b = 0;
    MW_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const std::string how = choice.mode == ScanChoice::whole ? " (one pass, " + std::to_string(one_pass) + " lanes)"
                            : choice.mode == ScanChoice::segments
                                ? " (one pass in " + std::to_string(choice.nseg) + " segments, " +
                                      std::to_string(one_pass) + " lanes)"
                                : " (chunked)";
    const std::string name = "scan v" + std::to_string(variant) + how + (bf16 ? " bf16" : "") + " B" +
                             std::to_string(B) + " E" + std::to_string(E) + " N" + std::to_string(N) + " L" +
                             pow2_name(L);
    if (double(floats) * (bf16 ? 5.5 : 4) > 0.92 * double(free_b)) {
        std::printf("%s: needs %.1f GiB, %.1f GiB free: skipped\n", name.c_str(), double(floats) * 4 / (1 << 30),
                    double(free_b) / (1 << 30));
        g_rows.push_back({name, 0, 0, 0, "skipped: does not fit"});
        return;
    }
    float* dt = dev_alloc(rows * E);     // [B][L][E]
    float* u = dev_alloc(rows * E);      // [B][L][E]
    float* z = dev_alloc(rows * E);      // [B][L][E]
    float* y = dev_alloc(rows * E);      // [B][L][E]
    float* bc = dev_alloc(rows * 2 * N); // [B][L][2N]: B_t then C_t
    float* A2 = dev_alloc(int64_t(E) * N);
    float* Dv = dev_alloc(E);
    float* bias = dev_alloc(E);
    float* state = dev_alloc(int64_t(B) * N * E);
    float* work = dev_alloc(ws.total());
    fill(dt, rows * E, -6.0f, -2.0f, 11, sms);  // Δ = softplus(dt) in about [0.0025, 0.13]
    fill(u, rows * E, -1.0f, 1.0f, 12, sms);
    fill(z, rows * E, -2.0f, 2.0f, 13, sms);
    fill(y, rows * E, -1.0f, 1.0f, 14, sms);
    fill(bc, rows * 2 * N, -1.0f, 1.0f, 15, sms);
    {
        std::vector<float> a2(size_t(E) * N);
        for (int e = 0; e < E; ++e)
            for (int n = 0; n < N; ++n)
                a2[size_t(e) * N + n] = -float(n + 1) * (1.0f + 0.3f * float((e * 7 + n) % 5) / 5.0f) * 1.4426950f;
        std::vector<float> ones(size_t(E), 1.0f), zeros(size_t(E), 0.0f);
        MW_CUDA_CHECK(cudaMemcpy(A2, a2.data(), a2.size() * 4, cudaMemcpyHostToDevice));
        MW_CUDA_CHECK(cudaMemcpy(Dv, ones.data(), size_t(E) * 4, cudaMemcpyHostToDevice));
        MW_CUDA_CHECK(cudaMemcpy(bias, zeros.data(), size_t(E) * 4, cudaMemcpyHostToDevice));
        MW_CUDA_CHECK(cudaMemset(state, 0, size_t(B) * N * E * 4));
    }
    ScanProblem q = dense_scan(B, L, E, N, {dt, u, z, y, bc, A2, Dv, bias, state});
    q.variant = variant;
    q.lanes = lanes;
    __nv_bfloat16* in16 = nullptr;  // [dt | u | z | bc] as bf16
    if (bf16) {
        MW_CUDA_CHECK(cudaMalloc(&in16, size_t(rows * (3 * E + 2 * N)) * sizeof(__nv_bfloat16)));
        __nv_bfloat16* at = in16;
        for (auto [src, n] : {std::pair{dt, rows * E}, {u, rows * E}, {z, rows * E}, {bc, rows * 2 * N}}) {
            to_bf16<<<sms * 8, 256>>>(src, at, n);
            MW_CUDA_CHECK(cudaGetLastError());
            at += n;
        }
        q.bf16 = {in16, in16 + rows * E, in16 + 2 * rows * E, in16 + 3 * rows * E, in16 + 3 * rows * E + N};
    }
    const int reps = g_reps > 0 ? g_reps : rows * E > (int64_t(1) << 32) ? 5 : 15;
    const double ms = median_ms([&] { selective_scan(q, T, work, 0); }, g_reps == 1 ? 0 : 2, reps);
    // every output written and finite (a sample from the start and the end)
    std::vector<float> probe(4096);
    MW_CUDA_CHECK(cudaMemcpy(probe.data(), y, 2048 * 4, cudaMemcpyDeviceToHost));
    MW_CUDA_CHECK(cudaMemcpy(probe.data() + 2048, y + rows * E - 2048, 2048 * 4, cudaMemcpyDeviceToHost));
    bool finite = true;
    for (float v : probe) finite = finite && std::isfinite(v);

    const double bytes = bf16 ? double(rows) * ((3.0 * E + 2.0 * N) * 2 + 4.0 * E)  // bf16 Δ, u, z, B, C; y
                              : double(rows) * (4.0 * E + 2.0 * N) * 4;             // Δ, u, z, y; B, C
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    // chunked: passes 1 and 3; segments: once, plus the mending (not counted: it depends on the decay)
    const double exps = (one_pass ? 1.0 : 2.0) * double(rows) * E * N;
    const double sfu_ms = exps / (double(sms) * 16 * clock_hz) * 1e3;
    const double mem_ms = bytes / (copy_gbps * 1e9) * 1e3;
    std::printf("%s: chunk %d (%lld chunks): %.3f ms, %.0f GB/s = %.0f%% of copy; floors: bytes %.3f ms, "
                "exp unit %.3f ms%s\n",
                name.c_str(), T, (long long)ws.chunks, ms, gbps, 100 * gbps / copy_gbps, mem_ms, sfu_ms,
                finite ? "" : "  NON-FINITE OUTPUT");
    char note[160];
    std::snprintf(note, sizeof note, "chunk %d; floors %.2f ms bytes, %.2f ms exp%s", T, mem_ms, sfu_ms,
                  finite ? "" : "; NON-FINITE");
    g_rows.push_back({name, ms, gbps, 100 * gbps / copy_gbps, note});
    for (float* p : {dt, u, z, y, bc, A2, Dv, bias, state, work}) MW_CUDA_CHECK(cudaFree(p));
    if (in16) MW_CUDA_CHECK(cudaFree(in16));
}

// ---- 5. training: the scan's backward, and whole training steps -------------------------------

// The scan's backward alone (scan_backward.cu) after a forward with its chunk length. Minimal
// bytes: read Δ, u, z, dy (4 per channel-step) and B, C; write du, dΔ, dz (3) and dB, dC. Two
// exps per state per step (pass 1 and pass 3), as in the forward.
void bench_scan_backward(int B, int E, int N, int64_t L, int T, int variant, double copy_gbps, int sms,
                         double clock_hz) {
    const int64_t rows = int64_t(B) * L;
    const ScanWorkspaceSize fws = scan_workspace_size(B, L, E, N, T);
    const ScanBackwardSize bws = scan_backward_workspace_size(B, L, E, N, T);
    const std::string name = "scan backward v" + std::to_string(variant) + " chunk " + std::to_string(T) + " B" +
                             std::to_string(B) + " E" +
                             std::to_string(E) + " N" + std::to_string(N) + " L" + pow2_name(L);
    const int64_t floats = 8 * rows * E + 4 * rows * N + fws.total() + bws.total() + int64_t(E) * (2 * N + 4) +
                           int64_t(B) * N * E;
    size_t free_b = 0, total_b = 0;
    MW_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (double(floats) * 4 > 0.92 * double(free_b)) {
        std::printf("%s: needs %.1f GiB: skipped\n", name.c_str(), double(floats) * 4 / (1 << 30));
        g_rows.push_back({name, 0, 0, 0, "skipped: does not fit"});
        return;
    }
    std::vector<float*> owned;
    auto alloc = [&](int64_t n) { owned.push_back(dev_alloc(n)); return owned.back(); };
    float *dt = alloc(rows * E), *u = alloc(rows * E), *z = alloc(rows * E), *y = alloc(rows * E);
    float *dy = alloc(rows * E), *du = alloc(rows * E), *ddt = alloc(rows * E), *dz = alloc(rows * E);
    float *bc = alloc(rows * 2 * N), *dbc = alloc(rows * 2 * N);
    float *A2 = alloc(int64_t(E) * N), *dA = alloc(int64_t(E) * N), *Dv = alloc(E), *dD = alloc(E), *bias = alloc(E);
    float *state = alloc(int64_t(B) * N * E), *fwork = alloc(fws.total()), *bwork = alloc(bws.total());
    fill(dt, rows * E, -6.0f, -2.0f, 21, sms);
    fill(u, rows * E, -1.0f, 1.0f, 22, sms);
    fill(z, rows * E, -2.0f, 2.0f, 23, sms);
    fill(dy, rows * E, -1.0f, 1.0f, 24, sms);
    fill(bc, rows * 2 * N, -1.0f, 1.0f, 25, sms);
    fill(A2, int64_t(E) * N, -20.0f, -1.0f, 26, sms);
    fill(Dv, E, 0.5f, 1.5f, 27, sms);
    fill(bias, E, -0.1f, 0.1f, 28, sms);
    MW_CUDA_CHECK(cudaMemset(state, 0, size_t(B) * N * E * 4));
    MW_CUDA_CHECK(cudaMemset(dA, 0, size_t(E) * N * 4));
    MW_CUDA_CHECK(cudaMemset(dD, 0, size_t(E) * 4));
    const ScanProblem q = dense_scan(B, L, E, N, {dt, u, z, y, bc, A2, Dv, bias, state});
    const double fwd_ms = median_ms([&] { selective_scan(q, T, fwork, 0); }, 1, 5);
    ScanBackwardProblem b;
    b.B = B; b.L = L; b.E = E; b.N = N; b.chunk = T; b.variant = variant;
    b.dt = dt; b.dt_stride = E;
    b.u = u;   b.u_stride = E;
    b.z = z;   b.z_stride = E;
    b.Bm = bc; b.Cm = bc + N; b.bc_stride = 2 * N;
    b.dy = dy; b.dy_stride = E;
    b.A2 = A2; b.D = Dv; b.dt_bias = bias;
    b.chunk_start = fwork;
    b.du = du;   b.du_stride = E;
    b.ddt = ddt; b.ddt_stride = E;
    b.dz = dz;   b.dz_stride = E;
    b.dB = dbc;  b.dC = dbc + N; b.dbc_stride = 2 * N;
    b.dA_log = dA; b.dD = dD;
    const int reps = g_reps > 0 ? g_reps : 9;
    const double ms = median_ms([&] { selective_scan_backward(b, bwork, 0); }, 1, reps);
    std::vector<float> probe(2048);
    MW_CUDA_CHECK(cudaMemcpy(probe.data(), ddt + rows * E - 2048, 2048 * 4, cudaMemcpyDeviceToHost));
    bool finite = true;
    for (float v : probe) finite = finite && std::isfinite(v);
    const double bytes = double(rows) * (7.0 * E + 4.0 * N) * 4;
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    const double sfu_ms = 2.0 * double(rows) * E * N / (double(sms) * 16 * clock_hz) * 1e3;
    const double mem_ms = bytes / (copy_gbps * 1e9) * 1e3;
    std::printf("%s: %.3f ms (the forward with chunk %d: %.3f ms), %.0f GB/s = %.0f%% of copy; floors: bytes "
                "%.3f ms, exp unit %.3f ms%s\n",
                name.c_str(), ms, T, fwd_ms, gbps, 100 * gbps / copy_gbps, mem_ms, sfu_ms,
                finite ? "" : "  NON-FINITE OUTPUT");
    char note[160];
    std::snprintf(note, sizeof note, "floors %.2f ms bytes, %.2f ms exp; forward (chunk %d) %.2f ms%s", mem_ms,
                  sfu_ms, T, fwd_ms, finite ? "" : "; NON-FINITE");
    g_rows.push_back({name, ms, gbps, 100 * gbps / copy_gbps, note});
    for (float* p : owned) MW_CUDA_CHECK(cudaFree(p));
}

// Whole training steps on the GPU tape (forward, the loss's gradient on the host, backward,
// gradients down; the optimiser is not included): samples per second = B·L / step.
void bench_train(bool generator, int d_model, int n_layers, int B, int64_t L, bool tf32_products = false) {
    ModelConfig c = make_config(generator ? IoKind::mulaw8 : IoKind::continuous, d_model, n_layers, 16);
    if (!generator) {
        c.controls.push_back({"drive", "", 0.0f, 1.0f, 0.5f, false});
        c.controls.push_back({"tone", "", 0.0f, 1.0f, 0.5f, false});
        c.skip = true;
    }
    apply_lti(c);
    Model m(c);
    m.init_random(5, 0.3f);
    const std::string name = std::string("train ") + (generator ? "generator" : "effect") + " D" +
                             std::to_string(d_model) + "x" + std::to_string(n_layers) + lti_mark() + " B" +
                             std::to_string(B) + " L" + std::to_string(L) + (tf32_products ? " TF32" : "");
    const int64_t rows = int64_t(B) * L;
    const int V = c.vocab, I = c.n_in();
    std::vector<float> x, out(size_t(rows * (generator ? V : 1))), dout(out.size());
    std::vector<int32_t> tok;
    uint32_t h = 99;
    auto rnd = [&] { h = h * 1664525u + 1013904223u; return float(h >> 8) * (1.0f / 8388608.0f) - 1.0f; };
    if (generator) {
        tok.resize(size_t(rows));
        for (int32_t& t : tok) t = int32_t((rnd() + 1.0f) * 127.99f);
    } else {
        x.resize(size_t(rows * I));
        for (float& v : x) v = 0.5f * rnd();
    }
    for (float& v : dout) v = 1e-3f * rnd();
    Model g(c);
    std::vector<kernels::LayerGrad> layers;
    const kernels::ModelGrad mg = g.as_gradient(layers);
    auto tape = make_train_tape(m.view(), B, L);
    set_tf32(*tape, tf32_products);
    auto step = [&] {
        if (generator)
            train_forward_tokens(*tape, m.view(), tok.data(), L, nullptr, out.data(), nullptr);
        else
            train_forward_continuous(*tape, m.view(), x.data(), L, nullptr, out.data(), nullptr);
        train_backward(*tape, dout.data(), mg);
    };
    step();  // warm-up (cuBLAS picks its kernels, the scan workspace grows)
    reset_timing(*tape);
    int steps = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double wall = 0;
    while (g_train_steps > 0 ? steps < g_train_steps : steps < 3 || (wall < 2.0 && steps < 200)) {
        step();
        ++steps;
        wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    const TrainTiming tm = timing(*tape);
    const double per = wall / steps;
    bool finite = true;  // every parameter's gradient, summed over the steps
    for (int64_t i = 0; i < g.parameter_count(); ++i) finite = finite && std::isfinite(g.data()[i]);
    std::printf("%s (%lld parameters): %.2f ms per step = %.3g samples/s (forward %.2f ms, backward %.2f ms per "
                "step, transfers included)%s\n",
                name.c_str(), (long long)m.parameter_count(), per * 1e3, double(rows) / per, tm.forward_ms / steps,
                tm.backward_ms / steps, finite ? "" : "  NON-FINITE GRADIENT");
    char note[200];
    std::snprintf(note, sizeof note, "%.3g samples/s; forward %.1f ms, backward %.1f ms%s", double(rows) / per,
                  tm.forward_ms / steps, tm.backward_ms / steps, finite ? "" : "; NON-FINITE");
    g_rows.push_back({name, per * 1e3, 0, 0, note});
}

// An effect's input, [L][2]: a slow sweep plus noise, and a slowly moving control.
std::vector<float> effect_input(int64_t L, double rate) {
    std::vector<float> x(size_t(L * 2));
    uint32_t s = 12345;
    double phase = 0;
    for (int64_t t = 0; t < L; ++t) {
        s = s * 1664525u + 1013904223u;
        const double f = 100.0 + 900.0 * (0.5 + 0.5 * std::sin(double(t) * 1e-6));
        phase += 6.283185307179586 * f / rate;
        x[size_t(t * 2)] = float(0.5 * std::sin(phase) + 0.05 * (double(s >> 8) / 16777216.0 - 0.5));
        x[size_t(t * 2 + 1)] = float(std::sin(double(t) * 3e-7));
    }
    return x;
}

void bench_model(int d_model, int n_layers, const std::vector<float>& x, double rate) {
    ModelConfig c = make_config(IoKind::continuous, d_model, n_layers, 16);
    c.controls.push_back({"drive", "", 0.0f, 1.0f, 0.5f, false});
    c.skip = true;
    apply_lti(c);
    Model m(c);
    m.init_random(77, 0.3f);
    const int I = c.n_in();  // 2: the sample and the drive control
    const int64_t L = int64_t(x.size()) / I;
    const double seconds = double(L) / rate;
    const int64_t seg = std::min<int64_t>(L, int64_t(1) << 22);
    const std::string name = "model effect D" + std::to_string(d_model) + "x" + std::to_string(n_layers) +
                             lti_mark() + " E" + std::to_string(c.d_inner) + ", " +
                             (seconds >= 3600 ? std::to_string(int(seconds / 3600)) + " h" :
                                                std::to_string(int(seconds)) + " s") + " at 48 kHz";

    std::vector<float> y(size_t(L), std::nanf(""));
    auto F = make_forward(m.view(), seg, 1);
    {
        std::vector<float> warm_y(48000);
        forward_continuous(*F, x.data(), std::min<int64_t>(L, 48000), warm_y.data());  // warm-up
    }
    reset(*F);
    reset_timing(*F);
    const auto t0 = std::chrono::steady_clock::now();
    forward_continuous(*F, x.data(), L, y.data());
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Timing tm = timing(*F);
    bool finite = true;
    for (float v : y) finite = finite && std::isfinite(v);
    const double audio_s = double(L) / rate;
    std::printf("%s: %.3f s wall = %.0f x real time; GPU compute %.3f s = %.0f x real time "
                "(upload %.3f s, download %.3f s)%s\n",
                name.c_str(), wall, audio_s / wall, tm.compute_ms * 1e-3, audio_s / (tm.compute_ms * 1e-3),
                tm.upload_ms * 1e-3, tm.download_ms * 1e-3, finite ? "" : "  NON-FINITE OUTPUT");
    char note[200];
    std::snprintf(note, sizeof note, "%.0f x real time (GPU compute alone %.0f x)%s", audio_s / wall,
                  audio_s / (tm.compute_ms * 1e-3), finite ? "" : "; NON-FINITE");
    g_rows.push_back({name, wall * 1e3, 0, 0, note});
}

// ---- 4. the recurrent step of many streams -------------------------------------------------

Model step_model(bool generator, int d_model, int n_layers) {
    ModelConfig c = make_config(generator ? IoKind::mulaw8 : IoKind::continuous, d_model, n_layers, 16);
    if (!generator) {
        c.controls.push_back({"drive", "", 0.0f, 1.0f, 0.5f, false});
        c.skip = true;
    }
    Model m(c);
    m.init_random(91, 0.3f);
    return m;
}

// One (model, S, tuning): a short run to size the measured one (about 0.3 s of GPU time).
// Prints and records stream-samples per second from device time, and the byte floor.
void bench_step(const Model& m, const std::string& model_name, int S, const StepTuning& tuning,
                double copy_gbps) {
    const bool gen = m.config().kind == IoKind::mulaw8;
    auto st = make_stepper(m.view(), S);
    set_step_tuning(*st, tuning);
    const StepTuning a = step_tuning(*st);
    const int I = gen ? 0 : m.config().n_in();
    std::vector<float> x, y;
    std::vector<int32_t> tok;
    auto run = [&](int64_t n) {
        if (gen) {
            tok.resize(size_t(S * n));
            GenerateParams g;
            g.n_steps = n;
            g.temperature = 1.0f;
            g.top_p = 0.95f;
            g.seed = 5;
            generate_tokens(*st, g, tok.data());
        } else {
            x.resize(size_t(n * S * I));
            y.resize(size_t(n * S));
            uint32_t h = 777;
            for (float& v : x) {
                h = h * 1664525u + 1013904223u;
                v = float(h >> 8) * (1.0f / 8388608.0f) - 1.0f;
            }
            step_continuous(*st, x.data(), y.data(), n);
        }
    };
    run(32);  // warm-up, and the time per step
    reset_timing(*st);
    run(64);
    const double per_step_ms = std::max(timing(*st).compute_ms / 64, 1e-4);
    const int64_t n = std::clamp<int64_t>(int64_t(300.0 / per_step_ms), 64, int64_t(1) << 18);
    reset_stepper(*st);
    reset_timing(*st);
    const auto t0 = std::chrono::steady_clock::now();
    run(n);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Timing tm = timing(*st);
    bool finite = true;
    if (!gen)
        for (float v : y) finite = finite && std::isfinite(v);
    else
        for (int32_t c : tok) finite = finite && c >= 0 && c < 256;

    const double step_us = tm.compute_ms * 1e3 / double(n);
    const double rate = double(S) * double(n) / (tm.compute_ms * 1e-3);  // stream-samples per s
    const StepFootprint fp = step_footprint(*st);
    const double bytes = double(fp.weight_bytes) + 2.0 * double(S) * double(fp.state_bytes_per_stream);
    const double floor_us = bytes / (copy_gbps * 1e9) * 1e6;
    const std::string name = "step " + model_name + " S" + std::to_string(S) + " " +
                             (a.variant == StepVariant::graph ? "graph" : "persistent") + " G" +
                             std::to_string(a.group) + " T" + std::to_string(a.threads) +
                             (a.weights_in_smem ? " w-smem" : "") + (a.state_in_smem ? " s-smem" : "");
    std::printf("%s: %lld samples, %.2f us/step, %.3g stream-samples/s (%.0f x real time at 48 kHz; wall "
                "%.3g/s); floor %.2f us/step (%.0f KB) = %.0f%% of it%s\n",
                name.c_str(), (long long)n, step_us, rate, rate / 48000.0, double(S) * double(n) / wall, floor_us,
                bytes / 1024, 100 * floor_us / step_us, finite ? "" : "  BAD OUTPUT");
    char note[200];
    std::snprintf(note, sizeof note, "%.3g stream-samples/s, %.0f x RT@48k; floor %.2f us (%.0f%%)%s", rate,
                  rate / 48000.0, floor_us, 100 * floor_us / step_us, finite ? "" : "; BAD OUTPUT");
    g_rows.push_back({name, step_us * 1e-3, 0, 0, note});
}

void bench_steps(double copy_gbps, bool tune) {
    const Model effect = step_model(false, 16, 4);
    const Model generator = step_model(true, 64, 8);
    struct M { const Model* m; const char* name; };
    for (const M& mm : {M{&effect, "effect D16x4"}, M{&generator, "generator D64x8 (T1, top-p 0.95)"}})
        for (int S : {1, 64, 1024, 4096})
            for (StepVariant v : {StepVariant::persistent, StepVariant::graph}) {
                StepTuning t;
                t.variant = v;
                bench_step(*mm.m, mm.name, S, t, copy_gbps);
            }
    if (!tune) return;
    // The sweep: streams per block, threads, states in shared memory or not.
    for (const M& mm : {M{&effect, "effect D16x4"}, M{&generator, "generator D64x8 (T1, top-p 0.95)"}})
        for (int S : {1, 1024, 4096})
            for (int G : S == 1 ? std::vector<int>{1} : std::vector<int>{2, 4, 8, 16})
                for (int T : {0, 128, 256, 512})
                    for (int rs : {0, 1}) {
                        StepTuning t;
                        t.group = G;
                        t.threads = T;
                        t.state_in_smem = rs;
                        try {
                            bench_step(*mm.m, mm.name, S, t, copy_gbps);
                        } catch (const std::invalid_argument& e) {
                            std::printf("step %s S%d G%d T%d state %d: %s\n", mm.name, S, G, T, rs, e.what());
                        }
                    }
}

} // namespace

// Part 6: the STFT loss of B lanes of L samples with its gradient, GPU against one CPU core.
void bench_stft(int B, int64_t L) {
    std::vector<float> y(size_t(B * L)), t(size_t(B * L)), dy(size_t(B * L));
    std::mt19937 rng(5);
    std::normal_distribution<float> nd;
    for (size_t i = 0; i < y.size(); ++i) {
        t[i] = 0.3f * nd(rng);
        y[i] = 0.8f * t[i] + 0.1f * nd(rng);
    }
    const StftLossParams p;
    std::vector<int64_t> begin(static_cast<size_t>(B), 0), end(static_cast<size_t>(B), L);
    std::vector<double> scale(static_cast<size_t>(B), 1.0), loss(static_cast<size_t>(B));
    auto S = make_stft_loss(p.sizes, p.eps);
    auto gpu = [&] { stft_loss(*S, y.data(), t.data(), B, L, begin.data(), end.data(), scale.data(), loss.data(), dy.data()); };
    gpu();  // plans and buffers
    std::vector<double> ms;
    for (int r = 0; r < 20; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        gpu();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double gpu_ms = ms[ms.size() / 2];
    double cpu_loss = 0;
    const auto c0 = std::chrono::steady_clock::now();
    std::vector<float> ds(static_cast<size_t>(L));
    for (int b = 0; b < B; ++b) cpu_loss += mrstft_loss(y.data() + b * L, t.data() + b * L, L, p, 1.0, ds.data());
    const double cpu_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count();
    double gpu_loss = 0;
    for (double v : loss) gpu_loss += v;
    char what[128], note[160];
    std::snprintf(what, sizeof what, "STFT loss + gradient, B %d x L %lld, sizes 128/512/2048, GPU (cuFFT)", B,
                  (long long)L);
    std::snprintf(note, sizeof note, "%.3g samples/s; one CPU core %.1f ms (%.0fx); losses %.6g vs %.6g", B * L / (gpu_ms * 1e-3),
                  cpu_ms, cpu_ms / gpu_ms, gpu_loss, cpu_loss);
    g_rows.push_back({what, gpu_ms, 0, 0, note});
    std::printf("%s: %.3f ms  (%s)\n", what, gpu_ms, note);
}

int main(int argc, char** argv) {
    try {
        double seconds = 3600.0;
        std::vector<long long> only_scan, only_model, only_scan_bwd, train_one, train_gen, stft;
        bool only_step = false, step_tune = false, only_train = false;
        std::string step_one;
        int step_one_s = 0;
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto next = [&] {
                if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
                return std::atoll(argv[++i]);
            };
            if (a == "--seconds") seconds = std::atof(argv[++i < argc ? i : argc - 1]);
            else if (a == "--reps") g_reps = int(next());
            else if (a == "--scan") for (int k = 0; k < 4; ++k) only_scan.push_back(next());
            else if (a == "--scan-backward") for (int k = 0; k < 4; ++k) only_scan_bwd.push_back(next());
            else if (a == "--model") for (int k = 0; k < 2; ++k) only_model.push_back(next());
            else if (a == "--step") only_step = true;
            else if (a == "--train") only_train = true;
            else if (a == "--train-one") for (int k = 0; k < 4; ++k) train_one.push_back(next());
            else if (a == "--train-gen") for (int k = 0; k < 4; ++k) train_gen.push_back(next());
            else if (a == "--train-steps") g_train_steps = int(next());
            else if (a == "--lti") g_lti = true;
            else if (a == "--stft") for (int k = 0; k < 2; ++k) stft.push_back(next());
            else if (a == "--step-tune") only_step = step_tune = true;
            else if (a == "--step-one") {
                step_one = i + 1 < argc ? argv[++i] : "";
                step_one_s = int(next());
            }
            else throw std::invalid_argument("unknown argument " + a +
                                             "; usage: mw_bench_cuda [--seconds S] [--reps R] "
                                             "[--scan B E N L] [--scan-backward B E N L] [--model D LAYERS] [--step] "
                                             "[--step-tune] [--train] [--train-one D LAYERS B L] [--train-gen D LAYERS B L] "
                                             "[--train-steps N] [--lti] [--stft B L]");
        }
        if (!available()) {
            std::printf("no CUDA device: nothing to measure\n");
            return 0;
        }
        int dev = 0, sms = 0, clock_khz = 0;
        MW_CUDA_CHECK(cudaGetDevice(&dev));
        MW_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        MW_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev));
        size_t free_b = 0, total_b = 0;
        MW_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        const std::string dname = device_name();
        std::printf("device: %s, %d SMs, %.0f MHz, %.1f GiB (%.1f free)\n", dname.c_str(), sms,
                    clock_khz / 1e3, double(total_b) / (1 << 30), double(free_b) / (1 << 30));
        const double clock_hz = clock_khz * 1e3;
        if (!step_one.empty()) {
            const bool gen = step_one == "generator";
            const Model m = gen ? step_model(true, 64, 8) : step_model(false, 16, 4);
            bench_step(m, gen ? "generator D64x8" : "effect D16x4", step_one_s, StepTuning{}, 3000.0);
            return 0;
        }
        const bool all = only_scan.empty() && only_model.empty() && only_scan_bwd.empty() && !only_step &&
                         !only_train && train_one.empty() && train_gen.empty() && stft.empty();

        const double copy = copy_bandwidth(sms);
        struct ScanCase { int B, E, N; int64_t L; };
        std::vector<ScanCase> scans;
        if (all)
            scans = {{1, 128, 16, int64_t(1) << 20}, {1, 256, 16, int64_t(1) << 20}, {16, 1536, 16, 4096},
                     {16, 512, 16, 16384}, {1, 32, 16, int64_t(1) << 22}, {1, 128, 16, int64_t(1) << 24},
                     {1, 256, 16, int64_t(1) << 24}};
        else if (!only_scan.empty())
            scans = {{int(only_scan[0]), int(only_scan[1]), int(only_scan[2]), int64_t(only_scan[3])}};
        for (const ScanCase& c : scans) {
            // the default (0), the chunked tiles (2) and baseline (1); the one pass with each lane
            // count where the batch gives it a chance (a lone sequence would run for seconds)
            for (int variant : {0, 2, 1}) {
                if (variant == 2 && scan_choice(c.B, c.L, c.E, c.N, sms, 0).mode == ScanChoice::chunked)
                    continue;  // = variant 0
                bench_scan(c.B, c.E, c.N, c.L, variant, copy, sms, clock_hz);
            }
            if (c.B == 1) bench_scan(c.B, c.E, c.N, c.L, 4, copy, sms, clock_hz);  // segments (opt-in)
            if (int64_t(c.B) * c.E >= 2048)
                for (int lanes : {1, 2, 4})
                    if (scan_single_pass_lanes(c.B, c.E, c.N, sms, 3, lanes))
                        bench_scan(c.B, c.E, c.N, c.L, 3, copy, sms, clock_hz, false, lanes);
            bench_scan(c.B, c.E, c.N, c.L, 0, copy, sms, clock_hz, true);
        }

        if (all || !only_model.empty()) {
            const double rate = 48000.0;
            const std::vector<float> x = effect_input(int64_t(seconds * rate), rate);
            if (all) {
                bench_model(16, 4, x, rate);
                bench_model(64, 8, x, rate);
            } else {
                bench_model(int(only_model[0]), int(only_model[1]), x, rate);
            }
        }

        if (all || only_step) bench_steps(copy, step_tune);

        if (!only_scan_bwd.empty())  // one shape: chunk 16 then 8, variants 3, 2, 1 in each
            for (int T : {16, 8})
                for (int variant : {3, 2, 1})
                    bench_scan_backward(int(only_scan_bwd[0]), int(only_scan_bwd[1]), int(only_scan_bwd[2]),
                                        int64_t(only_scan_bwd[3]), T, variant, copy, sms, clock_hz);

        if (!stft.empty()) bench_stft(int(stft[0]), int64_t(stft[1]));
        if (!train_one.empty())
            bench_train(false, int(train_one[0]), int(train_one[1]), int(train_one[2]), int64_t(train_one[3]));
        if (!train_gen.empty())
            bench_train(true, int(train_gen[0]), int(train_gen[1]), int(train_gen[2]), int64_t(train_gen[3]));
        if (all || only_train) {
            for (int T : {16, 8})
                for (int variant : {3, 2, 1}) {
                    bench_scan_backward(1, 128, 16, int64_t(1) << 20, T, variant, copy, sms, clock_hz);
                    bench_scan_backward(16, 1536, 16, 4096, T, variant, copy, sms, clock_hz);
                }
            bench_train(false, 8, 3, 16, 4096);     // the shipped effect presets' shape and batch
            bench_train(false, 16, 4, 16, 4096);
            bench_train(true, 64, 6, 16, 8192);     // a digits-sized generator
            bench_train(false, 256, 4, 16, 16384);  // the large shape
            bench_train(true, 256, 4, 16, 16384);
            bench_train(true, 256, 4, 16, 16384, true);
        }

        std::printf("\n== %s: copy %.0f GB/s ==\n", dname.c_str(), copy);
        std::printf("%-72s %10s %8s %7s  %s\n", "what", "ms", "GB/s", "% copy", "note");
        for (const Row& r : g_rows) {
            if (r.gbps > 0)
                std::printf("%-72s %10.3f %8.0f %6.0f%%  %s\n", r.what.c_str(), r.ms, r.gbps, r.pct_copy,
                            r.note.c_str());
            else
                std::printf("%-72s %10.4g %8s %7s  %s\n", r.what.c_str(), r.ms, "-", "-", r.note.c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mw_bench_cuda: %s\n", e.what());
        return 1;
    }
}
