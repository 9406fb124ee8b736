// prepare_model (re-layout of the weights), state allocation, and the run-time choice between
// the baseline and AVX2+FMA builds of the kernels.
#include "kernels/fast.h"

#include "kernels/fast_internal.h"
#include "kernels/fixed_dt.h"
#include "kernels/harmonic_decay.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <vector>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace mw::kernels {

namespace {
std::atomic<int> g_isa_override{-1};
}

void set_isa_for_testing(Isa isa) { g_isa_override.store(int(isa)); }
void reset_isa_for_testing() { g_isa_override.store(-1); }

Isa active_isa() {
    const int forced = g_isa_override.load(std::memory_order_relaxed);
    if (forced >= 0) return Isa(forced);
    static const Isa isa = [] {
        // MW_ISA=baseline|avx2 caps the choice (to compare builds on one machine).
        const char* env = std::getenv("MW_ISA");
        const std::string cap = env ? env : "";
        if (cap == "baseline") return Isa::baseline;
        if (cap != "avx2" && isa_supported(Isa::avx512)) return Isa::avx512;
        if (isa_supported(Isa::avx2)) return Isa::avx2;
        return Isa::baseline;
    }();
    return isa;
}

bool isa_supported(Isa isa) {
#if defined(MW_HAVE_X86)
    __builtin_cpu_init();
    // (F16C too: the AVX2 and AVX-512 builds widen the step's half-precision weights with it;
    // every AVX2 CPU has it, but it is a flag of its own)
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    switch (isa) {
    case Isa::baseline: return true;
    case Isa::avx2: return avx2;
    case Isa::avx512:
#if defined(MW_EMULATE_AVX512)
        return avx2;  // the AVX-512 build was compiled for AVX2 (a test build; fast_avx512.cpp)
#endif
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
    }
    return false;
#else
    return isa == Isa::baseline;
#endif
}

const char* to_string(Isa isa) {
    switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2+fma";
    case Isa::baseline: break;
    }
    return "baseline";
}

void PreparedModelDeleter::operator()(PreparedModel* p) const { delete p; }
void StepStateDeleter::operator()(StepState* s) const { delete s; }

const ModelView& view_of(const PreparedModel& p) { return p.view; }

float round_to_half(float v) {
    if (!(std::fabs(v) >= 0x1p-14f))  // zero, the halves' subnormal range (multiples of 2^-24), NaN
        return std::nearbyint(v * 0x1p24f) * 0x1p-24f;  // exact scalings; nearbyint: ties to even
    uint32_t f = std::bit_cast<uint32_t>(v);
    f += 0x0FFFu + ((f >> 13) & 1u);  // round the 23-bit mantissa to 10 bits, ties to even
    return std::bit_cast<float>(f & ~0x1FFFu);
}

bool half_bits(float v, uint16_t& bits) {
    const uint32_t f = std::bit_cast<uint32_t>(v);
    const uint32_t sign = (f >> 16) & 0x8000u, mantissa = f & 0x7FFFFFu;
    const int exponent = int((f >> 23) & 0xFFu) - 127;
    if ((f & 0x7FFFFFFFu) == 0) {  // ±0
        bits = uint16_t(sign);
        return true;
    }
    if (exponent >= -14 && exponent <= 15) {  // a normal half: the low 13 mantissa bits zero
        if (mantissa & 0x1FFFu) return false;
        bits = uint16_t(sign | uint32_t(exponent + 15) << 10 | mantissa >> 13);
        return true;
    }
    if (exponent >= -24 && exponent < -14) {  // a subnormal half: a multiple of 2^-24
        const uint32_t significand = 0x800000u | mantissa;
        const int shift = -(exponent + 1);  // significand · 2^(exponent-23) in units of 2^-24
        if (significand & ((1u << shift) - 1)) return false;
        bits = uint16_t(sign | significand >> shift);
        return true;
    }
    return false;  // out of the halves' range, a float subnormal, infinity or NaN
}

