// The CUDA path: the whole model's forward over long sequences on one GPU, parallel over time
// as well as channels (DESIGN.md "scan, CUDA"). A plain C++ API with no CUDA type in it, so
// model/, the CLI and the tests include it without nvcc; the library behind it is built only
// where CMake finds a CUDA compiler (target mw_kernels_cuda, kernels/cuda/CMakeLists.txt).
//
// Shapes use the letters of kernels/model_view.h, plus B: independent sequences (batch).
//
//   auto F = make_forward(model.view(), 1 << 22, 2);   // uploads weights, allocates scratch
//   forward_continuous(*F, x, L, y);                   // x [B][L][I] -> y [B][L]; any L
//   forward_continuous(*F, x2, L2, y2);                // carries on from where the first ended
//   reset(*F);                                         // back to the zero state
//
// Every CUDA or cuBLAS failure throws CudaError naming the call, the file and the line.
#pragma once

#include "kernels/backward.h"
#include "kernels/model_view.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mw::kernels::cuda {

struct CudaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The largest d_state an LTI layer (config "lti_layers") takes on the GPU: the LTI scan keeps
// each thread's states in shared memory (kernels/cuda/scan_lti.cuh). Larger ones are refused
// by name (the CPU paths take any).
constexpr int kLtiMaxState = 384;

// A CUDA device is present and usable (driver loaded, at least one device). Never throws.
bool available();
// The name of the device the forward runs on ("" when none).
std::string device_name();
// Nsight's capture range (cudaProfilerStart, cudaProfilerStop): a profiler started with
// `ncu --profile-from-start off` or `nsys profile --capture-range=cudaProfilerApi` records only
// the GPU work between on and off (the trainer's MW_PROFILE_STEPS). Throws CudaError when the
// runtime refuses.
void profiler_capture(bool on);

// Seconds this process's host has spent waiting for the GPU in the training tapes' and the
// weight uploads' synchronisations, summed since it started (any thread). A step's wall time less
// its share of this is the host's own work, while the GPU waits (train --json: gpu_wait_seconds).
double host_wait_seconds();

// With MW_HOST_TRACE=1 in the environment, each of those waits also ends a segment of the host's
// own work, both added to the wait's source line (kernels/host_trace.h), and the table per step
// goes to stderr at the process's end. host_trace_step(true) opens a step (what came before is
// not counted), host_trace_step(false) closes it (the trainer's forward and backward); without
// MW_HOST_TRACE both do nothing.
void host_trace_step(bool begins);

// Page-locked host memory (cudaMallocHost): copies to and from the GPU run at the bus's full
// speed from it, and without an extra staging copy. Size fixed at construction.
class PinnedFloats {
public:
    PinnedFloats() = default;
    explicit PinnedFloats(size_t n);  // throws CudaError when the allocation fails
    ~PinnedFloats();
    PinnedFloats(PinnedFloats&& o) noexcept : data_(o.data_), n_(o.n_) { o.data_ = nullptr; o.n_ = 0; }
    PinnedFloats& operator=(PinnedFloats&& o) noexcept { std::swap(data_, o.data_); std::swap(n_, o.n_); return *this; }
    PinnedFloats(const PinnedFloats&) = delete;
    PinnedFloats& operator=(const PinnedFloats&) = delete;
    float* data() const { return data_; }
    size_t size() const { return n_; }

private:
    float* data_ = nullptr;
    size_t n_ = 0;
};

// Weights uploaded once, scratch for segments of up to max_segment steps of `batch`
// sequences, and each sequence's recurrent state (conv windows and SSM states of every layer),
// carried from one call to the next.
struct Forward;
struct ForwardDeleter { void operator()(Forward* f) const; };
using ForwardPtr = std::unique_ptr<Forward, ForwardDeleter>;

// Throws std::invalid_argument for a bad size, CudaError when the GPU refuses (no device,
// out of memory). The ModelView's arrays are read here and not kept.
ForwardPtr make_forward(const ModelView& m, int64_t max_segment, int batch);

