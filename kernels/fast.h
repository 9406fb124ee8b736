// The fast CPU paths: the recurrent step (one sample for each of S streams) and the chunked
// scan (a long sequence, chunk by chunk, state carried across chunks, both cores).
//
// prepare_model() turns a ModelView into the layout the kernels like (transposed projections,
// A = -exp(A_log) pre-scaled); it allocates. After that, step() allocates nothing, takes no
// lock and makes no system call: it is what the audio thread runs.
#pragma once

#include "kernels/model_view.h"

#include <cstdint>
#include <memory>

namespace mw::kernels {

class ThreadPool;

// Which instruction set the fast kernels run with (picked once at start-up from CPUID;
// MW_ISA=baseline or MW_ISA=avx2 in the environment caps it, to compare the builds).
enum class Isa { baseline, avx2, avx512 };
Isa active_isa();
const char* to_string(Isa isa);
// Whether this CPU can run the build for `isa` (tests run every one it can).
bool isa_supported(Isa isa);
// Tests run every build this CPU supports; never called by the product.
void set_isa_for_testing(Isa isa);
// Back to the automatic choice.
void reset_isa_for_testing();

// Read-only weights, re-laid-out for the kernels; shared by every stream and thread.
struct PreparedModel;
struct PreparedModelDeleter { void operator()(PreparedModel* p) const; };
using PreparedModelPtr = std::unique_ptr<PreparedModel, PreparedModelDeleter>;
// half_weights: where every weight of one of the step's large products (in_proj, x_proj's B
// and C rows, out_proj, lm_head) is exactly an IEEE half, as in a model stored as F16, the
// single-sample step reads a half-precision copy of it instead of the floats. Widened, the
// halves are the floats bit for bit, so every path still gives the same floats; the step moves
// half the bytes for those matrices (the d_model 64 models' weights stop streaming from L3).
// Off: the step reads floats only (to measure one against the other); MW_STEP_HALVES=0 in the
// environment turns it off for every model the process prepares.
struct PrepareOptions {
    bool half_weights = true;
};
PreparedModelPtr prepare_model(const ModelView& m, PrepareOptions options = {});
const ModelView& view_of(const PreparedModel& p);
// IEEE half precision (binary16) for weights: v rounded to the nearest half, ties to even, as a
// float (what storing v as F16 and reading it back gives; |v| under 65504), and whether v is
// exactly a half, with its bits. Written out, not _Float16, which older compilers lack on x86.
float round_to_half(float v);
bool half_bits(float v, uint16_t& bits);
// How many of the weights the step reads as halves (0 unless the model has F16-exact matrices
// and the build can widen halves in vectors: the AVX2 and AVX-512 builds).
int64_t half_weight_count(const PreparedModel& p);

// Recurrent state of S streams plus the scratch the step needs: all allocated by
// make_state(), zeroed by reset_state(), owned by the caller.
struct StepState;
struct StepStateDeleter { void operator()(StepState* s) const; };
using StepStatePtr = std::unique_ptr<StepState, StepStateDeleter>;
StepStatePtr make_state(const PreparedModel& p, int streams, int max_scan_chunk = 1024);
void reset_state(StepState& s);
void reset_stream(StepState& s, int stream);
int stream_count(const StepState& s);
// Raw state of one stream: conv windows [n_layers][K-1][E] then SSM [n_layers][N][E].
float* stream_state(StepState& s, int stream);
int64_t stream_state_floats(const StepState& s);

// --- step: one sample for each of the S streams -------------------------------------------
// Generator: tokens [S] -> logits [S][V].
void step_tokens(const PreparedModel& p, StepState& s, const int32_t* tokens, float* logits);
// Effect: x [S][I] -> y [S].
void step_continuous(const PreparedModel& p, StepState& s, const float* x, float* y);

// Rows of the residual stream in, x [S][D]: a stack of layers alone (HeadKind::hidden) gives
// the stream after its last layer, y [S][D] (no norm_f; x and y may be the same buffer); a
// generator (HeadKind::tokens) its logits [S][V], its embedding unused. Pooled models join
// such stacks (model/pooled.h).
void step_hidden(const PreparedModel& p, StepState& s, const float* x, float* y);

// --- scan: L samples of one stream, chunked, state carried in and out ----------------------
// pool may be null (one thread). The state of `stream` is read at the start and left at
// the state after the last sample, so scan and step can take turns on one stream.
void scan_tokens(const PreparedModel& p, StepState& s, int stream, const int32_t* tokens,
                 int64_t L, float* logits, ThreadPool* pool);
void scan_continuous(const PreparedModel& p, StepState& s, int stream, const float* x,
                     int64_t L, float* y, ThreadPool* pool);
// Rows in, x [L][D], as step_hidden: y [L][D] (may be x) or logits [L][V].
void scan_hidden(const PreparedModel& p, StepState& s, int stream, const float* x, int64_t L,
                 float* y, ThreadPool* pool);

// y[0..M) += Σ_k x[k]·WT[k][0..M) (WT row-major [K][M]), k ascending for every output, with the
// active ISA's vectors: the pools of model/'s pooled models (their step and their forward over a
// sequence call it alike, so the two give the same floats). Allocation-free.
void add_matvec_T(const float* WT, const float* x, int K, int M, float* y);

// This CPU's peak rates on one core, measured now with the active ISA's own code:
// vector FMAs (no memory traffic), the SSM's exponential, and L1-resident copy bandwidth.
struct PeakRates {
    double flops_per_s = 0;
    double exps_per_s = 0;
    double l1_bytes_per_s = 0;  // read + write
    // Loads streaming from L2: the best of buffers of a quarter and half the L2 (never in L1).
    double l2_read_bytes_per_s = 0;
    double l1_bytes = 0;        // this core's L1 data cache, bytes (sysconf; 32 KiB if unknown)
    double l2_bytes = 0;        // this core's L2, bytes (sysconf; 8 L1s if unknown)
};
PeakRates measure_peaks(double seconds_each = 0.2);
// The rate of the same read loop as the L2 probe, cycling over a buffer of `bytes` (rounded up to
// whole vectors): for a step's working set larger than L2, the rate at which this CPU's caches
// actually deliver a cyclic read of that size (floors' stream_read_bytes_per_s).
double measure_read_rate(double bytes, double seconds = 0.2);

// Counted work per sample of one stream, for the benchmark's floor. A lone multiply takes one
// slot of the FMA pipes as a multiply-add does, so the floor counts slots (fma_slots), while
// flops counts a multiply-add as 2 and a multiply as 1.
struct WorkPerSample {
    double macs = 0;         // multiply-adds (the products' sums, the state's FMA, the output sum)
    double muls = 0;         // lone multiplies (Δu·B per state; Δ·u, the gate, RMSNorm's scale)
    double flops = 0;        // 2·macs + muls
    double exps = 0;         // exp-like evaluations (exp, softplus, SiLU)
    double weight_bytes = 0; // weights read once per step
    double state_bytes = 0;  // state read and written per step
};
WorkPerSample work_per_sample(const ModelView& m);
// Slots of the FMA pipes per sample: every multiply-add and every lone multiply.
inline double fma_slots(const WorkPerSample& w) { return w.macs + w.muls; }

// The floors of one sample, ns. compute: the FMA slots at the FMA peak plus the exps at the exp
// peak. step_bytes: what the single-sample step cannot avoid moving: every weight and the state
// once a sample, all of it at least at L1's rate, and since at most L1's worth can still be in
// L1 from the sample before, the rest from L2 at its peak (step_bytes_ideal_ns: an ideal cache,
// which would also keep an L2's worth of a larger working set). Where the bytes exceed L2 and
// stream_read_bytes_per_s is given (measure_read_rate over those bytes), the bytes beyond L1 at
// that measured rate too: no cache hint, page colouring or prefetch kept any part of a cyclic
// working set larger than this core's L2 resident (docs/BENCHMARKS.md), so the ideal cache's
// bound is one no code on this CPU reaches. Blocks and the scan read each weight once a block,
// so their floor is compute alone. step: the larger of compute and the step's bytes.
struct Floors {
    double compute_ns = 0, step_bytes_ns = 0, step_bytes_ideal_ns = 0;
    double step_ns() const { return compute_ns > step_bytes_ns ? compute_ns : step_bytes_ns; }
};
Floors floors(const WorkPerSample& w, const PeakRates& peaks, double stream_read_bytes_per_s = 0);

} // namespace mw::kernels