namespace {

// The halves of n prepared floats (a matrix in the kernels' layout, padding included), if every
// one is exact; false otherwise.
bool copy_if_half(const float* f, int64_t n, std::vector<uint16_t>& out) {
    out.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i)
        if (!half_bits(f[i], out[size_t(i)])) return false;
    return true;
}

// Whether a layer of this shape keeps its norm weight apart when its in_proj is in halves: not
// the AVX-512 register step's shapes (Dp <= 32, whose in_proj reads in_T folded), and Ep >= Dp
// (the scan puts x ⊙ norm in the rows of y).
bool unfold_norm(int Dp, int Ep) { return Dp > 32 && Ep >= Dp; }

bool all_halves(const float* w, int64_t n) {
    uint16_t bits;
    for (int64_t i = 0; i < n; ++i)
        if (!half_bits(w[i], bits)) return false;
    return true;
}

// PreparedLayer::in_h, xbc_h, out_h and PreparedModel::lm_h, where the prepared floats allow: in_T
// and lm_T where their norm weights are unfolded (they are exact then), xbc_T and out_T where
// the model's values are.
void add_half_copies(PreparedModel& P) {
    const int64_t D = P.D, Dp = P.Dp, E = P.E, Ep = P.Ep, BCp = P.BCp, Vp = P.Vp;
    struct Piece { const uint16_t** slot; std::vector<uint16_t> h; };
    std::vector<Piece> pieces;
    std::vector<uint16_t> h;
    for (PreparedLayer& L : P.layers) {
        if (L.in_unfolded && copy_if_half(L.in_T, D * 2 * Ep, h)) pieces.push_back({&L.in_h, std::move(h)});
        if (!L.lti && copy_if_half(L.xbc_T, E * BCp, h)) pieces.push_back({&L.xbc_h, std::move(h)});
        if (copy_if_half(L.out_T, E * Dp, h)) pieces.push_back({&L.out_h, std::move(h)});
    }
    if (P.lm_unfolded && copy_if_half(P.lm_T, D * Vp, h)) pieces.push_back({&P.lm_h, std::move(h)});
    if (pieces.empty()) return;
    // one block, every piece starting on a 64-byte line
    auto rounded = [](size_t n) { return (n + 31) & ~size_t(31); };
    size_t total = 0;
    for (const Piece& p : pieces) total += rounded(p.h.size());
    P.halves = AlignedHalves(total);
    uint16_t* cursor = P.halves.data();
    for (const Piece& p : pieces) {
        std::memcpy(cursor, p.h.data(), p.h.size() * sizeof(uint16_t));
        *p.slot = cursor;
        cursor += rounded(p.h.size());
    }
}
} // namespace