// The model's head kind, batch and maximum segment.
HeadKind head_kind(const Forward& f);
int batch(const Forward& f);
int64_t max_segment(const Forward& f);

// Effect: x [B][L][I] (host, sample then normalised controls) -> y [B][L] (host).
// Generator: tokens [B][L] (host, 0..V-1) -> logits [B][L][V] (host).
// Any L >= 0: longer than max_segment goes through in segments. The state after the last
// step is kept, so a sequence split over several calls gives the same output as one call.
// Throws std::invalid_argument for the wrong head kind or a token out of range (before any
// state changes).
void forward_continuous(Forward& f, const float* x, int64_t L, float* y);
// An effect whose controls hold still over the call: audio [B][L] (host) and the controls
// [I-1] (normalised, the model's stem inputs after the sample) instead of full rows. Only the
// audio crosses the bus; the rows are put together on the GPU. Same results as
// forward_continuous with those controls in every row.
void forward_effect(Forward& f, const float* audio, const float* controls, int64_t L, float* y);
void forward_tokens(Forward& f, const int32_t* tokens, int64_t L, float* logits);

// Zero every sequence's state.
void reset(Forward& f);

// Time steps per scan chunk: 0 (the default) picks one from the GPU's size and the call's
// B and L; tests force others (any value >= 1) to put chunk edges elsewhere.
void set_scan_chunk(Forward& f, int chunk_steps);
// Which scan kernels run (kernels/cuda/scan.cuh, ScanProblem::variant): 0 (the default: one
// pass where the batch fills the GPU, else chunked tiles), 1 (the
// chunked baseline), 2 (chunked tiles), 3 (one pass) or 4 (one pass in segments; 3 and 4 take
// d_state <= 32), so tests and the benchmark can compare.
void set_scan_variant(Forward& f, int variant);

// Where the time of the forward calls since the last reset_timing() went, from device events.
struct Timing {
    double upload_ms = 0;    // host -> device copies of the inputs
    double compute_ms = 0;   // the model on the GPU
    double download_ms = 0;  // device -> host copies of the outputs
    int64_t steps = 0;       // time steps per sequence
};
Timing timing(const Forward& f);
void reset_timing(Forward& f);

// ---- the recurrent step of many streams (step.cu) -------------------------------------------
// S independent streams (voices, clips, channels) advance one sample at a time, the way the
// CPU step does (kernels/fast.h), with every stream's state resident on the GPU. Many samples
// go through in one call: one launch runs them all (a persistent kernel, the default) or one
// step captured in a CUDA Graph is replayed per sample (StepVariant::graph, kept so the two
// can be compared). A generator samples its next class on the GPU (temperature, top-p,
// Philox-4x32-10 per stream: kernels/cuda/philox.h) and feeds it back there, with no trip to
// the host per sample.
//
//   auto st = make_stepper(model.view(), 64);          // weights uploaded, 64 zeroed streams
//   step_continuous(*st, x, y, n);                     // effect: x [n][64][I] -> y [n][64]
//   GenerateParams g; g.n_steps = 48000; g.seed = 7;   // generator: 48000 classes per stream
//   generate_tokens(*st, g, out);                      // out [64][48000]
//   generate_tokens(*st, g, out2);                     // carries on from the last class
//   reset_stepper(*st);                                // zero state, silence pending
//
// The state layout is the Forward's: conv windows [layers][S][K-1][E], SSM [layers][S][N][E].
struct Stepper;
struct StepperDeleter { void operator()(Stepper* s) const; };
using StepperPtr = std::unique_ptr<Stepper, StepperDeleter>;

constexpr int kMaxStepStreams = 4096;

// streams: 1..kMaxStepStreams. Throws std::invalid_argument for a bad size (or a generator
// whose vocab is above 256, the sampler's limit), CudaError when the GPU refuses.
StepperPtr make_stepper(const ModelView& m, int streams);

HeadKind head_kind(const Stepper& s);
int streams(const Stepper& s);

