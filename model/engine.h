// The engine over whole sequences and streams, for the CLI and the tests: the three CPU paths
// behind one interface. (The plugin and the live app use dsp/, which uses these.)
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

// Whole-sequence forward, from the zero state.
// Generator: tokens [L] -> logits [L][V].  Effect: x [L][I] (normalised controls) -> y [L].
// threads: 0 = all cores (scan only).
void forward_tokens(const Model& model, Path path, const int32_t* tokens, int64_t L,
                    float* logits, int threads = 0);
void forward_continuous(const Model& model, Path path, const float* x, int64_t L, float* y,
                        int threads = 0);

// An effect over S independent streams (channels) with state carried between calls, so a
// file of any length goes through in segments. Controls are in the model's user units.
class EffectRunner {
public:
    EffectRunner(const Model& model, Path path, int streams, int threads = 0);
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

} // namespace mw