PreparedModelPtr prepare_model(const ModelView& m, PrepareOptions options) {
    PreparedModelPtr P(new PreparedModel{});
    const Dims& d = m.dims;
    if (d.d_conv > 64) throw std::invalid_argument("prepare_model: d_conv > 64 is not supported");
    P->view = m;
    P->D = d.d_model; P->Dp = pad8(d.d_model);
    P->E = d.d_inner; P->Ep = pad8(d.d_inner);
    P->N = d.d_state; P->K = d.d_conv; P->R = d.dt_rank;
    P->M = d.dt_rank + 2 * d.d_state; P->BCp = pad8(2 * d.d_state); P->Mp = pad8(P->BCp + d.dt_rank);
    P->V = m.head == HeadKind::tokens ? m.vocab : 0; P->Vp = pad8(P->V);
    P->I = m.head == HeadKind::continuous ? m.n_in : 0;
    P->n_layers = d.n_layers;
    P->eps = d.norm_eps;
    const int D = P->D, Dp = P->Dp, E = P->E, Ep = P->Ep, N = P->N, K = P->K, R = P->R,
              BCp = P->BCp, V = P->V, Vp = P->Vp, I = P->I;

    // Sizes of every prepared array, in the order they are carved out below.
    const int64_t per_layer = int64_t(D) * 2 * Ep + int64_t(K) * Ep + Ep + int64_t(R) * Ep + int64_t(E) * BCp +
                              int64_t(R) * Ep + Ep + int64_t(N) * Ep + Ep + Ep + int64_t(E) * Dp +
                              Ep + int64_t(N) * Ep +       // delta_c, abar_T
                              2 * int64_t(N) * Ep +        // bbar_T, C_T
                              Dp + Ep;                     // in_norm, dt_safe
    const int64_t heads = Dp + int64_t(V) * Dp + int64_t(D) * Vp + int64_t(I) * Dp + Dp + Dp;
    P->storage = AlignedFloats(size_t(per_layer * d.n_layers + heads));
    float* cursor = P->storage.data();
    auto take = [&](int64_t n) { float* p = cursor; cursor += n; return p; };
    const double log2e = 1.4426950408889634;

    for (int l = 0; l < d.n_layers; ++l) {
        const LayerView& w = m.layers[l];
        float* in_T = take(int64_t(D) * 2 * Ep);
        float* conv_T = take(int64_t(K) * Ep);
        float* conv_b = take(Ep);
        float* xr = take(int64_t(R) * Ep);
        float* xbc_T = take(int64_t(E) * BCp);
        float* dt_T = take(int64_t(R) * Ep);
        float* dt_b = take(Ep);
        float* A2_T = take(int64_t(N) * Ep);
        float* dt_max = take(Ep);
        float* Dskip = take(Ep);
        float* out_T = take(int64_t(E) * Dp);
        float* delta_c = take(Ep);
        float* abar_T = take(int64_t(N) * Ep);
        float* bbar_T = take(int64_t(N) * Ep);
        float* C_T = take(int64_t(N) * Ep);
        float* in_norm = take(Dp);
        float* dt_safe = take(Ep);
        for (int i = 0; i < D; ++i) in_norm[i] = w.norm_w[i];
        const bool lti = is_lti(w);  // no x_proj, no dt_proj.weight: B and C are the layer's own
        // the norm weight folded into in_T, except where in_proj is exactly in halves (and the
        // shape is not the register step's): then it stays apart, so that in_T is exact in halves
        const bool unfold = unfold_norm(P->Dp, P->Ep) && all_halves(w.in_proj_w, int64_t(2) * E * D);
        for (int o = 0; o < 2 * E; ++o)  // output o: u channel o (o < E) or z channel o - E
            for (int i = 0; i < D; ++i)
                in_T[int64_t(i) * 2 * Ep + (o < E ? o : Ep + o - E)] =
                    unfold ? w.in_proj_w[int64_t(o) * D + i] : w.in_proj_w[int64_t(o) * D + i] * w.norm_w[i];
        for (int e = 0; e < E; ++e) {
            for (int k = 0; k < K; ++k) conv_T[int64_t(k) * Ep + e] = w.conv_w[e * K + k];
            conv_b[e] = w.conv_b[e];
            for (int r = 0; r < R && !lti; ++r) xr[int64_t(r) * Ep + e] = w.x_proj_w[int64_t(r) * E + e];
            for (int o = 0; o < 2 * N && !lti; ++o) xbc_T[int64_t(e) * BCp + o] = w.x_proj_w[int64_t(R + o) * E + e];
            for (int r = 0; r < R && !lti; ++r) dt_T[int64_t(r) * Ep + e] = w.dt_proj_w[e * R + r];
            dt_b[e] = w.dt_proj_b[e];
            for (int n = 0; n < N; ++n)
                A2_T[int64_t(n) * Ep + e] = float(-std::exp(double(w.A_log[e * N + n])) * log2e);
            // Δ clamped only where every decay of the channel has vanished (the slowest state's
            // too: not where only the fastest has, which froze the slow states' decays once)
            dt_max[e] = decays_vanish_dt(w.A_log + int64_t(e) * N, N);
            dt_safe[e] = fastest_vanish_dt(w.A_log + int64_t(e) * N, N);
            Dskip[e] = w.D[e];
            for (int o = 0; o < D; ++o) out_T[int64_t(e) * Dp + o] = w.out_proj_w[int64_t(o) * E + e];
        }
        for (int e = E; e < Ep; ++e) dt_max[e] = dt_safe[e] = 3.0e38f;  // padding channels: A2 = 0
        // A fixed Δ's decays, and an LTI layer's Δ·B, in float64 (the reference's own values,
        // rounded once): the padding channels keep Δ = 0 and a decay of 1 on a state that stays
        // zero (their Δ·B and C are zero).
        const bool fixed = dt_fixed(w, d);
        for (int e = 0; fixed && e < Ep; ++e) {
            const double dt = e < E ? fixed_delta(w.dt_proj_b[e]) : 0.0;
            delta_c[e] = float(dt);
            for (int n = 0; n < N; ++n)
                abar_T[int64_t(n) * Ep + e] =
                    e < E ? float(std::exp(std::min(dt, double(dt_max[e])) * -std::exp(double(w.A_log[e * N + n]))))
                          : 1.0f;
            for (int n = 0; lti && e < E && n < N; ++n) {
                bbar_T[int64_t(n) * Ep + e] = float(dt * double(w.lti_B[e * N + n]));
                C_T[int64_t(n) * Ep + e] = w.lti_C[e * N + n];
            }
        }
        P->layers.push_back({in_T, conv_T, conv_b, xr, xbc_T, dt_T, dt_b, A2_T, dt_max, Dskip, out_T,
                             decays_harmonic(w.A_log, E, N), fixed, delta_c, abar_T, lti, bbar_T, C_T});
        P->layers.back().in_norm = in_norm;
        P->layers.back().in_unfolded = unfold;
        P->layers.back().dt_safe = dt_safe;
    }
    float* norm_f = take(Dp);
    float* embed = take(int64_t(V) * Dp);
    float* lm_T = take(int64_t(D) * Vp);
    float* stem_T = take(int64_t(I) * Dp);
    float* stem_b = take(Dp);
    float* head_w = take(Dp);
    for (int i = 0; i < D && m.norm_f_w; ++i) norm_f[i] = m.norm_f_w[i];  // a stack alone has none
    // norm_f folded into lm_T, or left apart as in the layers
    P->lm_unfolded = V > 0 && unfold_norm(Dp, Ep) && all_halves(m.lm_head_w, int64_t(V) * D);
    for (int v = 0; v < V; ++v)
        for (int i = 0; i < D; ++i) {
            embed[int64_t(v) * Dp + i] = m.embed_w[int64_t(v) * D + i];
            lm_T[int64_t(i) * Vp + v] =
                P->lm_unfolded ? m.lm_head_w[int64_t(v) * D + i] : m.lm_head_w[int64_t(v) * D + i] * m.norm_f_w[i];
        }
    if (m.head == HeadKind::continuous) {
        for (int i = 0; i < D; ++i) {
            for (int j = 0; j < I; ++j) stem_T[int64_t(j) * Dp + i] = m.stem_w[i * I + j];
            stem_b[i] = m.stem_b[i];
            head_w[i] = m.head_w[i];
        }
        P->head_b = m.head_b[0];
        P->skip = m.skip;
    }
    P->norm_f = norm_f; P->embed = embed; P->lm_T = lm_T;
    P->stem_T = stem_T; P->stem_b = stem_b; P->head_w = head_w;
    // MW_STEP_HALVES=0 in the environment: floats only, whatever the caller asked (to time a
    // model stored as F16 both ways with one build: mw_plugin_bench, generate)
    static const bool halves_allowed = [] {
        const char* env = std::getenv("MW_STEP_HALVES");
        return !(env && std::string(env) == "0");
    }();
    if (options.half_weights && halves_allowed) add_half_copies(*P);
    return P;
}

