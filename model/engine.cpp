#include "model/engine.h"

#include "kernels/reference.h"
#include "kernels/thread_pool.h"

#include <algorithm>
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

namespace {
std::unique_ptr<kernels::ThreadPool> make_pool(int threads) {
    return std::make_unique<kernels::ThreadPool>(threads);
}
} // namespace

void forward_tokens(const Model& model, Path path, const int32_t* tokens, int64_t L,
                    float* logits, int threads) {
    const kernels::ModelView& m = model.view();
    if (m.head != kernels::HeadKind::tokens)
        throw std::invalid_argument("forward_tokens: the model is not a generator (mulaw8)");
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

void forward_continuous(const Model& model, Path path, const float* x, int64_t L, float* y,
                        int threads) {
    const kernels::ModelView& m = model.view();
    if (m.head != kernels::HeadKind::continuous)
        throw std::invalid_argument("forward_continuous: the model is not an effect (continuous)");
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

// ---- EffectRunner ---------------------------------------------------------------------------

struct EffectRunner::Impl {
    const Model& model;
    Path path;
    int streams;
    int n_in;
    kernels::PreparedModelPtr prepared;
    kernels::StepStatePtr state;
    std::unique_ptr<kernels::ThreadPool> pool;
    std::vector<float> controls;  // normalised, [n_cond]
    std::vector<float> x;         // [segment][I] or [S][I]
    std::vector<float> y;         // [segment] or [S]
};

EffectRunner::EffectRunner(const Model& model, Path path, int streams, int threads)
    : impl_(new Impl{model, path, streams, model.config().n_in(), nullptr, nullptr, nullptr, {}, {}, {}}) {
    if (model.config().kind != IoKind::continuous)
        throw std::invalid_argument("EffectRunner: the model is a generator, not an effect");
    if (path == Path::reference)
        throw std::invalid_argument("EffectRunner: the reference path works on whole sequences only; use step or scan");
    impl_->prepared = kernels::prepare_model(model.view());
    impl_->state = kernels::make_state(*impl_->prepared, streams);
    if (path == Path::scan) impl_->pool = make_pool(threads);
    impl_->controls.assign(size_t(model.config().n_cond()), 0.0f);
    const auto& specs = model.config().controls;
    for (size_t i = 0; i < specs.size(); ++i) impl_->controls[i] = specs[i].normalise(specs[i].default_value);
}

EffectRunner::~EffectRunner() = default;

void EffectRunner::set_controls(const float* values) {
    const auto& specs = impl_->model.config().controls;
    for (size_t i = 0; i < specs.size(); ++i) impl_->controls[i] = specs[i].normalise(values[i]);
}

void EffectRunner::reset() { kernels::reset_state(*impl_->state); }

void EffectRunner::process(const float* const* in, float* const* out, int64_t n) {
    Impl& s = *impl_;
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
    s.x.resize(size_t(n) * I);
    for (int c = 0; c < s.streams; ++c) {
        for (int64_t t = 0; t < n; ++t) fill(&s.x[size_t(t) * I], in[c][t]);
        kernels::scan_continuous(*s.prepared, *s.state, c, s.x.data(), n, out[c], s.pool.get());
    }
}

// ---- GeneratorRunner ------------------------------------------------------------------------

struct GeneratorRunner::Impl {
    kernels::PreparedModelPtr prepared;
    kernels::StepStatePtr state;
    std::unique_ptr<kernels::ThreadPool> pool;
    Sampler sampler;
    int vocab;
    std::vector<float> logits;  // [V] the logits after the last fed token
    bool primed = false;
};

GeneratorRunner::GeneratorRunner(const Model& model, SamplerParams params, int threads)
    : impl_(new Impl{nullptr, nullptr, nullptr, Sampler(params, model.config().vocab),
                     model.config().vocab, {}, false}) {
    if (model.config().kind != IoKind::mulaw8)
        throw std::invalid_argument("GeneratorRunner: the model is an effect, not a generator");
    impl_->prepared = kernels::prepare_model(model.view());
    impl_->state = kernels::make_state(*impl_->prepared, 1);
    impl_->pool = make_pool(threads);
    impl_->logits.assign(size_t(impl_->vocab), 0.0f);
}

GeneratorRunner::~GeneratorRunner() = default;

void GeneratorRunner::prime(const int32_t* tokens, int64_t L) {
    if (L <= 0) return;
    Impl& s = *impl_;
    // Scan all but the last token in segments (bounded memory), step the last one.
    const int64_t segment = 1 << 14;
    std::vector<float> scratch(size_t(std::min<int64_t>(segment, L)) * s.vocab);
    for (int64_t t0 = 0; t0 < L - 1; t0 += segment) {
        const int64_t n = std::min(segment, L - 1 - t0);
        kernels::scan_tokens(*s.prepared, *s.state, 0, tokens + t0, n, scratch.data(), s.pool.get());
    }
    kernels::step_tokens(*s.prepared, *s.state, tokens + L - 1, s.logits.data());
    s.primed = true;
}

int32_t GeneratorRunner::next() {
    Impl& s = *impl_;
    if (!s.primed) {
        const int32_t silence = 128;
        prime(&silence, 1);
    }
    const int32_t token = s.sampler.sample(s.logits.data());
    kernels::step_tokens(*s.prepared, *s.state, &token, s.logits.data());
    return token;
}

} // namespace mw
