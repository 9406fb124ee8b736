// Host simulation of scan_sequences (kernels/cuda/scan.cu): 32 threads per warp in step at every
// __syncwarp / shuffle, cp.async as a plain copy. Checks the patched kernel (every experimental
// Opt of scripts/scan_ab/scan_v3_fewer_instructions.patch) against a float64 scan and against
// the old kernel. Built and run by run_sim.sh, which cuts both kernels out of their trees
// (extract.py) into base.inc and new.inc.
#include <algorithm>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__
#define __restrict__ __restrict
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline float2 make_float2(float a, float b) { return {a, b}; }
struct U3 { unsigned x = 0, y = 0, z = 0; };
thread_local U3 threadIdx, blockIdx;
static std::barrier<>* g_bar;
inline void __syncwarp(unsigned = 0xffffffffu) { g_bar->arrive_and_wait(); }
static float g_shfl[32];
inline float __shfl_xor_sync(unsigned, float v, int mask) {
    const int l = int(threadIdx.x) & 31;
    g_shfl[l] = v;
    __syncwarp();
    const float r = g_shfl[l ^ mask];
    __syncwarp();
    return r;
}
inline float ex2(float x) { return std::exp2(x); }
constexpr float kLog2e = 1.4426950408889634f;
inline float __fdividef(float a, float b) { return a / b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
using std::min;
using std::max;
inline float to_f(float v) { return v; }
inline float4 load4(const float* p) { return {p[0], p[1], p[2], p[3]}; }
inline void cp_async4(float* smem, const float* gmem) { *smem = *gmem; }
inline void cp_async16(void* smem, const void* gmem) { std::memcpy(smem, gmem, 16); }
inline void cp_async_commit() {}
template <int Pending> inline void cp_async_wait() {}

namespace nbase {
float4 smem_f4[1 << 15];
#include "base.inc"
}
namespace nnew {
float4 smem_f4[1 << 15];
#include "new.inc"
}

struct Problem {
    int B, E, N, T;
    int64_t L;
    bool pad;  // rows wider than E (strides not multiples of 4: no 16-byte copies)
    std::vector<float> dt, u, z, bc, A2, D, bias, state0;
    int64_t xs, bcs;  // row strides
};

Problem make(int B, int E, int N, int64_t L, int T, bool pad, unsigned seed) {
    Problem q{B, E, N, T, L, pad};
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> U(-1, 1);
    q.xs = pad ? E + 3 : E;
    q.bcs = pad ? 2 * N + 1 : 2 * N;
    const int64_t rows = int64_t(B) * L;
    q.dt.resize(rows * q.xs); q.u.resize(rows * q.xs); q.z.resize(rows * q.xs); q.bc.resize(rows * q.bcs);
    for (auto& v : q.dt) v = -4.0f + 3.5f * U(g);  // softplus over about 0.0005..1.5; some large
    for (int64_t i = 0; i < rows * q.xs; i += 97) q.dt[i] = 12.0f * U(g);
    for (auto& v : q.u) v = U(g);
    for (auto& v : q.z) v = 3.0f * U(g);
    for (auto& v : q.bc) v = U(g);
    q.A2.resize(size_t(E) * N); q.D.resize(E); q.bias.resize(E); q.state0.resize(size_t(B) * N * E);
    for (int e = 0; e < E; ++e) {
        for (int n = 0; n < N; ++n) q.A2[size_t(e) * N + n] = -float(n + 1) * (0.5f + 0.5f * (U(g) + 1)) * kLog2e;
        q.D[e] = U(g);
        q.bias[e] = 0.5f * U(g);
    }
    for (auto& v : q.state0) v = U(g);
    return q;
}

struct Result { std::vector<float> y, state, chunk; };

// float64 reference
Result reference(const Problem& q) {
    Result r;
    const int64_t nc = (q.L + q.T - 1) / q.T;
    r.y.assign(size_t(q.B * q.L * q.xs), 0.0f);
    r.state.assign(q.state0.begin(), q.state0.end());
    r.chunk.assign(size_t(q.B * nc * q.N * q.E), 0.0f);
    for (int b = 0; b < q.B; ++b)
        for (int e = 0; e < q.E; ++e) {
            std::vector<double> s(q.N);
            for (int n = 0; n < q.N; ++n) s[n] = q.state0[(size_t(b) * q.N + n) * q.E + e];
            for (int64_t t = 0; t < q.L; ++t) {
                const int64_t row = b * q.L + t;
                if (t % q.T == 0)
                    for (int n = 0; n < q.N; ++n) r.chunk[((b * nc + t / q.T) * q.N + n) * q.E + e] = float(s[n]);
                const double x = q.dt[row * q.xs + e] + double(q.bias[e]);
                const double d = x > 30 ? x : std::log1p(std::exp(x));
                const double uu = q.u[row * q.xs + e], zz = q.z[row * q.xs + e];
                double acc = 0;
                for (int n = 0; n < q.N; ++n) {
                    s[n] = std::exp2(d * q.A2[size_t(e) * q.N + n]) * s[n] + d * uu * q.bc[row * q.bcs + n];
                    acc += s[n] * q.bc[row * q.bcs + q.N + n];
                }
                r.y[row * q.xs + e] = float((acc + q.D[e] * uu) * zz / (1 + std::exp(-zz)));
            }
            for (int n = 0; n < q.N; ++n) r.state[(size_t(b) * q.N + n) * q.E + e] = float(s[n]);
        }
    return r;
}

template <class Params>
Params params(const Problem& q, Result& r) {
    Params p{};
    p.B = q.B; p.E = q.E; p.N = q.N; p.L = q.L; p.T = q.T;
    p.nc = int((q.L + q.T - 1) / q.T);
    p.dt = q.dt.data(); p.dt_stride = q.xs;
    p.u = q.u.data(); p.u_stride = q.xs;
    p.z = q.z.data(); p.z_stride = q.xs;
    p.Bm = q.bc.data(); p.Cm = q.bc.data() + q.N; p.bc_stride = q.bcs;
    r.y.assign(size_t(q.B * q.L * q.xs), 0.0f);
    r.state.assign(q.state0.begin(), q.state0.end());
    r.chunk.assign(size_t(q.B * p.nc * q.N * q.E), -7.0f);
    p.y = r.y.data(); p.y_stride = q.xs;
    p.A2 = q.A2.data(); p.D = q.D.data(); p.dt_bias = q.bias.data();
    p.state = r.state.data();
    p.chunk_state = r.chunk.data();
    p.vec = q.E % 4 == 0 && q.N % 4 == 0 && !q.pad;
    p.seg_len = q.L; p.nseg = 1;
    return p;
}

template <class Params, class Fn>
void run_warps(const Params& p, int CW, Fn kernel) {
    const int slices = (p.E + CW - 1) / CW;
    const int64_t warps = int64_t(p.B) * slices;
    std::barrier<> bar(32);
    g_bar = &bar;
    for (int64_t w = 0; w < warps; ++w) {
        std::vector<std::thread> th;
        for (int l = 0; l < 32; ++l)
            th.emplace_back([&, l] {
                blockIdx.x = unsigned(w / 4);
                threadIdx.x = unsigned((w % 4) * 32 + l);
                kernel(p);
            });
        for (auto& t : th) t.join();
    }
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) { num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]); den += double(b[i]) * b[i]; }
    return std::sqrt(num / std::max(den, 1e-300));
}
bool same(const std::vector<float>& a, const std::vector<float>& b) { return a == b; }