int64_t half_weight_count(const PreparedModel& P) {
    if (active_isa() == Isa::baseline) return 0;  // the baseline build reads the floats only
    int64_t n = 0;
    for (const PreparedLayer& w : P.layers)
        n += (w.in_h ? int64_t(P.D) * 2 * P.E : 0) + (w.xbc_h ? int64_t(P.E) * 2 * P.N : 0) +
             (w.out_h ? int64_t(P.E) * P.D : 0);
    return n + (P.lm_h ? int64_t(P.D) * P.V : 0);
}

StepStatePtr make_state(const PreparedModel& P, int streams, int max_scan_chunk) {
    if (streams < 1) throw std::invalid_argument("make_state: streams must be >= 1");
    if (max_scan_chunk < 1) throw std::invalid_argument("make_state: chunk must be >= 1");
    StepStatePtr S(new StepState{});
    const int T = max_scan_chunk, threads = 2;
    S->streams = streams;
    S->max_chunk = T;
    S->max_threads = threads;
    S->per_stream = P.stream_state_floats();
    S->state = AlignedFloats(size_t(S->per_stream * streams));
    S->hidden = AlignedFloats(size_t(streams) * P.Dp);
    // (the register step takes an effect's streams two at a time: a scratch row each)
    S->step_tmp = AlignedFloats(size_t(std::max<int64_t>(2 * P.step_tmp_floats(), threads * P.scan_tmp_floats())));
    S->x = AlignedFloats(size_t(T) * P.Dp);
    S->uz = AlignedFloats(size_t(T) * 2 * P.Ep);
    S->u = AlignedFloats(size_t(T) * P.Ep);
    S->dbc = AlignedFloats(size_t(T) * P.Mp);
    S->delta = AlignedFloats(size_t(T) * P.Ep);
    S->y = AlignedFloats(size_t(T) * P.Ep);
    return S;
}