// Effect: x [n_steps][S][I] (host; sample, then normalised controls) -> y [n_steps][S] (host).
// Consecutive samples of every stream; the state carries to the next call.
void step_continuous(Stepper& s, const float* x, float* y, int64_t n_steps);

// Generator, teacher-forced: tokens [n_steps][S] (host, 0..V-1) -> logits [n_steps][S][V]
// (host): what the model predicts after each token. Leaves no class pending (see below).
void step_tokens(Stepper& s, const int32_t* tokens, float* logits, int64_t n_steps);

// Generation with sampling on the GPU.
//   temperature 0: argmax (the lowest class among equal maxima); > 0: softmax(logits / T).
//   top_p < 1: only the most probable classes (ties: lower class first) whose mass first
//   reaches top_p · total can be drawn (the CPU Sampler's rule, model/sampling.h).
//   Sample k of stream s (k counted from the last reset_stepper) draws
//   u = sampler_uniform(seed, s, k) (philox.h) and returns the first class of that order whose
//   cumulative probability exceeds u · mass. So the same seed gives the same classes for the
//   same calls; it is not the CPU Sampler's xoshiro stream.
// Each stream has a pending class: drawn but not yet fed (after reset_stepper: the silence
// class V/2). With a prime, the prime is fed after whatever the streams hold (call
// reset_stepper first for a fresh start) and the pending class is dropped; the first class is
// drawn from the logits after the prime's last token. Without a prime, the pending class is
// fed first. Either way the last class drawn is pending at the end of the call.
struct GenerateParams {
    const int32_t* prime = nullptr;  // host: [S][prime_len], or [prime_len] with shared_prime
    int64_t prime_len = 0;           // 0 (or prime == nullptr): continue from the pending class
    bool shared_prime = false;       // one prime for every stream
    int64_t n_steps = 0;             // classes to draw per stream (0 with a prime: feed it only)
    float temperature = 1.0f;        // >= 0
    float top_p = 1.0f;              // (0, 1]
    uint64_t seed = 0;
};
// out: [S][n_steps] (host). Throws std::invalid_argument for a bad parameter or a prime token
// outside 0..V-1 (before any state changes), std::logic_error when no class is pending (after
// step_tokens) and no prime is given.
void generate_tokens(Stepper& s, const GenerateParams& params, int32_t* out);
// The same with the arguments spelled out: prime [S][P] or nullptr.
void generate_tokens(Stepper& s, const int32_t* prime, int64_t P, int64_t n_steps,
                     float temperature, float top_p, uint64_t seed, int32_t* out);

// Zero every stream's state; the pending class of every stream becomes silence (V/2); the
// sample counter of the random numbers restarts at 0.
void reset_stepper(Stepper& s);

// How the step runs. Tests and the benchmark force choices; 0 / -1 leave them automatic.
enum class StepVariant : int {
    persistent = 0,  // one launch runs every sample of a call (blocks loop over time)
    graph = 1,       // one step (all layers, head, sampling) in a CUDA Graph, replayed per sample
};
struct StepTuning {
    StepVariant variant = StepVariant::persistent;
    int group = 0;            // streams per thread block: 1, 2, 4, 8 or 16 (0: from S and the GPU)
    int threads = 0;          // threads per block: a multiple of 32 up to 512 (0: from the model)
    int weights_in_smem = -1; // -1: when they fit; 0: never; 1: when they fit (else as 0)
    int state_in_smem = -1;   // the block's stream states in shared memory for a whole launch
                              // (persistent variant only): -1 or 1 when they fit (after the
                              // weights), 0 never
};
// Throws std::invalid_argument for a value outside the ranges above.
void set_step_tuning(Stepper& s, const StepTuning& tuning);
// The values in force: automatic choices resolved (weights_in_smem 0 or 1).
StepTuning step_tuning(const Stepper& s);

// Bytes the step moves per sample: the weights (read once per block per step unless they sit
// in shared memory) and each stream's recurrent state (read and written per step).
struct StepFootprint {
    int64_t weight_bytes = 0;            // the step's packed weights
    int64_t state_bytes_per_stream = 0;  // conv windows + SSM states, all layers
};
StepFootprint step_footprint(const Stepper& s);

