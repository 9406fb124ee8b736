// The trainer: minibatches of long sequences through forward + backward (model/grad.h),
// AdamW with warm-up + cosine and clipping (model/optim.h), validation, checkpoints that
// resume exactly. Data arrives in memory (standalone/ reads and aligns the files), so this
// layer knows nothing of audio files.
//
// Truncated back-propagation through time: each of the B lanes of a batch walks through one
// sequence in consecutive segments of `segment` samples, carrying its recurrent state from
// one segment to the next (no gradient flows across the boundary). After `tbptt_segments`
// segments, or at the end of its sequence, a lane jumps to a new random place (effects) or a
// new random clip (generators) and starts from the zero state; the first `warmup` samples
// after such a jump only build up state and are left out of the loss. So training length is
// bounded by `segment`, not by the files.
//
// Determinism: every random choice is drawn from one generator in lane order, gradients are
// summed per lane and then in lane order, so a run is reproducible for any thread count and a
// resumed run continues bit for bit.
#pragma once

#include "model/comm.h"
#include "model/engine.h"
#include "model/model.h"
#include "model/optim.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mw {

// One effect recording: input and target at the model's rate, and the control values it was
// made with (user units, one per model control).
struct EffectSequence {
    std::string name;
    std::vector<float> input, target;  // [L] each
    std::vector<float> controls;       // [n_cond]
};

// One generator clip: mu-law classes at the model's rate.
struct TokenSequence {
    std::string name;
    std::vector<int32_t> tokens;  // [L]
    int64_t unscored = 0;         // leading predictions left out of the loss and validation (a label prefix's)
    double speed = 1;             // a speed-perturbed copy's factor (train --speed-perturb); 1: as recorded
};

struct TrainData {
    std::vector<EffectSequence> effect_train, effect_val;
    std::vector<TokenSequence> token_train, token_val;
    std::string description;  // what the data is and how it was split (the training record)
};

struct TrainOptions {
    int64_t steps = 2000;
    int batch = 16;               // lanes
    int64_t segment = 4096;       // samples per lane per step
    int tbptt_segments = 4;       // consecutive segments before a lane jumps
    int64_t warmup = 1024;        // samples after a jump left out of the loss
    AdamWParams adam;
    int64_t lr_warmup_steps = 100;
    double final_lr_ratio = 0.05;
    double clip_norm = 1.0;       // <= 0: off
    double preemphasis = 0.95;    // effects: the loss is ESR on pre-emphasised signals (0: plain)
    // Effects, false (default): one ESR pooled over the batch and over the validation pairs.
    // true: the loss is the mean of the lanes' own ESRs, each over its lane's signal energy plus
    // a floor of kLaneFloor times the batch's mean (so a near-silent lane cannot blow up), and
    // validation is the mean of the pairs' ESRs, so a quiet knob setting (a dark tone) counts as
    // much as a loud one. On the whole capture set it lowered the presets' worst knob settings
    // (docs/ABLATION.md: both shipped presets were fine-tuned with it); on a small subset it
    // did not.
    bool balance_lanes = false;
    static constexpr double kLaneFloor = 0.1;
    // Effects: weight of the multi-resolution STFT term (losses.h, FFT sizes 128/512/2048) added
    // to the ESR in the training loss, each lane's term over the batch size (0: off). The
    // validation metric stays the ESR.
    double stft_weight = 0;
    // Keep every layer's decays harmonic (kernels/harmonic_decay.h: A[e][n] = (n+1)·A[e][0], one
    // learnt rate per channel): the start model is projected onto that form, each A_log row's
    // gradient is replaced by its mean, and the rows are projected again after each optimiser
    // step. The fast CPU paths then need one exponential per channel instead of one per state.
    bool harmonic_decays = false;
    // Δ fixed per channel, softplus(dt_proj.bias), B and C still selective: x_proj's Δ rows and
    // dt_proj.weight start at zero and their gradients are zeroed, so AdamW (its moments zero,
    // its decay of a zero weight zero) keeps them at zero. The
    // variant between the selective layer and an LTI one (docs/ABLATION.md); its decays are
    // constants.
    bool fixed_dt = false;
    // Labelled generators (ModelConfig::label_null): the chance that a clip is led by the null
    // label's prefix instead of its own, drawn when a lane starts the clip, so that the model
    // learns the audio whatever the label too (label dropout, as classifier-free guidance trains).
    // Validation keeps every clip's own label. 0: off.
    double label_dropout = 0;
    // Generators (scheduled sampling in one parallel pass): a first forward over the clean
    // classes gives the model's prediction for every place; then each class fed after the label
    // prefix is, with this chance, replaced by a draw from the model's own prediction for it, and
    // the step trains on those classes against the clip's own targets. The model so learns to
    // continue histories that hold its own errors, as they will when it generates. The draws are
    // a hash of (seed, step, lane, place). Costs one more forward a step. Validation feeds the
    // clips clean. 0: off.
    double self_feed = 0;
    // Scheduled sampling's curriculum: the chance rises in a straight line from 0 at step 0 to
    // self_feed at this step, and stays there (self_feed_chance). For a run from a fresh model,
    // whose first draws are noise. 0: self_feed from the first step.
    int64_t self_feed_ramp = 0;
    int64_t validate_every = 250;
    uint64_t seed = 1;
    int threads = 0;              // 0 = all cores
    // Where forward + backward run. cuda: the whole batch at once on the GPU
    // (kernels/cuda/mamba_cuda.h, training), and validation there too; the optimiser stays on
    // the CPU. Results equal the CPU's up to float rounding, and repeat exactly on the same GPU.
    // Not saved in checkpoints: a run may resume on either device.
    Device device = Device::cpu;
    // Device cuda only: the projections' products in TF32 on the tensor cores (mixed precision;
    // the gradient stays within 1e-2 of fp32's, kernels/cuda/mamba_cuda.h set_tf32). Not saved.
    bool tf32 = false;
    // Data-parallel training (model/comm.h): this process's rank in its group, or null for one
    // process. Every rank walks the whole global batch's bookkeeping (same data, same random
    // stream), runs forward + backward on its share of the lanes (rank r of R: lanes
    // [r·B/R, (r+1)·B/R)), and the group sums the gradients before the identical optimiser
    // step; validation pairs are shared out the same way. Not saved.
    std::shared_ptr<Communicator> comm;
};
// The options as JSON: in a checkpoint (read back on --resume) and, with the device, in the
// training record of an exported model.
nlohmann::json options_to_json(const TrainOptions& o);