int failures = 0;
template <int NS, int K, int Opt>
void check(const Problem& q, const Result& ref, const Result& old, const char* name) {
    Result r;
    auto p = params<nnew::ScanParams<float>>(q, r);
    run_warps(p, 32 / K, [](const nnew::ScanParams<float>& pp) { nnew::scan_sequences<NS, K, float, Opt>(pp); });
    const double ey = rel(r.y, ref.y), es = rel(r.state, ref.state), ec = rel(r.chunk, ref.chunk);
    const double oy = rel(r.y, old.y);
    const bool bit = same(r.y, old.y) && same(r.state, old.state) && same(r.chunk, old.chunk);
    const bool ok = ey < 1e-5 && es < 1e-5 && ec < 1e-5 && (Opt != 0 || bit);
    if (!ok) ++failures;
    std::printf("%-4s %-34s NS%-2d K%d opt%-3d  y %.2e  state %.2e  chunks %.2e  vs old y %.2e%s\n", ok ? "ok" : "FAIL",
                name, NS, K, Opt, ey, es, ec, oy, bit ? " (bit for bit)" : "");
}

template <int NS, int K>
void case_(int B, int E, int N, int64_t L, int T, bool pad, unsigned seed, bool all_opts) {
    const Problem q = make(B, E, N, L, T, pad, seed);
    const Result ref = reference(q);
    Result old;
    auto p = params<nbase::ScanParams<float>>(q, old);
    run_warps(p, 32 / K, [](const nbase::ScanParams<float>& pp) { nbase::scan_sequences<NS, K, float>(pp); });
    char name[128];
    std::snprintf(name, sizeof name, "B%d E%d N%d L%lld T%d%s", B, E, N, (long long)L, T, pad ? " padded" : "");
    std::printf("old  %-34s NS%-2d K%d          y %.2e  state %.2e  chunks %.2e\n", name, NS, K, rel(old.y, ref.y),
                rel(old.state, ref.state), rel(old.chunk, ref.chunk));
    check<NS, K, 0>(q, ref, old, name);
    check<NS, K, 31>(q, ref, old, name);
    if (all_opts) {
        check<NS, K, 1>(q, ref, old, name);
        check<NS, K, 19>(q, ref, old, name);
        check<NS, K, 23>(q, ref, old, name);
        check<NS, K, 27>(q, ref, old, name);
        check<NS, K, 51>(q, ref, old, name);
        check<NS, K, 63>(q, ref, old, name);
        check<NS, K, 95>(q, ref, old, name);
    }
}