// Tests: allocates `bytes` of device memory, fills it with NaN bytes and frees it, so that the
// next allocations may reuse memory that held other data (results must not depend on it).
void dirty_device_memory_for_testing(int64_t bytes);

// Device time of the step calls since the last reset_timing (upload, compute, download) and
// the samples per stream they ran.
Timing timing(const Stepper& s);
void reset_timing(Stepper& s);

// ---- training (train_cuda.cu, scan_backward.cu) ---------------------------------------------
// The CPU TrainTape's contract (kernels/backward.h) for B sequences at once on the GPU: a
// forward that keeps what the backward needs, then the backward of every op, adding
// dLoss/dθ into the caller's arrays. Memory: per layer about (D + 3E + 2N + R) floats per
// row (B·L rows) are kept; the SSM states are recomputed in the backward, never stored per
// step. Full fp32 (cuBLAS without TF32); sums in a fixed order, so the gradient of a step is
// the same on every run.
//
//   auto tape = make_train_tape(model.view(), 16, 4096);   // B 16, sequences up to 4096
//   train_forward_continuous(*tape, model.view(), x, L, state_in, y, state_out);
//   train_backward(*tape, dy, grads);                      // grads: ModelGrad over host arrays
//
// States are host arrays [B][tape_state_floats(dims)] in the CPU tape's layout (null: zero
// in / not wanted out). No gradient flows into state_in.
// ---- the selective scan alone, on host arrays (tests and tools) ------------------------------

// One scan of B sequences of L steps (DESIGN.md's recurrence, kernels/cuda/scan.cuh), nothing
// else of the layer. Row t of sequence b is row b·L + t of dt, u, z [B·L][E] (dt before its
// bias and softplus) and of Bm, Cm [B·L][N]; A2 [E][N] is A·log2(e); D, dt_bias [E]; state
// [B][N][E] is the carried-in state and receives the state after the last step.
struct HostScan {
    int B = 0;
    int64_t L = 0;
    int E = 0, N = 0;
    std::vector<float> dt, u, z, Bm, Cm, A2, D, dt_bias, state;
};
// Returns y [B·L][E]. bf16_inputs: dt, u, z, Bm and Cm go to the GPU as bf16 (rounded to
// nearest even, as bf16_round) and the kernels read them so; the state and every operation stay
// fp32. variant 0..4, lanes and segment_steps as ScanProblem's (scan.cuh), chunk 0 =
// automatic. chunk_starts, if given, receives the workspace's chunk start states [B][nc][N][E]
// (what the backward reads). Throws std::invalid_argument for sizes that do not match,
// CudaError from the GPU.
std::vector<float> run_scan(HostScan& s, bool bf16_inputs, int variant = 0, int chunk = 0, int lanes = 0,
                            std::vector<float>* chunk_starts = nullptr, int64_t segment_steps = 0);
// x rounded to the nearest bf16 (ties to even), as a float.
float bf16_round(float x);

struct TrainTape;
struct TrainTapeDeleter { void operator()(TrainTape* t) const; };
using TrainTapePtr = std::unique_ptr<TrainTape, TrainTapeDeleter>;

// Throws std::invalid_argument for a bad size, CudaError when the GPU refuses.
TrainTapePtr make_train_tape(const ModelView& m, int batch, int64_t max_len);

// Whether a training forward takes m's weights to the GPU (fresh: the default, since an
// optimiser may have changed them) or runs on those already there from the tape's last upload
// (as_last: the caller promises m has not changed since, e.g. the second forward of a self-fed
// step; the host's packing and copying of every tensor is skipped).
enum class WeightUpload { fresh, as_last };