void reset_state(StepState& s) { std::memset(s.state.data(), 0, s.state.size() * sizeof(float)); }
void reset_stream(StepState& s, int stream) {
    std::memset(stream_state(s, stream), 0, size_t(s.per_stream) * sizeof(float));
}
int stream_count(const StepState& s) { return s.streams; }
float* stream_state(StepState& s, int stream) { return s.state.data() + stream * s.per_stream; }
int64_t stream_state_floats(const StepState& s) { return s.per_stream; }

void step_tokens(const PreparedModel& p, StepState& s, const int32_t* tokens, float* logits) {
    switch (active_isa()) {
    case Isa::avx512: return avx512::step_tokens(p, s, tokens, logits);
    case Isa::avx2: return avx2::step_tokens(p, s, tokens, logits);
    case Isa::baseline: return baseline::step_tokens(p, s, tokens, logits);
    }
}

void step_continuous(const PreparedModel& p, StepState& s, const float* x, float* y) {
    switch (active_isa()) {
    case Isa::avx512: return avx512::step_continuous(p, s, x, y);
    case Isa::avx2: return avx2::step_continuous(p, s, x, y);
    case Isa::baseline: return baseline::step_continuous(p, s, x, y);
    }
}

void step_hidden(const PreparedModel& p, StepState& s, const float* x, float* y) {
    if (p.view.head == HeadKind::continuous) throw std::invalid_argument("step_hidden: an effect takes its stem's inputs");
    switch (active_isa()) {
    case Isa::avx512: return avx512::step_hidden(p, s, x, y);
    case Isa::avx2: return avx2::step_hidden(p, s, x, y);
    case Isa::baseline: return baseline::step_hidden(p, s, x, y);
    }
}

void scan_hidden(const PreparedModel& p, StepState& s, int stream, const float* x, int64_t L,
                 float* y, ThreadPool* pool) {
    if (p.view.head == HeadKind::continuous) throw std::invalid_argument("scan_hidden: an effect takes its stem's inputs");
    switch (active_isa()) {
    case Isa::avx512: return avx512::scan(p, s, stream, nullptr, x, L, y, pool);
    case Isa::avx2: return avx2::scan(p, s, stream, nullptr, x, L, y, pool);
    case Isa::baseline: return baseline::scan(p, s, stream, nullptr, x, L, y, pool);
    }
}

