#include "model/engine.h"

#include "kernels/reference.h"
#include "kernels/thread_pool.h"
#include "model/pooled.h"

#if MW_HAVE_CUDA
#include "kernels/cuda/mamba_cuda.h"
#endif

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace mw {

const char* to_string(Path path) {
    switch (path) {
    case Path::reference: return "reference";
    case Path::step: return "step";
    case Path::scan: return "scan";
    }
    return "?";
}

Path parse_path(const std::string& s) {
    if (s == "reference") return Path::reference;
    if (s == "step") return Path::step;
    if (s == "scan") return Path::scan;
    throw std::invalid_argument("unknown path '" + s + "', expected reference, step or scan");
}

const char* to_string(Device device) {
    return device == Device::cuda ? "cuda" : "cpu";
}

bool cuda_available(std::string* why) {
#if MW_HAVE_CUDA
    if (kernels::cuda::available()) return true;
    if (why) *why = "no CUDA device found (the CUDA runtime sees no usable GPU: no driver loaded, "
                    "or none visible to this process)";
#else
    if (why) *why = "this build has no CUDA support (configure with nvcc available and "
                    "MW_WITH_CUDA=ON)";
#endif
    return false;
}

std::string cuda_device_name() {
#if MW_HAVE_CUDA
    return kernels::cuda::device_name();
#else
    return "";
#endif
}

namespace {
std::unique_ptr<kernels::ThreadPool> make_pool(int threads) {
    return std::make_unique<kernels::ThreadPool>(threads);
}

// Scratch for at most this many steps per sequence; longer sequences go through in segments.
constexpr int64_t kMaxCudaSegment = int64_t(1) << 18;
// A pooled model's GPU forward runs the training tape, which keeps every layer's rows for a
// backward pass: a shorter segment bounds its memory (training runs 32 x 4000 rows at once).
constexpr int64_t kMaxPooledCudaSegment = int64_t(1) << 16;

void require_cuda() {
    std::string why;
    if (!cuda_available(&why)) throw std::runtime_error("CUDA is not available: " + why);
}

// The forward_* functions of one head kind refuse a model of the other.
void require_forward_generator(const Model& model) {
    if (model.config().kind != IoKind::mulaw8)
        throw std::invalid_argument("forward_tokens: the model is not a generator (mulaw8)");
}
void require_forward_effect(const Model& model) {
    if (model.view().head != kernels::HeadKind::continuous)
        throw std::invalid_argument("forward_continuous: the model is not an effect (continuous)");
}
} // namespace

void effect_input(const ModelConfig& config, const float* audio, int64_t L, const float* values,
                  std::vector<float>& x) {
    const int I = config.n_in();
    std::vector<float> controls(static_cast<size_t>(I - 1));
    for (int k = 0; k + 1 < I; ++k) controls[size_t(k)] = config.controls[size_t(k)].normalise(values[k]);
    x.resize(size_t(L * I));
    for (int64_t t = 0; t < L; ++t) {
        x[size_t(t * I)] = audio[t];
        for (int k = 1; k < I; ++k) x[size_t(t * I + k)] = controls[size_t(k - 1)];
    }
}

void forward_tokens(const Model& model, Path path, const int32_t* tokens, int64_t L,
                    float* logits, int threads) {
    require_forward_generator(model);
    if (model.config().pooled()) {  // model/pooled.h's paths
        const int V = model.config().vocab;
        if (path == Path::reference) {
            std::vector<double> out(size_t(L) * size_t(V));
            pooled::reference_forward_tokens_f64(model, tokens, L, nullptr, out.data(), nullptr);
            std::copy(out.begin(), out.end(), logits);
        } else if (path == Path::step) {
            pooled::Stepper step(model, 1);
            for (int64_t t = 0; t < L; ++t) step.step(tokens + t, logits + t * V);
        } else {
            auto pool = make_pool(threads);
            pooled::forward_tokens(model, tokens, L, logits, pool.get());
        }
        return;
    }
    const kernels::ModelView& m = model.view();
    if (path == Path::reference) {
        kernels::reference_forward_tokens(m, tokens, L, logits);
        return;
    }
    auto prepared = kernels::prepare_model(m);
    auto state = kernels::make_state(*prepared, 1);
    if (path == Path::step) {
        for (int64_t t = 0; t < L; ++t)
            kernels::step_tokens(*prepared, *state, tokens + t, logits + t * m.vocab);
        return;
    }
    auto pool = make_pool(threads);
    kernels::scan_tokens(*prepared, *state, 0, tokens, L, logits, pool.get());
}

struct TokenForward::Impl {
    std::unique_ptr<kernels::ThreadPool> pool;
    std::unique_ptr<pooled::Forward> pooled;
    kernels::PreparedModelPtr prepared;
    kernels::StepStatePtr state;
};

TokenForward::TokenForward(const Model& model, int threads) : impl_(std::make_unique<Impl>()) {
    require_forward_generator(model);
    impl_->pool = make_pool(threads);
    if (model.config().pooled()) {
        impl_->pooled = std::make_unique<pooled::Forward>(model);
    } else {
        impl_->prepared = kernels::prepare_model(model.view());
        impl_->state = kernels::make_state(*impl_->prepared, 1);
    }
}

TokenForward::~TokenForward() = default;

void TokenForward::run(const int32_t* tokens, int64_t L, float* logits) {
    Impl& d = *impl_;
    if (d.pooled) {
        d.pooled->reset();
        d.pooled->run(tokens, L, logits, d.pool.get());
        return;
    }
    kernels::reset_state(*d.state);
    kernels::scan_tokens(*d.prepared, *d.state, 0, tokens, L, logits, d.pool.get());
}

void forward_continuous(const Model& model, Path path, const float* x, int64_t L, float* y,
                        int threads) {
    const kernels::ModelView& m = model.view();
    require_forward_effect(model);
    if (path == Path::reference) {
        kernels::reference_forward_continuous(m, x, L, y);
        return;
    }
    auto prepared = kernels::prepare_model(m);
    auto state = kernels::make_state(*prepared, 1);
    if (path == Path::step) {
        for (int64_t t = 0; t < L; ++t)
            kernels::step_continuous(*prepared, *state, x + t * m.n_in, y + t);
        return;
    }
    auto pool = make_pool(threads);
    kernels::scan_continuous(*prepared, *state, 0, x, L, y, pool.get());
}

void forward_tokens_cuda(const Model& model, const int32_t* tokens, int64_t L, float* logits, int64_t max_segment) {
    require_forward_generator(model);
    if (max_segment < 0) throw std::invalid_argument("forward_tokens_cuda: max_segment " + std::to_string(max_segment) + " is negative");
    require_cuda();
#if MW_HAVE_CUDA
    if (!model.config().pooled()) {
        const int64_t seg = max_segment > 0 ? max_segment : kMaxCudaSegment;
        auto f = kernels::cuda::make_forward(model.view(), std::clamp<int64_t>(L, 1, seg), 1);
        kernels::cuda::forward_tokens(*f, tokens, L, logits);
        return;
    }
    // A pooled model: the GPU training tape's forward (kernels/cuda/train_pooled.cu) in
    // segments of whole pooling periods, every state carried (pooled::forward_in_periods).
    const int64_t seg = pooled::periods_segment(model, L, max_segment > 0 ? max_segment : kMaxPooledCudaSegment);
    const kernels::cuda::PooledView view = pooled::cuda_view(model);
    auto tape = kernels::cuda::make_pooled_tape(view, 1, seg);
    pooled::forward_in_periods(model, tokens, L, logits, seg,
                               [&](const int32_t* in, int64_t n, const float* state_in, float* out, float* state_out) {
                                   kernels::cuda::train_pooled_forward(*tape, view, in, n, state_in, out, state_out);
                               });
#else
    (void)tokens, (void)L, (void)logits;
#endif
}

void forward_continuous_cuda(const Model& model, const float* x, int64_t L, float* y) {
    require_forward_effect(model);
    require_cuda();
#if MW_HAVE_CUDA
    auto f = kernels::cuda::make_forward(model.view(), std::clamp<int64_t>(L, 1, kMaxCudaSegment), 1);
    kernels::cuda::forward_continuous(*f, x, L, y);
#endif
}

// ---- EffectRunner ---------------------------------------------------------------------------

struct EffectRunner::Impl {
    Impl(const Model& m, Path p, Device d) : model(m), path(p), device(d) {}

    const Model& model;
    Path path;
    Device device;
    int streams = 0;
    int n_in = 0;
    kernels::PreparedModelPtr prepared;                 // cpu
    kernels::StepStatePtr state;                        // cpu
    std::unique_ptr<kernels::ThreadPool> pool;          // cpu, scan
    // cpu scan of several streams on several threads: a state (and input rows) per stream, each
    // stream scanned by one thread, so the threads share nothing and never wait on each other.
    std::vector<kernels::StepStatePtr> stream_states;   // [S]
    std::vector<std::vector<float>> stream_x;           // [S][segment][I]
#if MW_HAVE_CUDA
    kernels::cuda::ForwardPtr gpu;                      // cuda: weights, scratch, [S] states
    kernels::cuda::PinnedFloats gpu_x, gpu_y;           // cuda: [S][max_block] in and out
    int64_t max_block = 0;
#endif
    std::vector<float> controls;  // normalised, [n_cond]
    std::vector<float> x;         // cpu: [segment][I] or [S][I]
    std::vector<float> y;         // cpu: [S]

    void init_controls() {
        controls.assign(size_t(model.config().n_cond()), 0.0f);
        const auto& specs = model.config().controls;
        for (size_t i = 0; i < specs.size(); ++i) controls[i] = specs[i].normalise(specs[i].default_value);
    }
    void init_cpu(int streams_, int threads) {
        streams = streams_;
        n_in = model.config().n_in();
        prepared = kernels::prepare_model(model.view());
        state = kernels::make_state(*prepared, streams);
        if (path == Path::scan) pool = make_pool(threads);
        if (pool && pool->size() > 1 && streams > 1) {
            for (int c = 0; c < streams; ++c) stream_states.push_back(kernels::make_state(*prepared, 1));
            stream_x.resize(size_t(streams));
        }
        init_controls();
    }
    void process_cuda(const float* const* in, float* const* out, int64_t n);
};

namespace {
void require_effect(const Model& model) {
    if (model.config().kind != IoKind::continuous)
        throw std::invalid_argument("EffectRunner: the model is a generator, not an effect");
}
} // namespace

EffectRunner::EffectRunner(const Model& model, Path path, int streams, int threads)
    : impl_(new Impl(model, path, Device::cpu)) {
    require_effect(model);
    if (path == Path::reference)
        throw std::invalid_argument("EffectRunner: the reference path works on whole sequences only; use step or scan");
    impl_->init_cpu(streams, threads);
}

EffectRunner::EffectRunner(const Model& model, Device device, int streams, int threads,
                           int64_t max_block)
    : impl_(new Impl(model, Path::scan, device)) {
    require_effect(model);
    if (device == Device::cpu) {
        impl_->init_cpu(streams, threads);
        return;
    }
    require_cuda();
    impl_->streams = streams;
    impl_->n_in = model.config().n_in();
    impl_->init_controls();
#if MW_HAVE_CUDA
    impl_->gpu = kernels::cuda::make_forward(model.view(), max_block, streams);
    impl_->max_block = max_block;
    impl_->gpu_x = kernels::cuda::PinnedFloats(size_t(streams) * size_t(max_block));
    impl_->gpu_y = kernels::cuda::PinnedFloats(size_t(streams) * size_t(max_block));
#endif
}

EffectRunner::~EffectRunner() = default;

void EffectRunner::set_controls(const float* values) {
    const auto& specs = impl_->model.config().controls;
    for (size_t i = 0; i < specs.size(); ++i) impl_->controls[i] = specs[i].normalise(values[i]);
}

void EffectRunner::reset() {
#if MW_HAVE_CUDA
    if (impl_->gpu) return kernels::cuda::reset(*impl_->gpu);
#endif
    kernels::reset_state(*impl_->state);
    for (kernels::StepStatePtr& st : impl_->stream_states) kernels::reset_state(*st);
}

// The streams as one batch: audio [S][n] -> y [S][n] through page-locked buffers (blocks of
// up to max_block frames); the controls go once per call and the GPU builds the rows. The
// GPU's state carries between calls.
void EffectRunner::Impl::process_cuda(const float* const* in, float* const* out, int64_t n) {
#if MW_HAVE_CUDA
    for (int64_t off = 0; off < n; off += max_block) {
        const int64_t m = std::min(max_block, n - off);
        for (int c = 0; c < streams; ++c) std::copy_n(in[c] + off, m, gpu_x.data() + int64_t(c) * m);
        kernels::cuda::forward_effect(*gpu, gpu_x.data(), controls.data(), m, gpu_y.data());
        for (int c = 0; c < streams; ++c) std::copy_n(gpu_y.data() + int64_t(c) * m, m, out[c] + off);
    }
#endif
}

void EffectRunner::process(const float* const* in, float* const* out, int64_t n) {
    Impl& s = *impl_;
    if (s.device == Device::cuda) return s.process_cuda(in, out, n);
    const int I = s.n_in;
    auto fill = [&](float* row, float sample) {
        row[0] = sample;
        std::copy(s.controls.begin(), s.controls.end(), row + 1);
    };
    if (s.path == Path::step) {
        s.x.resize(size_t(s.streams) * I);
        s.y.resize(size_t(s.streams));
        for (int64_t t = 0; t < n; ++t) {
            for (int c = 0; c < s.streams; ++c) fill(&s.x[size_t(c) * I], in[c][t]);
            kernels::step_continuous(*s.prepared, *s.state, s.x.data(), s.y.data());
            for (int c = 0; c < s.streams; ++c) out[c][t] = s.y[size_t(c)];
        }
        return;
    }
    if (!s.stream_states.empty()) {
        const int threads = std::min(s.streams, s.pool->size());
        s.pool->run(threads, [&](int p) {
            for (int c = p; c < s.streams; c += threads) {
                std::vector<float>& x = s.stream_x[size_t(c)];
                x.resize(size_t(n) * I);
                for (int64_t t = 0; t < n; ++t) fill(&x[size_t(t) * I], in[c][t]);
                kernels::scan_continuous(*s.prepared, *s.stream_states[size_t(c)], 0, x.data(), n, out[c], nullptr);
            }
        });
        return;
    }
    s.x.resize(size_t(n) * I);
    for (int c = 0; c < s.streams; ++c) {
        for (int64_t t = 0; t < n; ++t) fill(&s.x[size_t(t) * I], in[c][t]);
        kernels::scan_continuous(*s.prepared, *s.state, c, s.x.data(), n, out[c], s.pool.get());
    }
}

// ---- GeneratorRunner ------------------------------------------------------------------------

namespace {
// A generator's weights in the step's layout, made once and shared by every group of streams
// (StreamGroups below): a pooled model's stacks (model/pooled.h), or the flat kernels' model.
struct StepWeights {
    std::shared_ptr<const pooled::Prepared> pooled;
    std::shared_ptr<const kernels::PreparedModel> flat;
    explicit StepWeights(const Model& model) {
        if (model.config().pooled()) pooled = pooled::prepare(model);
        else flat = kernels::prepare_model(model.view());
    }
};

// S streams of a generator on the CPU, stepped together: a pooled model's stepper
// (model/pooled.h: every class through its step), or the prepared model and the streams' state
// for the kernels' step and scan.
struct TokenStreams {
    std::unique_ptr<pooled::Stepper> pooled;
    std::shared_ptr<const kernels::PreparedModel> prepared;
    kernels::StepStatePtr state;

    TokenStreams(const StepWeights& w, int streams) {
        if (w.pooled) {
            pooled = std::make_unique<pooled::Stepper>(w.pooled, streams);
        } else {
            prepared = w.flat;
            state = kernels::make_state(*prepared, streams);
        }
    }
    TokenStreams(const Model& model, int streams) : TokenStreams(StepWeights(model), streams) {}
    // fed [S] classes in, logits [S][V] out.
    void step(const int32_t* fed, float* logits) {
        if (pooled) pooled->step(fed, logits);
        else kernels::step_tokens(*prepared, *state, fed, logits);
    }
    // A flat model's prime on stream 0: tokens [L] but the last through the scan, in segments
    // (bounded memory); the last one is for the caller to step.
    void scan_all_but_last(const int32_t* tokens, int64_t L, int vocab, kernels::ThreadPool* pool) {
        const int64_t segment = 1 << 14;
        std::vector<float> scratch(size_t(std::min<int64_t>(segment, L)) * size_t(vocab));
        for (int64_t t0 = 0; t0 < L - 1; t0 += segment) {
            const int64_t n = std::min(segment, L - 1 - t0);
            kernels::scan_tokens(*prepared, *state, 0, tokens + t0, n, scratch.data(), pool);
        }
    }
};

// Units (a stream, or a guided clip's streams) of a generator split into one group per thread,
// each group its own TokenStreams over the shared weights, so that the threads step their
// streams side by side without waiting on one another sample by sample. The kernels step each
// stream alone (the same floats whatever the streams beside it), so the split changes no class.
struct StreamGroups {
    int unit_streams = 1;
    std::vector<TokenStreams> groups;
    std::vector<int> first;  // [groups + 1]: group g holds units first[g] .. first[g+1]-1

    StreamGroups(const Model& model, int units, int unit_streams_, int threads) : unit_streams(unit_streams_) {
        const StepWeights w(model);
        const int G = std::max(1, std::min(threads, units));
        for (int g = 0; g <= G; ++g) first.push_back(int(int64_t(units) * g / G));
        for (int g = 0; g < G; ++g) groups.emplace_back(w, (first[size_t(g) + 1] - first[size_t(g)]) * unit_streams);
    }
    int size() const { return int(groups.size()); }
    // fn(group, its TokenStreams, its first unit, one past its last), the groups on the pool's threads.
    template <class F>
    void run(kernels::ThreadPool& pool, F&& fn) {
        pool.run(size(), [&](int g) { fn(g, groups[size_t(g)], first[size_t(g)], first[size_t(g) + 1]); });
    }
    // Every stream `steps` steps, each group through all of them on its own thread: stream i is
    // fed token(t, i) at step t (into fed [S]), logits [S][V] out after the last (S = units ·
    // unit_streams).
    template <class Token>
    void feed(kernels::ThreadPool& pool, int64_t steps, int32_t* fed, float* logits, int vocab, Token&& token) {
        run(pool, [&](int, TokenStreams& ts, int u0, int u1) {
            const int64_t s0 = int64_t(u0) * unit_streams, s1 = int64_t(u1) * unit_streams;
            for (int64_t t = 0; t < steps; ++t) {
                for (int64_t i = s0; i < s1; ++i) fed[i] = token(t, i);
                ts.step(fed + s0, logits + s0 * vocab);
            }
        });
    }
};

// One sampler per stream (or clip), k seeded params.seed + k.
std::vector<Sampler> seeded_samplers(const SamplerParams& params, int n, int vocab) {
    std::vector<Sampler> out;
    out.reserve(size_t(n));
    for (int k = 0; k < n; ++k) {
        SamplerParams p = params;
        p.seed = params.seed + uint64_t(k);
        out.emplace_back(p, vocab);
    }
    return out;
}
} // namespace

struct GeneratorRunner::Impl {
    TokenStreams cpu;
    std::unique_ptr<kernels::ThreadPool> pool;  // a flat model's prime scan
    Sampler sampler;
    int vocab;
    std::vector<float> logits;  // [V] the logits after the last fed token
    bool primed = false;
};

GeneratorRunner::GeneratorRunner(const Model& model, SamplerParams params, int threads) {
    if (model.config().kind != IoKind::mulaw8)
        throw std::invalid_argument("GeneratorRunner: the model is an effect, not a generator");
    const int V = model.config().vocab;
    impl_.reset(new Impl{TokenStreams(model, 1), model.config().pooled() ? nullptr : make_pool(threads),
                         Sampler(params, V), V, std::vector<float>(size_t(V), 0.0f), false});
}

GeneratorRunner::~GeneratorRunner() = default;

void GeneratorRunner::prime(const int32_t* tokens, int64_t L) {
    if (L <= 0) return;
    Impl& s = *impl_;
    if (s.cpu.pooled) {
        for (int64_t t = 0; t < L; ++t) s.cpu.step(tokens + t, s.logits.data());
        s.primed = true;
        return;
    }
    s.cpu.scan_all_but_last(tokens, L, s.vocab, s.pool.get());
    s.cpu.step(tokens + L - 1, s.logits.data());
    s.primed = true;
}

int32_t GeneratorRunner::next() {
    Impl& s = *impl_;
    if (!s.primed) {
        prime(&kSilenceClass, 1);
    }
    const int32_t token = s.sampler.sample(s.logits.data());
    s.cpu.step(&token, s.logits.data());
    return token;
}

// ---- BatchGenerator -------------------------------------------------------------------------

struct BatchGenerator::Impl {
    Device device = Device::cpu;
    int streams = 0;
    int vocab = 0;
    SamplerParams params;
    // cpu: the streams in a group per thread
    std::unique_ptr<StreamGroups> cpu;
    std::unique_ptr<kernels::ThreadPool> pool;
    std::vector<Sampler> samplers;  // [S]
    std::vector<float> logits;      // [S][V] after the last fed classes
    std::vector<int32_t> fed;       // [S]
    bool primed = false;
#if MW_HAVE_CUDA
    // cuda
    kernels::cuda::StepperPtr gpu;
    std::vector<int32_t> prime_tokens;  // fed with the first generate()
#endif

    void prime_cpu(const int32_t* tokens, int64_t L);
};

BatchGenerator::BatchGenerator(const Model& model, Device device, int streams, SamplerParams params,
                               int threads)
    : impl_(new Impl) {
    if (model.config().kind != IoKind::mulaw8)
        throw std::invalid_argument("BatchGenerator: the model is an effect, not a generator");
    if (streams < 1 || streams > kMaxStreams)
        throw std::invalid_argument("BatchGenerator: " + std::to_string(streams) + " streams, expected 1.." +
                                    std::to_string(kMaxStreams));
    Impl& s = *impl_;
    s.device = device;
    s.streams = streams;
    s.vocab = model.config().vocab;
    s.params = params;
    if (device == Device::cuda) {
        if (model.config().pooled())
            throw std::invalid_argument("BatchGenerator: pooled models run on the CPU only so far (--device cpu; "
                                        "docs/POOLED.md)");
        require_cuda();
#if MW_HAVE_CUDA
        s.gpu = kernels::cuda::make_stepper(model.view(), streams);
#endif
        return;
    }
    s.pool = make_pool(threads);
    s.cpu = std::make_unique<StreamGroups>(model, streams, 1, s.pool->size());
    s.samplers = seeded_samplers(params, streams, s.vocab);
    s.logits.assign(size_t(streams) * size_t(s.vocab), 0.0f);
    s.fed.assign(size_t(streams), 0);
}

BatchGenerator::~BatchGenerator() = default;

int BatchGenerator::streams() const { return impl_->streams; }
Device BatchGenerator::device() const { return impl_->device; }

// As GeneratorRunner::prime on stream 0 (scan all but the last class, in the same segments),
// the state copied to the other streams, then one step of all streams with the last class.
void BatchGenerator::Impl::prime_cpu(const int32_t* tokens, int64_t L) {
    if (cpu->groups[0].pooled) {  // every stream steps through the prime (the step has no scan to share)
        cpu->feed(*pool, L, fed.data(), logits.data(), vocab, [&](int64_t t, int64_t) { return tokens[t]; });
        primed = true;
        return;
    }
    TokenStreams& lead = cpu->groups[0];
    lead.scan_all_but_last(tokens, L, vocab, pool.get());
    kernels::StepState& primed_state = *lead.state;
    const int64_t floats = kernels::stream_state_floats(primed_state);
    for (TokenStreams& ts : cpu->groups)
        for (int k = 0; k < kernels::stream_count(*ts.state); ++k)
            if (&ts != &lead || k > 0)
                std::copy_n(kernels::stream_state(primed_state, 0), floats, kernels::stream_state(*ts.state, k));
    cpu->feed(*pool, 1, fed.data(), logits.data(), vocab, [&](int64_t, int64_t) { return tokens[L - 1]; });
    primed = true;
}

void BatchGenerator::prime(const int32_t* tokens, int64_t L) {
    if (L <= 0) return;
    Impl& s = *impl_;
#if MW_HAVE_CUDA
    if (s.gpu) {
        s.prime_tokens.assign(tokens, tokens + L);
        return;
    }
#endif
    s.prime_cpu(tokens, L);
}

void BatchGenerator::generate(int64_t n, int32_t* out) {
    Impl& s = *impl_;
    if (n <= 0) return;
#if MW_HAVE_CUDA
    if (s.gpu) {
        kernels::cuda::GenerateParams g;
        g.prime = s.prime_tokens.empty() ? nullptr : s.prime_tokens.data();
        g.prime_len = int64_t(s.prime_tokens.size());
        g.shared_prime = true;
        g.n_steps = n;
        g.temperature = std::max(0.0f, s.params.temperature);
        g.top_p = std::clamp(s.params.top_p, 1e-6f, 1.0f);
        g.seed = s.params.seed;
        kernels::cuda::generate_tokens(*s.gpu, g, out);
        s.prime_tokens.clear();  // fed; later calls continue from the pending classes
        return;
    }
#endif
    if (!s.primed) {
        s.prime_cpu(&kSilenceClass, 1);
    }
    // each group's streams through all n samples on its own thread
    s.cpu->run(*s.pool, [&](int, TokenStreams& ts, int k0, int k1) {
        float* logits = s.logits.data() + int64_t(k0) * s.vocab;
        for (int64_t t = 0; t < n; ++t) {
            for (int k = k0; k < k1; ++k) {
                const int32_t c = s.samplers[size_t(k)].sample(&s.logits[size_t(k) * size_t(s.vocab)]);
                s.fed[size_t(k)] = c;
                out[size_t(k) * size_t(n) + size_t(t)] = c;
            }
            ts.step(s.fed.data() + k0, logits);
        }
    });
}

// ---- GuidedGenerator ----------------------------------------------------------------------

struct GuidedGenerator::Impl {
    int clips = 0, per_clip = 0, vocab = 0;
    std::vector<int> own;           // [clips]: the stream a clip draws from, its asked label's
    GuidanceContrast contrast = GuidanceContrast::labels;
    float guidance = 0;
    std::unique_ptr<kernels::ThreadPool> pool;
    std::unique_ptr<StreamGroups> cpu;  // whole clips in a group per thread
    std::vector<Sampler> samplers;  // [clips]
    std::vector<float> logits;      // [clips][per_clip][V] after the last fed classes
    std::vector<std::vector<float>> lp;      // [groups][per_clip][V] a clip's log-softmaxes
    std::vector<std::vector<float>> guided;  // [groups][V]
    std::vector<int32_t> fed;       // [clips][per_clip]

    template <class Token>
    void feed(int64_t steps, Token&& token) { cpu->feed(*pool, steps, fed.data(), logits.data(), vocab, token); }
    const float* lane(int c, int k) const { return &logits[(size_t(c) * size_t(per_clip) + size_t(k)) * size_t(vocab)]; }
};

int GuidedGenerator::streams_per_clip(const ModelConfig& c, GuidanceContrast contrast) {
    return contrast == GuidanceContrast::null_label ? 2 : int(c.labels.size());
}

GuidedGenerator::GuidedGenerator(const Model& model, int clips, int label, float guidance, SamplerParams params,
                                 GuidanceContrast contrast, int threads)
    : GuidedGenerator(model, std::vector<int>(size_t(std::max(clips, 0)), label), guidance, params, contrast,
                      threads) {}

GuidedGenerator::GuidedGenerator(const Model& model, const std::vector<int>& labels, float guidance,
                                 SamplerParams params, GuidanceContrast contrast, int threads)
    : impl_(new Impl) {
    const ModelConfig& cfg = model.config();
    if (cfg.kind != IoKind::mulaw8 || !cfg.labelled())
        throw std::invalid_argument("GuidedGenerator: the model has no labels (train it with --label-prefix)");
    if (contrast == GuidanceContrast::null_label && !cfg.label_null)
        throw std::invalid_argument("GuidedGenerator: guidance against the null label, but the model has none "
                                    "(train it with --label-dropout)");
    const int K = int(cfg.labels.size());
    for (int label : labels)
        if (label < 0 || label >= K)
            throw std::invalid_argument("GuidedGenerator: label " + std::to_string(label) + ", expected 0.." +
                                        std::to_string(K - 1));
    const int clips = int(labels.size());
    const int per_clip = streams_per_clip(cfg, contrast);
    if (clips < 1 || int64_t(clips) * per_clip > BatchGenerator::kMaxStreams)
        throw std::invalid_argument("GuidedGenerator: " + std::to_string(clips) + " clips of " + std::to_string(per_clip) +
                                    " streams, expected at most " + std::to_string(BatchGenerator::kMaxStreams) + " streams");
    if (!(guidance >= 0.0f) || !std::isfinite(guidance))
        throw std::invalid_argument("GuidedGenerator: guidance " + std::to_string(guidance) + ", expected >= 0");
    Impl& s = *impl_;
    s.clips = clips;
    s.per_clip = per_clip;
    s.contrast = contrast;
    for (int label : labels) s.own.push_back(contrast == GuidanceContrast::null_label ? 0 : label);
    s.vocab = cfg.vocab;
    s.guidance = guidance;
    const int S = clips * per_clip;
    s.pool = make_pool(threads);
    s.cpu = std::make_unique<StreamGroups>(model, clips, per_clip, s.pool->size());
    s.samplers = seeded_samplers(params, clips, s.vocab);
    s.logits.assign(size_t(S) * size_t(s.vocab), 0.0f);
    s.lp.assign(size_t(s.cpu->size()), std::vector<float>(size_t(per_clip) * size_t(s.vocab), 0.0f));
    s.guided.assign(size_t(s.cpu->size()), std::vector<float>(size_t(s.vocab), 0.0f));
    s.fed.assign(size_t(S), 0);
    // every clip's stream k primed with its label's prefix: label k's, or [asked, null]
    s.feed(cfg.label_prefix, [&](int64_t, int64_t i) {
        const int k = int(i % per_clip);
        const int asked = labels[size_t(i / per_clip)];
        return ModelConfig::label_token(contrast == GuidanceContrast::null_label ? (k == 0 ? asked : cfg.null_label()) : k);
    });
}

GuidedGenerator::~GuidedGenerator() = default;

void GuidedGenerator::prime(const int32_t* tokens, int64_t L) {
    impl_->feed(L, [&](int64_t t, int64_t) { return tokens[t]; });
}

void GuidedGenerator::generate(int64_t n, int32_t* out) {
    Impl& s = *impl_;
    const int K = s.per_clip, V = s.vocab;
    // each group's clips through all n samples on its own thread
    s.cpu->run(*s.pool, [&](int g, TokenStreams& ts, int c0, int c1) {
        float* const guided = s.guided[size_t(g)].data();
        float* const lp = s.lp[size_t(g)].data();
        for (int64_t t = 0; t < n; ++t) {
            for (int c = c0; c < c1; ++c) {
                int32_t x;
                if (s.guidance == 0.0f) {
                    x = s.samplers[size_t(c)].sample(s.lane(c, s.own[size_t(c)]));
                } else if (s.contrast == GuidanceContrast::null_label) {  // (no log-softmax needed)
                    null_guidance_logits(s.lane(c, 0), s.lane(c, 1), V, s.guidance, guided);
                    x = s.samplers[size_t(c)].sample(guided);
                } else {
                    for (int k = 0; k < K; ++k) log_softmax(s.lane(c, k), V, lp + size_t(k) * size_t(V));
                    label_guidance_logits(lp, K, V, s.own[size_t(c)], s.guidance, guided);
                    x = s.samplers[size_t(c)].sample(guided);
                }
                for (int k = 0; k < K; ++k) s.fed[size_t(c) * size_t(K) + size_t(k)] = x;
                out[size_t(c) * size_t(n) + size_t(t)] = x;
            }
            const int64_t s0 = int64_t(c0) * K;
            ts.step(s.fed.data() + s0, s.logits.data() + s0 * V);
        }
    });
}

} // namespace mw