// Forward over L (1..max_len) steps of each sequence with the weights of m (see WeightUpload),
// which must have the tape's sizes. Effect: x [B][L][I] -> y [B][L]. Generator: tokens [B][L]
// -> logits [B][L][V]. Throws std::invalid_argument for another model's sizes, a bad L or a
// token out of range.
void train_forward_continuous(TrainTape& t, const ModelView& m, const float* x, int64_t L,
                              const float* state_in, float* y, float* state_out,
                              WeightUpload up = WeightUpload::fresh);
void train_forward_tokens(TrainTape& t, const ModelView& m, const int32_t* tokens, int64_t L,
                          const float* state_in, float* logits, float* state_out,
                          WeightUpload up = WeightUpload::fresh);
// dLoss/dout of the last forward (dy [B][L] or dlogits [B][L][V]) -> adds (+=) into g.
// d_out null: the gradient train_cross_entropy left on the GPU. Throws std::logic_error
// without a forward before it.
void train_backward(TrainTape& t, const float* d_out, const ModelGrad& g);
// Generators, after train_forward_tokens: the cross-entropy of the logits (on the GPU) against
// targets [B][L] (host; -1: the row is not counted), so the logits never cross the bus.
// nats[b] = Σ over sequence b's counted rows of −log softmax(logits)[target] (float64 sum of
// per-row floats); dLoss/dlogits = (softmax − onehot)·scale stays on the GPU for
// train_backward(t, nullptr, g). Throws std::invalid_argument for a target outside -1..V-1.
void train_cross_entropy(TrainTape& t, const int32_t* targets, double scale, double* nats);
// Self-feed on the GPU (TrainOptions::self_feed), after train_forward_tokens, whose logits stay
// on the GPU: tokens [B][L] (host) are that forward's classes, and come back with place i of
// sequence b, for i in [first[b], end[b]), replaced where self_feed_coin(chance, seed, step,
// lane[b], pos[b] + i) says so by draw_class from that forward's logits row i − 1
// (kernels/counter_draws.h): the classes self_fed_class gives on the host, without the logits
// crossing the bus. Throws std::invalid_argument for arrays of another size or rows outside
// 1..L, std::logic_error without a forward before it.
struct SelfFeedDraws {
    double chance = 0;
    uint64_t seed = 0;
    int64_t step = 0;
    std::vector<int> lane;            // [B] each sequence's lane number in the whole batch
    std::vector<int64_t> pos;         // [B] the place of each sequence's row 0 in its clip
    std::vector<int64_t> first, end;  // [B] the rows that may be drawn: first .. end − 1
};
void train_self_feed(TrainTape& t, const SelfFeedDraws& d, int32_t* tokens);

// Mixed precision: the projections' products (every cuBLAS GEMM of forward and backward) on
// the tensor cores in TF32 (10-bit mantissa inputs, fp32 accumulation) instead of full fp32.
// Everything else (the scan, norms, conv, sums) stays fp32. Measured bound: the gradient
// within 1e-2 of the fp32 one (tests/cuda_checks.h). Off by default.
void set_tf32(TrainTape& t, bool on);
bool tf32(const TrainTape& t);

// Steps per chunk of the scan's backward: 16 (the default) or 8 (fewer registers per thread,
// twice the chunks); tests and the benchmark compare them. Throws std::invalid_argument.
void set_backward_chunk(TrainTape& t, int chunk);
// Variant of the scan's backward passes (ScanBackwardProblem::variant): 3 (the default), 2 or 1.
void set_backward_variant(TrainTape& t, int variant);
// Variant of the forward scan in training (ScanProblem::variant, 0..3; 0 the default), both
// the forward and the backward's recompute (which keeps the chunks' start states).
void set_forward_scan_variant(TrainTape& t, int variant);
// LTI layers' backward (scan_lti.cuh): chunks per run, the stretch of time one thread walks;
// 0 (the default) chooses from the GPU's size and the batch. Tests force others to put run
// edges (where the chained adjoint carries cross) elsewhere. Throws std::invalid_argument.
void set_lti_backward_run(TrainTape& t, int chunks_per_run);

int train_batch(const TrainTape& t);
int64_t train_max_len(const TrainTape& t);