void scan_tokens(const PreparedModel& p, StepState& s, int stream, const int32_t* tokens,
                 int64_t L, float* logits, ThreadPool* pool) {
    switch (active_isa()) {
    case Isa::avx512: return avx512::scan(p, s, stream, tokens, nullptr, L, logits, pool);
    case Isa::avx2: return avx2::scan(p, s, stream, tokens, nullptr, L, logits, pool);
    case Isa::baseline: return baseline::scan(p, s, stream, tokens, nullptr, L, logits, pool);
    }
}

void scan_continuous(const PreparedModel& p, StepState& s, int stream, const float* x,
                     int64_t L, float* y, ThreadPool* pool) {
    switch (active_isa()) {
    case Isa::avx512: return avx512::scan(p, s, stream, nullptr, x, L, y, pool);
    case Isa::avx2: return avx2::scan(p, s, stream, nullptr, x, L, y, pool);
    case Isa::baseline: return baseline::scan(p, s, stream, nullptr, x, L, y, pool);
    }
}

void add_matvec_T(const float* WT, const float* x, int K, int M, float* y) {
    switch (active_isa()) {
    case Isa::avx512: return avx512::add_matvec_T(WT, x, K, M, y);
    case Isa::avx2: return avx2::add_matvec_T(WT, x, K, M, y);
    case Isa::baseline: return baseline::add_matvec_T(WT, x, K, M, y);
    }
}

namespace {
template <class F>
double rate(F&& run, double work_per_iter, double seconds) {
    int64_t iters = 1 << 10;
    for (;;) {  // grow until one timed run lasts long enough
        const auto t0 = std::chrono::steady_clock::now();
        volatile float sink = run(iters);
        (void)sink;
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (dt >= seconds || iters > (int64_t(1) << 40)) return work_per_iter * double(iters) / dt;
        iters *= dt > 0.001 ? std::max<int64_t>(2, int64_t(seconds / dt)) : 16;
    }
}
} // namespace

PeakRates measure_peaks(double seconds) {
    const Isa isa = active_isa();
    auto pick = [isa](auto b, auto a2, auto a512) { return isa == Isa::avx512 ? a512 : isa == Isa::avx2 ? a2 : b; };
    const auto fma = pick(baseline::probe_fma, avx2::probe_fma, avx512::probe_fma);
    const auto exp = pick(baseline::probe_exp, avx2::probe_exp, avx512::probe_exp);
    const auto l1 = pick(baseline::probe_l1, avx2::probe_l1, avx512::probe_l1);
    const double lanes = pick(baseline::probe_lanes, avx2::probe_lanes, avx512::probe_lanes)();
    PeakRates r;
    r.flops_per_s = rate([&](int64_t n) { return fma(n); }, 16.0 * lanes, seconds);
    r.exps_per_s = rate([&](int64_t n) { return exp(n); }, 8.0 * lanes, seconds);
    AlignedFloats buf(4096);  // 16 KiB: inside L1
    for (size_t i = 0; i < buf.size(); ++i) buf.data()[i] = float(i % 7);
    r.l1_bytes_per_s = rate([&](int64_t n) { return l1(n, buf.data()); }, 2.0 * 4096 * sizeof(float), seconds);
    const long l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    r.l1_bytes = l1d > 0 ? double(l1d) : 32768.0;
    r.l2_bytes = l2 > 0 ? double(l2) : 8 * r.l1_bytes;
    for (double frac : {0.25, 0.5}) {
        if (frac * r.l2_bytes <= 2 * r.l1_bytes) continue;  // an L2 this small would not be measured
        r.l2_read_bytes_per_s = std::max(r.l2_read_bytes_per_s, measure_read_rate(frac * r.l2_bytes, seconds));
    }
    return r;
}

double measure_read_rate(double bytes, double seconds) {
    const Isa isa = active_isa();
    const auto read = isa == Isa::avx512 ? avx512::probe_read : isa == Isa::avx2 ? avx2::probe_read : baseline::probe_read;
    // whole rounds of the probe's eight 16-float vectors, whatever the build
    const int64_t n = std::max<int64_t>(128, (int64_t(bytes / sizeof(float)) + 127) / 128 * 128);
    AlignedFloats buf{size_t(n)};
    for (int64_t i = 0; i < n; ++i) buf.data()[i] = float(i % 5);
    return rate([&](int64_t it) { return read(it, buf.data(), n); }, double(n) * sizeof(float), seconds);
}