struct StepStats {
    int64_t step = 0;             // steps done after this one
    double loss = 0;              // effects: ESR as trained (see balance_lanes); generators: bits/sample
    double lr = 0;
    double grad_norm = 0;         // before clipping
    int64_t samples = 0;          // samples through forward + backward in this step (all ranks)
    bool stop = false;            // some rank asked to stop (step(true)): every rank stops here
    double forward_backward_s = 0;  // wall time of the step's batch gathering, forward and backward
    double update_s = 0;            // the rest: gradient reduction across ranks, clipping, AdamW
    double gpu_wait_s = 0;          // of forward_backward_s, the host's waits for the GPU (device cuda; else 0)
};

struct ValStats {
    double metric = 0;            // effects: esr (mean over pairs when balance_lanes); generators: bits per sample
    double esr_preemph = 0;       // effects only
    int64_t samples = 0;
};

class Trainer {
public:
    // A fresh run from `init` (its config says the kind).
    Trainer(Model init, TrainData data, TrainOptions options);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // One optimiser step. With data-parallel ranks, `stop_requested` (e.g. Ctrl-C seen by this
    // process) is shared, so that every rank sees StepStats::stop at the same step.
    StepStats step(bool stop_requested = false);
    // The current model on the validation data (whole sequences from the zero state). A
    // collective with data-parallel ranks: every rank gets the same figures.
    ValStats validate();
    // This process's rank and the group's size (0 and 1 without data parallelism). Only rank 0
    // should write files (save_checkpoint does so by itself).
    int rank() const;
    int ranks() const;

    const Model& model() const;
    int64_t steps_done() const;
    const TrainOptions& options() const;
    const TrainData& data() const;
    const std::string& data_hash() const;  // data_hash(data()), computed once
    bool effect() const;

    // Everything needed to continue exactly: weights, optimiser moments, the data generator,
    // each lane's place and state, the options. Written into directory `dir` (created),
    // each file under a temporary name and renamed. A collective with data-parallel ranks (the
    // lanes' states are gathered); only rank 0 writes.
    void save_checkpoint(const std::string& dir);
    // Continues a run from a checkpoint; `data` must be the same data (checked by a hash of
    // the sequences, with a clear error when it differs). Options come from the checkpoint,
    // except `steps`, `threads`, `device` and `tf32`, which the caller may change (longer runs
    // continue the cosine over the new total).
    static std::unique_ptr<Trainer> resume(const std::string& dir, TrainData data, int64_t steps, int threads,
                                           Device device = Device::cpu, bool tf32 = false,
                                           std::shared_ptr<Communicator> comm = nullptr);

private:
    struct Impl;
    explicit Trainer(std::unique_ptr<Impl> impl);
    static std::unique_ptr<Trainer> resume_checked(const std::string& dir, const std::string& trainer_path,
                                                   TrainData data, int64_t steps, int threads, Device device,
                                                   bool tf32, std::shared_ptr<Communicator> comm);
    std::unique_ptr<Impl> impl_;
};

// TrainOptions::self_feed: the class fed at place `pos` (from its clip's start) of lane `lane` in
// step `step` (from 0) of a run with this seed: with chance p a draw from softmax(logits[0..vocab)),
// the model's prediction for that place, else the clip's own `cls`.
int32_t self_fed_class(int32_t cls, const float* logits, int vocab, double p, uint64_t seed, int64_t step, int lane,
                       int64_t pos);

// TrainOptions::self_feed's chance at step `step` (from 0) of the run, its ramp applied.
double self_feed_chance(const TrainOptions& o, int64_t step);

// A fingerprint of the training data (names, lengths, contents), hex.
std::string data_hash(const TrainData& data);

// MW_PROFILE_STEPS=FIRST:LAST in the environment of a run on cuda: the steps (counted from 1 over
// the whole run, resumed or not) whose GPU work a profiler records. The trainer opens the capture
// range (kernels::cuda::profiler_capture) as step FIRST begins and closes it when step LAST ends,
// so `ncu --profile-from-start off` sees those steps alone and no build, warm-up or validation
// (scripts/device_profile_train.sh). Null or empty: {0, 0}, nothing captured. Anything but two
// whole numbers 1 <= FIRST <= LAST throws std::invalid_argument naming the variable and the value.
std::pair<int64_t, int64_t> parse_profile_steps(const char* value);

} // namespace mw
