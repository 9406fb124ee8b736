// The engine over whole sequences and streams, for the CLI and the tests: the three CPU paths
// and, where the build has CUDA (MW_HAVE_CUDA), the GPU forward of kernels/cuda behind one
// interface. (The plugin and the live app use dsp/, which uses these.)
#pragma once

#include "kernels/fast.h"
#include "model/model.h"
#include "model/sampling.h"

#include <cstdint>
#include <memory>
#include <string>

namespace mw {

namespace kernels { class ThreadPool; }

enum class Path { reference, step, scan };
const char* to_string(Path path);
Path parse_path(const std::string& s);  // throws std::invalid_argument naming the choices

// Where a model runs. Device::cuda needs a build with CUDA and a usable device.
enum class Device { cpu, cuda };
const char* to_string(Device device);
// A CUDA device can run the forward. Never throws. When not, *why (if given) says why:
// "this build has no CUDA support" or "no CUDA device found (...)".
bool cuda_available(std::string* why = nullptr);
// The name of the GPU the CUDA forward runs on ("" when none).
std::string cuda_device_name();

// Whole-sequence forward, from the zero state.
// Generator: tokens [L] -> logits [L][V].  Effect: x [L][I] (normalised controls) -> y [L].
// threads: 0 = all cores (scan only).
void forward_tokens(const Model& model, Path path, const int32_t* tokens, int64_t L,
                    float* logits, int threads = 0);
void forward_continuous(const Model& model, Path path, const float* x, int64_t L, float* y,
                        int threads = 0);
// Many generator sequences one after another, each from the zero state, through the scan, with
// what they need made once (prepared weights, state, threads; a pooled model's Forward, whose
// buffers are megabytes): validation and `eval` over thousands of clips.
class TokenForward {
public:
    TokenForward(const Model& model, int threads = 0);
    ~TokenForward();
    // tokens [L] -> logits [L][V], from the zero state.
    void run(const int32_t* tokens, int64_t L, float* logits);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// An effect's input x [L][I] from mono audio [L] with the controls held at `values` (user units,
// one per ControlSpec, normalised here as the model expects). Resizes x.
void effect_input(const ModelConfig& config, const float* audio, int64_t L, const float* values,
                  std::vector<float>& x);
// The same on the GPU (batch 1, the whole sequence). Throw std::runtime_error when CUDA is not
// available (see cuda_available), kernels::cuda::CudaError when the GPU fails.
// forward_tokens_cuda takes pooled generators too (docs/POOLED.md). max_segment: samples per
// pass on the GPU (0: up to 2^18, or 2^16 for a pooled model, whose pass keeps every layer's
// rows; rounded up to whole pooling periods); longer inputs go through in such segments with
// the state carried, and give the same logits up to float rounding.
void forward_tokens_cuda(const Model& model, const int32_t* tokens, int64_t L, float* logits,
                         int64_t max_segment = 0);
void forward_continuous_cuda(const Model& model, const float* x, int64_t L, float* y);

// An effect over S independent streams (channels) with state carried between calls, so a
// file of any length goes through in segments. Controls are in the model's user units.
class EffectRunner {
public:
    EffectRunner(const Model& model, Path path, int streams, int threads = 0);
    // On a device: Device::cpu is the scan path; Device::cuda runs the streams as one batch on
    // the GPU (scratch sized for blocks of max_block frames; longer blocks are split), and
    // throws std::runtime_error when CUDA is not available.
    EffectRunner(const Model& model, Device device, int streams, int threads = 0,
                 int64_t max_block = 65536);
    ~EffectRunner();
    // Control values, one per model control, user units (range-checked by the caller).
    void set_controls(const float* values);
    // in/out: [streams][n] planar, n any size. reference path: not supported (throws).
    void process(const float* const* in, float* const* out, int64_t n);
    void reset();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A generator voice: prime with audio tokens, then draw one class at a time.
class GeneratorRunner {
public:
    GeneratorRunner(const Model& model, SamplerParams params, int threads = 0);
    ~GeneratorRunner();
    // Feeds tokens [L] through the model (scan), leaving the last logits ready.
    void prime(const int32_t* tokens, int64_t L);
    // Samples the next class from the current logits, feeds it back (step), returns it.
    int32_t next();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Many voices of one generator at once (`mambawave generate --count`): S streams sharing one
// prime, each drawing its own classes.
//   Device::cpu:  the CPU step over S streams; stream k samples with the CPU Sampler seeded
//                 params.seed + k, so stream 0 gives exactly GeneratorRunner's classes.
//   Device::cuda: kernels/cuda's step with sampling on the GPU (temperature, top-p, Philox per
//                 stream, kernels/cuda/philox.h): the same seed gives the same classes on the
//                 GPU, but not the CPU's.
class BatchGenerator {
public:
    // streams: 1..kMaxStreams. Throws std::invalid_argument for an effect or a bad count,
    // std::runtime_error when Device::cuda is asked for and CUDA is not available.
    static constexpr int kMaxStreams = 4096;
    BatchGenerator(const Model& model, Device device, int streams, SamplerParams params,
                   int threads = 0);
    ~BatchGenerator();
    // Feeds tokens [L] to every stream; call before the first generate(). Without it the
    // streams start from the silence class, as GeneratorRunner does.
    void prime(const int32_t* tokens, int64_t L);
    // The next n classes of every stream: out [streams][n]. Calls continue one another.
    void generate(int64_t n, int32_t* out);
    int streams() const;
    Device device() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// What label guidance pushes a clip away from (label_guidance_logits, null_guidance_logits).
//   labels:     the average of every label's prediction: one stream per label a clip.
//   null_label: the null label's prediction (a model trained with label dropout,
//               ModelConfig::label_null): two streams a clip.
enum class GuidanceContrast { labels, null_label };

// Clips of a labelled generator asked for one label, with label guidance of weight w
// (docs/DIGITS.md). Each clip runs the streams its contrast needs, each primed with its label's
// prefix (label k's, or the asked label's and the null label's) and all fed the clip's classes:
// that many times the plain cost. CPU only. Clip k samples with the Sampler seeded
// params.seed + k; with w = 0 it draws from its own label's logits as they come, so it gives
// BatchGenerator's classes for the same prefix (up to float rounding of the prefix, which
// BatchGenerator scans where this steps, for models that are not pooled).
class GuidedGenerator {
public:
    // Throws std::invalid_argument for a model without labels, a label out of range, clips out
    // of 1..BatchGenerator::kMaxStreams / streams_per_clip, w < 0, or null_label for a model
    // without a null label.
    // threads: clips are stepped in a group per thread (0 = every core); the classes do not depend on it.
    GuidedGenerator(const Model& model, int clips, int label, float guidance, SamplerParams params,
                    GuidanceContrast contrast = GuidanceContrast::labels, int threads = 0);
    // Each clip its own label: labels[c] for clip c (generate --label random). Clip c's classes
    // are those clip c of the one-label constructor gives for labels[c] and the same params.
    GuidedGenerator(const Model& model, const std::vector<int>& labels, float guidance, SamplerParams params,
                    GuidanceContrast contrast = GuidanceContrast::labels, int threads = 0);
    // Streams a clip runs with this contrast: the model's labels, or 2.
    static int streams_per_clip(const ModelConfig& c, GuidanceContrast contrast);
    ~GuidedGenerator();
    // Feeds tokens [L] (audio after the label prefix) to every stream, before generate().
    void prime(const int32_t* tokens, int64_t L);
    // The next n classes of every clip: out [clips][n]. Calls continue one another.
    void generate(int64_t n, int32_t* out);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace mw