Floors floors(const WorkPerSample& w, const PeakRates& peaks, double stream_read_bytes_per_s) {
    Floors f;
    f.compute_ns = 1e9 * (2 * fma_slots(w) / peaks.flops_per_s + w.exps / peaks.exps_per_s);
    const double bytes = w.weight_bytes + w.state_bytes;
    f.step_bytes_ns = 1e9 * bytes / peaks.l1_bytes_per_s;  // every byte at L1's rate, at least
    if (bytes > peaks.l1_bytes && peaks.l2_read_bytes_per_s > 0)
        f.step_bytes_ns = std::max(f.step_bytes_ns, 1e9 * (bytes - peaks.l1_bytes) / peaks.l2_read_bytes_per_s);
    f.step_bytes_ideal_ns = f.step_bytes_ns;
    if (bytes > peaks.l2_bytes && peaks.l2_bytes > 0 && stream_read_bytes_per_s > 0)
        f.step_bytes_ns = std::max(f.step_bytes_ns, 1e9 * (bytes - peaks.l1_bytes) / stream_read_bytes_per_s);
    return f;
}

WorkPerSample work_per_sample(const ModelView& m) {
    const Dims& d = m.dims;
    const double D = d.d_model, E = d.d_inner, N = d.d_state, K = d.d_conv, R = d.dt_rank;
    WorkPerSample w;
    // per layer: RMSNorm's sum of squares, in_proj, conv, x_proj, dt_proj, the state's FMA and
    // the output sum per state, D·u, out_proj
    const double layer_macs = D + D * 2 * E + E * K + E * (R + 2 * N) + E * R + E * N * 2 + E + E * D;
    const double head_macs = m.head == HeadKind::tokens ? D * m.vocab : D * (m.n_in + 1);
    w.macs = layer_macs * d.n_layers + head_macs;
    w.exps = 0;
    // weights of a layer without its projections to r, B, C and Δ (x_proj, dt_proj.weight)
    const double layer_weights = D + 2 * E * D + E * K + E + E + E * N + E + D * E;
    const double proj_weights = (R + 2 * N) * E + E * R;
    double weights = 0;
    for (int l = 0; l < d.n_layers; ++l) {
        // exp(Δ·A) per state, or per channel with harmonic decays (then N-1 products each,
        // counted as flops); SiLU of conv and gate; softplus
        // A fixed Δ: no exp(Δ·A) and no softplus, and r and Δ's products are skipped
        // An LTI layer: that, and no x_proj product at all (its B and C are per channel)
        const bool harmonic = decays_harmonic(m.layers[l].A_log, d.d_inner, d.d_state);
        const bool lti = is_lti(m.layers[l]);
        weights += layer_weights + (lti ? 2 * E * N : proj_weights);
        // Lone multiplies: the state's input Δu·B[n] (an FMA takes one of the update's two
        // products, a·s and Δu·B, never both), Δ·u (an LTI layer folds Δ into B), the gate,
        // RMSNorm's scale.
        w.muls += E * N + (lti ? 0 : E) + E + D;
        if (dt_fixed(m.layers[l], d)) {
            w.exps += 2 * E;
            w.macs -= lti ? proj_weights : 2 * E * R;
            continue;
        }
        w.exps += (harmonic ? E : E * N) + 3 * E;
        if (harmonic) w.muls += E * (N - 1);
    }
    w.flops = 2 * w.macs + w.muls;
    const double head_weights = m.head == HeadKind::tokens ? 2.0 * D * m.vocab : D * (m.n_in + 2);
    w.weight_bytes = 4.0 * (weights + D + head_weights);
    w.state_bytes = 2 * 4.0 * E * ((K - 1) + N) * d.n_layers;
    return w;
}

} // namespace mw::kernels