struct TrainTiming {
    double forward_ms = 0;   // weights up, inputs up, forward, outputs down
    double backward_ms = 0;  // gradient of the outputs up, backward, gradients down
    int64_t samples = 0;     // B·L summed over the forwards
};
TrainTiming timing(const TrainTape& t);
void reset_timing(TrainTape& t);

// ---- pooled generators' training (train_pooled.cu) -------------------------------------------
// A pooled generator (model/pooled.h, docs/POOLED.md): stacks of layers at several rates joined
// by learnt pools. On the GPU each stack runs a training tape of its own, the pools are cuBLAS
// products and small kernels, and the rows between them never leave the device. Same contract
// as the flat tape: B sequences, states on the host, gradients added into host arrays.
//
// The model as plain views: stacks in stack order (down stacks of levels 0..P-1, the centre,
// the up stacks of levels P-1..0; Model::stack_view), every one HeadKind::hidden but the last,
// which carries norm_f and the generator's head (its embedding is the model's input table).
struct PoolView {
    int factor = 0;        // p_i: level i's rows per level-(i+1) row
    int d_in = 0;          // D_i
    int d_out = 0;         // D_{i+1}
    const float* down_w = nullptr;  // [D_{i+1}][p·D_i]
    const float* down_b = nullptr;  // [D_{i+1}]
    const float* up_w = nullptr;    // [p·D_i][D_{i+1}]
    const float* up_b = nullptr;    // [p·D_i]
};
struct PooledView {
    std::vector<ModelView> stacks;  // [2P+1]
    std::vector<PoolView> pools;    // [P]
};
struct PoolGrad {
    float* down_w = nullptr;
    float* down_b = nullptr;
    float* up_w = nullptr;
    float* up_b = nullptr;
};
// The gradient's arrays (host), added into (+=). The embedding's gradient goes into
// stacks.back().embed_w (with tied embeddings the same array as its lm_head_w).
struct PooledGrad {
    std::vector<ModelGrad> stacks;
    std::vector<PoolGrad> pools;
};

struct PooledTape;
struct PooledTapeDeleter { void operator()(PooledTape* t) const; };
using PooledTapePtr = std::unique_ptr<PooledTape, PooledTapeDeleter>;

// batch B, sequences up to max_len steps (a multiple of the pooling period, the product of the
// factors). Throws std::invalid_argument for a bad size or a view whose parts do not fit
// together, CudaError when the GPU refuses.
PooledTapePtr make_pooled_tape(const PooledView& m, int batch, int64_t max_len);

// Per stream: every stack's state in stack order (the flat tape's layout at its level's size),
// then for each pool the p_i rows [p_i][D_i] that the next frame adds in (model/pooled.h's
// layout). States: host [B][pooled_state_floats(m)], null: zero in / not wanted out.
int64_t pooled_state_floats(const PooledView& m);

// tokens [B][L] -> logits [B][L][V] (host; null: left on the GPU for
// train_pooled_cross_entropy). L: 1..max_len, a multiple of the pooling period. Throws
// std::invalid_argument for another model's sizes, a bad L or a token out of range.
// up: as train_forward_tokens' (as_last: every stack's and the pools' weights as last uploaded).
void train_pooled_forward(PooledTape& t, const PooledView& m, const int32_t* tokens, int64_t L,
                          const float* state_in, float* logits, float* state_out,
                          WeightUpload up = WeightUpload::fresh);
// As train_cross_entropy, on the last forward's logits.
void train_pooled_cross_entropy(PooledTape& t, const int32_t* targets, double scale, double* nats);
// As train_self_feed, on the last forward's logits.
void train_pooled_self_feed(PooledTape& t, const SelfFeedDraws& d, int32_t* tokens);
// dlogits [B][L][V] (host; null: train_pooled_cross_entropy's) -> adds (+=) into g.
void train_pooled_backward(PooledTape& t, const float* d_logits, const PooledGrad& g);
void set_tf32(PooledTape& t, bool on);
TrainTiming timing(const PooledTape& t);

} // namespace mw::kernels::cuda