// Segments (variant 4's first kernel): each segment's end state and ΣΔ, old against new.
template <int NS, int K, int Opt>
void check_segments(int B, int E, int N, int64_t L, int64_t seg_len, unsigned seed) {
    const Problem q = make(B, E, N, L, 16, false, seed);
    const int nseg = int((L + seg_len - 1) / seg_len);
    std::vector<float> so(size_t(B) * nseg * N * E), dto(size_t(B) * nseg * E), sn = so, dtn = dto;
    Result ro, rn;
    auto po = params<nbase::ScanParams<float>>(q, ro);
    po.seg_len = seg_len; po.nseg = nseg; po.seg_state = so.data(); po.seg_dt = dto.data();
    run_warps(po, 32 / K, [](const nbase::ScanParams<float>& pp) { nbase::scan_sequences<NS, K, float>(pp); });
    auto pn = params<nnew::ScanParams<float>>(q, rn);
    pn.seg_len = seg_len; pn.nseg = nseg; pn.seg_state = sn.data(); pn.seg_dt = dtn.data();
    run_warps(pn, 32 / K, [](const nnew::ScanParams<float>& pp) { nnew::scan_sequences<NS, K, float, Opt>(pp); });
    const double a = rel(sn, so), b = rel(dtn, dto), c = rel(rn.y, ro.y);
    const bool ok = a < 1e-5 && b < 1e-5 && c < 1e-5 && (Opt != 0 || (sn == so && dtn == dto && rn.y == ro.y));
    if (!ok) ++failures;
    std::printf("%-4s segments B%d E%d N%d L%lld of %lld  NS%d K%d opt%-3d  seg_state %.2e  seg_dt %.2e  y %.2e\n",
                ok ? "ok" : "FAIL", B, E, N, (long long)L, (long long)seg_len, NS, K, Opt, a, b, c);
}

int main() {
    check_segments<8, 2, 0>(2, 32, 16, 100, 37, 21);
    check_segments<8, 2, 31>(2, 32, 16, 100, 37, 21);
    check_segments<8, 2, 95>(2, 40, 16, 100, 48, 22);
    check_segments<4, 4, 31>(1, 24, 16, 90, 32, 23);
    case_<8, 2>(2, 32, 16, 100, 16, false, 1, true);   // whole copies, a tail tile, chunk starts
    case_<8, 2>(2, 40, 16, 77, 8, false, 2, true);     // a warp with channels past E
    case_<8, 2>(1, 20, 13, 50, 16, true, 3, true);     // states past N, element copies
    case_<8, 2>(3, 16, 16, 32, 5, false, 4, false);    // whole tiles only, chunk starts inside tiles
    case_<4, 4>(2, 24, 16, 70, 16, false, 5, false);
    case_<4, 4>(1, 8, 16, 33, 16, true, 6, false);
    case_<16, 1>(2, 36, 16, 40, 16, false, 7, false);
    case_<4, 2>(2, 16, 8, 45, 16, false, 8, false);
    case_<4, 1>(1, 40, 4, 45, 16, false, 9, false);
    case_<16, 2>(1, 16, 32, 37, 16, false, 10, false);
    case_<8, 4>(1, 8, 32, 37, 16, false, 11, false);
    std::printf("%d failed\n", failures);
    return failures != 0;
}
