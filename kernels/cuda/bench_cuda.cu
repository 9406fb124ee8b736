// mw_bench_cuda: the CUDA path against the physical limit, measured side by side in one run
// (DESIGN.md "How performance is measured").
//   1. device-to-device copy bandwidth (bytes read + written per second): the ceiling;
//   2. the chunked selective scan alone: achieved GB/s counting its minimal bytes (read Δ, u,
//      B, C, z; write y) and the ratio to the copy; beside it the special-function-unit floor
//      (two exp per state per step: pass 1 and pass 3);
//   3. the whole-model forward of two effects over an hour of 48 kHz audio, in x real time.
// Usage: mw_bench_cuda [--seconds S (part 3's audio, default 3600)] [--reps R (scan repeats)]
//                      [--scan B E N L (only this scan)] [--model D LAYERS (only this model)]
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/mamba_cuda.h"
#include "kernels/cuda/scan.cuh"
#include "model/model.h"

#include <algorithm>
#include <chrono>
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

void bench_scan(int B, int E, int N, int64_t L, int variant, double copy_gbps, int sms, double clock_hz) {
    const int64_t rows = int64_t(B) * L;
    const int T = auto_scan_chunk(B, L, E, N, sms, variant);
    const ScanWorkspaceSize ws = scan_workspace_size(B, L, E, N, T);
    const int64_t floats = 4 * rows * E + rows * 2 * N + ws.total() + int64_t(E) * (N + 2) + int64_t(B) * N * E;
    size_t free_b = 0, total_b = 0;
    MW_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const std::string name = "scan v" + std::to_string(variant) + " B" + std::to_string(B) + " E" +
                             std::to_string(E) + " N" + std::to_string(N) + " L" + pow2_name(L);
    if (double(floats) * 4 > 0.92 * double(free_b)) {
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
    ScanProblem q;
    q.B = B; q.L = L; q.E = E; q.N = N;
    q.dt = dt; q.dt_stride = E;
    q.u = u;   q.u_stride = E;
    q.z = z;   q.z_stride = E;
    q.Bm = bc; q.Cm = bc + N; q.bc_stride = 2 * N;
    q.y = y;   q.y_stride = E;
    q.A2 = A2; q.D = Dv; q.dt_bias = bias; q.state = state;
    q.variant = variant;
    const int reps = g_reps > 0 ? g_reps : rows * E > (int64_t(1) << 32) ? 5 : 15;
    const double ms = median_ms([&] { selective_scan(q, T, work, 0); }, g_reps == 1 ? 0 : 2, reps);
    // every output written and finite (a sample from the start and the end)
    std::vector<float> probe(4096);
    MW_CUDA_CHECK(cudaMemcpy(probe.data(), y, 2048 * 4, cudaMemcpyDeviceToHost));
    MW_CUDA_CHECK(cudaMemcpy(probe.data() + 2048, y + rows * E - 2048, 2048 * 4, cudaMemcpyDeviceToHost));
    bool finite = true;
    for (float v : probe) finite = finite && std::isfinite(v);

    const double bytes = double(rows) * (4.0 * E + 2.0 * N) * 4;  // Δ, u, z, y; B, C
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    const double exps = 2.0 * double(rows) * E * N;
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
    Model m(c);
    m.init_random(77, 0.3f);
    const int I = c.n_in();  // 2: the sample and the drive control
    const int64_t L = int64_t(x.size()) / I;
    const double seconds = double(L) / rate;
    const int64_t seg = std::min<int64_t>(L, int64_t(1) << 22);
    const std::string name = "model effect D" + std::to_string(d_model) + "x" + std::to_string(n_layers) +
                             " E" + std::to_string(c.d_inner) + ", " +
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

} // namespace

int main(int argc, char** argv) {
    try {
        double seconds = 3600.0;
        std::vector<long long> only_scan, only_model;
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto next = [&] {
                if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
                return std::atoll(argv[++i]);
            };
            if (a == "--seconds") seconds = std::atof(argv[++i < argc ? i : argc - 1]);
            else if (a == "--reps") g_reps = int(next());
            else if (a == "--scan") for (int k = 0; k < 4; ++k) only_scan.push_back(next());
            else if (a == "--model") for (int k = 0; k < 2; ++k) only_model.push_back(next());
            else throw std::invalid_argument("unknown argument " + a +
                                             "; usage: mw_bench_cuda [--seconds S] [--reps R] "
                                             "[--scan B E N L] [--model D LAYERS]");
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
        const bool all = only_scan.empty() && only_model.empty();

        const double copy = copy_bandwidth(sms);
        struct ScanCase { int B, E, N; int64_t L; };
        std::vector<ScanCase> scans;
        if (all)
            scans = {{1, 128, 16, int64_t(1) << 20}, {1, 256, 16, int64_t(1) << 20}, {16, 1536, 16, 4096},
                     {1, 32, 16, int64_t(1) << 22}, {1, 128, 16, int64_t(1) << 24}, {1, 256, 16, int64_t(1) << 24}};
        else if (!only_scan.empty())
            scans = {{int(only_scan[0]), int(only_scan[1]), int(only_scan[2]), int64_t(only_scan[3])}};
        for (const ScanCase& c : scans)
            for (int variant : {2, 1}) bench_scan(c.B, c.E, c.N, c.L, variant, copy, sms, clock_hz);

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

        std::printf("\n== %s: copy %.0f GB/s ==\n", dname.c_str(), copy);
        std::printf("%-46s %10s %8s %7s  %s\n", "what", "ms", "GB/s", "% copy", "note");
        for (const Row& r : g_rows) {
            if (r.gbps > 0)
                std::printf("%-46s %10.3f %8.0f %6.0f%%  %s\n", r.what.c_str(), r.ms, r.gbps, r.pct_copy,
                            r.note.c_str());
            else
                std::printf("%-46s %10.1f %8s %7s  %s\n", r.what.c_str(), r.ms, "-", "-", r.note.c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mw_bench_cuda: %s\n", e.what());
        return 1;
    }
}
