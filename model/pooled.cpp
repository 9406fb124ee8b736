// A pooled generator on the CPU: the float64 reference, the forward over a sequence, the step
// and the training tape, each a composition of the kernels' stacks of layers alone
// (kernels::HeadKind::hidden) and the pools between them (pooled.h gives the equations).
#include "model/pooled.h"

#include "kernels/backward.h"
#include "kernels/reference.h"
#include "kernels/thread_pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mw::pooled {
namespace {

// A pool's tensors, with the transposes the float paths read along their rows.
struct PoolW {
    int Di = 0, Dn = 0, p = 0;                  // level i's width, level i+1's, the factor
    std::vector<float> down_w, down_b;           // [Dn][p·Di], [Dn]
    std::vector<float> up_w, up_b;               // [p·Di][Dn], [p·Di]
    std::vector<float> down_T, up_T;             // [p·Di][Dn], [Dn][p·Di]
};

std::vector<PoolW> pool_weights(const Model& m) {
    const ModelConfig& c = m.config();
    std::vector<PoolW> pools;
    for (size_t i = 0; i < c.pool.size(); ++i) {
        PoolW w;
        w.Di = c.level_dims(int(i)).d_model;
        w.Dn = c.level_dims(int(i) + 1).d_model;
        w.p = c.pool[i];
        const int64_t F = int64_t(w.p) * w.Di;  // a frame's floats
        const std::string n = "backbone.pools." + std::to_string(i) + ".";
        auto copy = [&](const char* name, int64_t count) {
            const float* src = m.tensor(n + name);
            return std::vector<float>(src, src + count);
        };
        w.down_w = copy("down.weight", w.Dn * F);
        w.down_b = copy("down.bias", w.Dn);
        w.up_w = copy("up.weight", F * w.Dn);
        w.up_b = copy("up.bias", F);
        w.down_T.resize(size_t(F * w.Dn));
        w.up_T.resize(size_t(w.Dn * F));
        for (int64_t o = 0; o < w.Dn; ++o)
            for (int64_t k = 0; k < F; ++k) {
                w.down_T[size_t(k * w.Dn + o)] = w.down_w[size_t(o * F + k)];
                w.up_T[size_t(o * F + k)] = w.up_w[size_t(k * w.Dn + o)];
            }
        pools.push_back(std::move(w));
    }
    return pools;
}

// out [Dn] = b↓ + W↓ · frame      frame: p rows of Di, contiguous
void pool_down(const PoolW& w, const float* frame, float* out) {
    std::copy(w.down_b.begin(), w.down_b.end(), out);
    kernels::add_matvec_T(w.down_T.data(), frame, w.p * w.Di, w.Dn, out);
}

// out [p·Di] = b↑ + W↑ · h        h: one row of level i+1
void pool_up(const PoolW& w, const float* h, float* out) {
    std::copy(w.up_b.begin(), w.up_b.end(), out);
    kernels::add_matvec_T(w.up_T.data(), h, w.Dn, w.p * w.Di, out);
}

// x [frames][Dn] = b↓ + W↓ · frame k of level i's rows a (whole frames only).
void pool_down_frames(const PoolW& w, const float* a, int64_t frames, float* x) {
    for (int64_t k = 0; k < frames; ++k) pool_down(w, a + k * w.p * w.Di, x + k * w.Dn);
}

// Level i's up stack input u [n][Di] = a + the rows the level above adds in: frame 0 gets
// `carried` (null: zero), frame k+1 gets b↑ + W↑ · h[k] for each of level i+1's `frames` rows h.
// The last of those (the rows the frame after this pass adds in) also go to `next` (null: not
// wanted; it may be `carried`). v: scratch of p·Di floats.
void up_merge(const PoolW& w, const float* a, int64_t n, const float* h, int64_t frames, const float* carried,
              float* u, float* v, float* next) {
    const int64_t F = int64_t(w.p) * w.Di, rows = n * w.Di;
    std::copy(a, a + rows, u);
    for (int64_t r = 0; carried && r < F && r < rows; ++r) u[r] += carried[r];
    for (int64_t k = 0; k < frames; ++k) {  // frame k's rows go into frame k+1
        pool_up(w, h + k * w.Dn, v);
        for (int64_t r = 0; r < F && (k + 1) * F + r < rows; ++r) u[(k + 1) * F + r] += v[r];
        if (next && k + 1 == frames) std::copy(v, v + F, next);
    }
}

// Where each stack's layers keep their state inside a stream state, and where each pool's rows are.
struct StateLayout {
    std::vector<int64_t> stack_offset;  // [stacks]
    std::vector<int64_t> queue_offset;  // [pools]
    int64_t total = 0;
};

StateLayout state_layout(const ModelConfig& c) {
    StateLayout s;
    int64_t off = 0;
    for (int st = 0; st < c.stacks(); ++st) {
        s.stack_offset.push_back(off);
        const kernels::Dims d = c.level_dims(c.stack_level(st));
        off += int64_t(d.n_layers) * d.d_inner * (d.d_conv - 1 + d.d_state);
    }
    for (size_t i = 0; i < c.pool.size(); ++i) {
        s.queue_offset.push_back(off);
        off += int64_t(c.pool[i]) * c.level_dims(int(i)).d_model;
    }
    s.total = off;
    return s;
}

// Lengths of the levels: L, then whole frames of the level above.
std::vector<int64_t> level_lengths(const ModelConfig& c, int64_t L) {
    std::vector<int64_t> n{L};
    for (int p : c.pool) n.push_back(n.back() / p);
    return n;
}

void require_pooled(const Model& m, const char* who) {
    if (!m.config().pooled())
        throw std::invalid_argument(std::string(who) + ": the model is not pooled (config field 'pool' is empty)");
}

// A state carried in is one at a period's end (the caller's to keep); a state out needs whole
// periods, since a frame still being gathered is not part of it.
void check_length(const ModelConfig& c, int64_t L, bool with_state_out, const char* who) {
    if (L < 1) throw std::invalid_argument(std::string(who) + ": sequence length must be >= 1");
    if (with_state_out && L % c.pool_period() != 0)
        throw std::invalid_argument(std::string(who) + ": with a state carried out, the length (" +
                                    std::to_string(L) + ") must be a multiple of the pooling period " +
                                    std::to_string(c.pool_period()));
}

} // namespace

std::vector<kernels::ModelGrad> stack_grads(Model& grads, std::vector<kernels::LayerGrad>& layers) {
    const ModelConfig& c = grads.config();
    require_pooled(grads, "pooled::stack_grads");
    const kernels::ModelGrad all = grads.as_gradient(layers);
    std::vector<kernels::ModelGrad> out(size_t(c.stacks()));
    for (int s = 0; s < c.stacks(); ++s) {
        out[size_t(s)].layers = layers.data() + s * c.stack_layers();
        if (s + 1 == c.stacks()) {  // the top stack: norm_f and the head (tied: into the embeddings)
            out[size_t(s)].norm_f_w = all.norm_f_w;
            out[size_t(s)].embed_w = all.embed_w;
            out[size_t(s)].lm_head_w = all.lm_head_w;
        }
    }
    return out;
}

int64_t periods_segment(const Model& m, int64_t L, int64_t segment) {
    if (!m.config().pooled()) throw std::invalid_argument("forward_in_periods: the model is not pooled");
    if (segment < 1) throw std::invalid_argument("forward_in_periods: segment " + std::to_string(segment) + " is not positive");
    return m.config().whole_periods(std::clamp<int64_t>(L, 1, segment));
}

void forward_in_periods(const Model& m, const int32_t* tokens, int64_t L, float* logits, int64_t segment,
                        const SegmentForward& segment_forward) {
    const int64_t seg = periods_segment(m, L, segment);
    const int V = m.config().vocab;
    const size_t S = size_t(m.state_floats_per_stream());
    std::vector<float> state(S, 0.0f), next(S);
    std::vector<int32_t> in(size_t(seg), kSilenceClass);
    std::vector<float> out(size_t(seg) * size_t(V));
    for (int64_t t0 = 0; t0 < L; t0 += seg) {
        const int64_t n = std::min(seg, L - t0), padded = m.config().whole_periods(n);
        std::copy(tokens + t0, tokens + t0 + n, in.begin());
        std::fill(in.begin() + n, in.begin() + padded, kSilenceClass);
        segment_forward(in.data(), padded, state.data(), out.data(), next.data());
        std::copy(out.begin(), out.begin() + n * V, logits + t0 * V);
        state.swap(next);
    }
}

kernels::cuda::PooledView cuda_view(const Model& m) {
    require_pooled(m, "pooled::cuda_view");
    const ModelConfig& c = m.config();
    kernels::cuda::PooledView v;
    for (int s = 0; s < c.stacks(); ++s) v.stacks.push_back(m.stack_view(s));
    for (size_t i = 0; i < c.pool.size(); ++i) {
        kernels::cuda::PoolView p;
        p.factor = c.pool[i];
        p.d_in = c.level_dims(int(i)).d_model;
        p.d_out = c.level_dims(int(i) + 1).d_model;
        const std::string n = "backbone.pools." + std::to_string(i) + ".";
        p.down_w = m.tensor(n + "down.weight");
        p.down_b = m.tensor(n + "down.bias");
        p.up_w = m.tensor(n + "up.weight");
        p.up_b = m.tensor(n + "up.bias");
        v.pools.push_back(p);
    }
    return v;
}

kernels::cuda::PooledGrad cuda_grad(Model& grads, std::vector<kernels::LayerGrad>& layers) {
    kernels::cuda::PooledGrad g;
    g.stacks = stack_grads(grads, layers);
    for (size_t i = 0; i < grads.config().pool.size(); ++i) {
        const std::string n = "backbone.pools." + std::to_string(i) + ".";
        g.pools.push_back({grads.tensor(n + "down.weight"), grads.tensor(n + "down.bias"), grads.tensor(n + "up.weight"),
                           grads.tensor(n + "up.bias")});
    }
    return g;
}

// ---- the float64 reference ---------------------------------------------------------------------

void reference_forward_tokens_f64(const Model& m, const int32_t* tokens, int64_t L, const double* state_in,
                                  double* logits, double* state_out) {
    require_pooled(m, "pooled::reference_forward_tokens_f64");
    const ModelConfig& c = m.config();
    check_length(c, L, state_out != nullptr, "pooled::reference_forward_tokens_f64");
    const int P = int(c.pool.size()), V = c.vocab;
    const StateLayout lay = state_layout(c);
    const std::vector<int64_t> Ln = level_lengths(c, L);
    auto D = [&](int level) { return c.level_dims(level).d_model; };
    auto sin = [&](int64_t off) { return state_in ? state_in + off : nullptr; };
    auto sout = [&](int64_t off) { return state_out ? state_out + off : nullptr; };
    auto stack = [&](int s, const std::vector<double>& in, int64_t n, std::vector<double>& out) {
        out.resize(in.size());
        kernels::reference_stack_f64(m.stack_view(s), in.data(), n, sin(lay.stack_offset[size_t(s)]), out.data(),
                                     sout(lay.stack_offset[size_t(s)]));
    };

    // x_0 = embeddings[token]
    const float* embed = m.tensor("backbone.embeddings.weight");
    std::vector<double> x(size_t(L * D(0)));
    for (int64_t t = 0; t < L; ++t)
        for (int d = 0; d < D(0); ++d) x[size_t(t * D(0) + d)] = embed[int64_t(tokens[t]) * D(0) + d];
    // down: a_i = down_i(x_i);  x_{i+1}[k] = W↓ · frame k of a_i + b↓
    std::vector<std::vector<double>> a(static_cast<size_t>(P));
    for (int i = 0; i < P; ++i) {
        stack(i, x, Ln[size_t(i)], a[size_t(i)]);
        const int Di = D(i), Dn = D(i + 1), p = c.pool[size_t(i)];
        const std::string n = "backbone.pools." + std::to_string(i) + ".";
        const float *W = m.tensor(n + "down.weight"), *b = m.tensor(n + "down.bias");
        std::vector<double> next(size_t(Ln[size_t(i) + 1] * Dn));
        for (int64_t k = 0; k < Ln[size_t(i) + 1]; ++k)
            for (int o = 0; o < Dn; ++o) {
                double acc = b[o];
                for (int j = 0; j < p * Di; ++j) acc += double(W[int64_t(o) * p * Di + j]) * a[size_t(i)][size_t(k * p * Di + j)];
                next[size_t(k * Dn + o)] = acc;
            }
        x = std::move(next);
    }
    // the centre, then up: u_i[t] = a_i[t] + (W↑ · h_{i+1}[t/p − 1] + b↑)[t mod p];  h_i = up_i(u_i)
    std::vector<double> h;
    stack(P, x, Ln[size_t(P)], h);
    for (int i = P - 1; i >= 0; --i) {
        const int Di = D(i), Dn = D(i + 1), p = c.pool[size_t(i)];
        const int64_t F = int64_t(p) * Di;
        const std::string n = "backbone.pools." + std::to_string(i) + ".";
        const float *W = m.tensor(n + "up.weight"), *b = m.tensor(n + "up.bias");
        auto up = [&](int64_t k, std::vector<double>& v) {  // frame k's rows, k = -1: the carried ones
            v.assign(size_t(F), 0.0);
            for (int64_t r = 0; r < F; ++r) {
                if (k < 0) {
                    v[size_t(r)] = state_in ? state_in[lay.queue_offset[size_t(i)] + r] : 0.0;
                    continue;
                }
                double acc = b[r];
                for (int j = 0; j < Dn; ++j) acc += double(W[r * Dn + j]) * h[size_t(k * Dn + j)];
                v[size_t(r)] = acc;
            }
        };
        std::vector<double> u = a[size_t(i)], v;
        for (int64_t k = -1; k + 1 <= Ln[size_t(i) + 1]; ++k) {
            up(k, v);
            for (int64_t r = 0; r < F && (k + 1) * F + r < Ln[size_t(i)] * Di; ++r) u[size_t((k + 1) * F + r)] += v[size_t(r)];
        }
        if (state_out) {  // the rows the next frame adds in: the last whole frame's
            up(Ln[size_t(i) + 1] - 1, v);
            std::copy(v.begin(), v.end(), state_out + lay.queue_offset[size_t(i)]);
        }
        stack(2 * P - i, u, Ln[size_t(i)], h);
    }
    // logits = lm_head · (RMSNorm(h_0) ⊙ norm_f)
    const kernels::ModelView& top = m.stack_view(2 * P);
    for (int64_t t = 0; t < L; ++t) {
        double ms = 0;
        for (int d = 0; d < D(0); ++d) ms += h[size_t(t * D(0) + d)] * h[size_t(t * D(0) + d)];
        const double r = 1.0 / std::sqrt(ms / D(0) + double(c.norm_eps));
        for (int o = 0; o < V; ++o) {
            double acc = 0;
            for (int d = 0; d < D(0); ++d)
                acc += double(top.lm_head_w[int64_t(o) * D(0) + d]) * h[size_t(t * D(0) + d)] * r * double(top.norm_f_w[d]);
            logits[t * V + o] = acc;
        }
    }
}

// ---- the forward over a sequence -----------------------------------------------------------------

struct Forward::Impl {
    ModelConfig config;
    int P = 0, V = 0, D0 = 0;
    int64_t segment = 0;
    bool mid_frame = false;  // the last run ended inside a frame
    std::vector<kernels::PreparedModelPtr> stacks;  // [2P+1]
    std::vector<kernels::StepStatePtr> states;      // [2P+1], one stream each
    std::vector<PoolW> pools;                       // [P]
    std::vector<float> embed;                       // [V][D0]
    // per level, sized for a segment: input rows, down stack's output, up stack's input, up
    // stack's (or the centre's) output; per pool, the rows the next frame adds in
    std::vector<std::vector<float>> x, a, u, h, queue;
    std::vector<float> v;

    // One segment of n samples (a multiple of the period unless it is the last).
    void segment_pass(const int32_t* tokens, int64_t n, float* logits, kernels::ThreadPool* threads) {
        std::vector<int64_t> Ln{n};
        for (int p : config.pool) Ln.push_back(Ln.back() / p);
        for (int64_t t = 0; t < n; ++t)
            std::memcpy(&x[0][size_t(t * D0)], embed.data() + int64_t(tokens[t]) * D0, sizeof(float) * size_t(D0));
        for (int i = 0; i < P; ++i) {
            const PoolW& w = pools[size_t(i)];
            kernels::scan_hidden(*stacks[size_t(i)], *states[size_t(i)], 0, x[size_t(i)].data(), Ln[size_t(i)],
                                 a[size_t(i)].data(), threads);
            pool_down_frames(w, a[size_t(i)].data(), Ln[size_t(i) + 1], x[size_t(i) + 1].data());
        }
        kernels::scan_hidden(*stacks[size_t(P)], *states[size_t(P)], 0, x[size_t(P)].data(), Ln[size_t(P)],
                             h[size_t(P)].data(), threads);
        for (int i = P - 1; i >= 0; --i) {
            float* U = u[size_t(i)].data();
            float* q = queue[size_t(i)].data();  // the rows carried in, then those for the next pass
            up_merge(pools[size_t(i)], a[size_t(i)].data(), Ln[size_t(i)], h[size_t(i) + 1].data(), Ln[size_t(i) + 1], q,
                     U, v.data(), q);
            const int s = 2 * P - i;
            kernels::scan_hidden(*stacks[size_t(s)], *states[size_t(s)], 0, U, Ln[size_t(i)],
                                 i > 0 ? h[size_t(i)].data() : logits, threads);
        }
    }
};

Forward::Forward(const Model& m, int64_t segment) : impl_(std::make_unique<Impl>()) {
    require_pooled(m, "pooled::Forward");
    const ModelConfig& c = m.config();
    if (segment < 1) throw std::invalid_argument("pooled::Forward: segment must be >= 1");
    Impl& d = *impl_;
    d.config = c;
    d.P = int(c.pool.size());
    d.V = c.vocab;
    d.D0 = c.d_model;
    d.segment = c.whole_periods(segment);
    for (int s = 0; s < c.stacks(); ++s) {
        int64_t rows = d.segment;
        for (int i = 0; i < c.stack_level(s); ++i) rows /= c.pool[size_t(i)];
        // (the scan reads floats only: no half-precision copies for the step)
        d.stacks.push_back(kernels::prepare_model(m.stack_view(s), {.half_weights = false}));
        d.states.push_back(kernels::make_state(*d.stacks.back(), 1, int(std::min<int64_t>(1024, rows))));
    }
    d.pools = pool_weights(m);
    const float* e = m.tensor("backbone.embeddings.weight");
    d.embed.assign(e, e + int64_t(d.V) * d.D0);
    int64_t rows = d.segment;
    size_t widest = 0;
    for (int i = 0; i <= d.P; ++i) {
        const size_t n = size_t(rows) * size_t(c.level_dims(i).d_model);
        for (auto* b : {&d.x, &d.a, &d.u, &d.h}) b->emplace_back(n, 0.0f);
        if (i < d.P) {
            const size_t F = size_t(c.pool[size_t(i)]) * size_t(c.level_dims(i).d_model);
            d.queue.emplace_back(F, 0.0f);
            widest = std::max(widest, F);
            rows /= c.pool[size_t(i)];
        }
    }
    d.v.assign(widest, 0.0f);
}

Forward::~Forward() = default;
Forward::Forward(Forward&&) noexcept = default;
Forward& Forward::operator=(Forward&&) noexcept = default;

void Forward::reset() {
    Impl& d = *impl_;
    for (auto& s : d.states) kernels::reset_state(*s);
    for (auto& q : d.queue) std::fill(q.begin(), q.end(), 0.0f);
    d.mid_frame = false;
}

void Forward::run(const int32_t* tokens, int64_t L, float* logits, kernels::ThreadPool* threads) {
    Impl& d = *impl_;
    if (d.mid_frame)
        throw std::logic_error("pooled::Forward::run: the last call ended inside a frame (its length was not a "
                               "multiple of the pooling period): reset() first");
    for (int64_t t = 0; t < L; ++t)
        if (tokens[t] < 0 || tokens[t] >= d.V)
            throw std::invalid_argument("pooled::Forward::run: token " + std::to_string(tokens[t]) + " at position " +
                                        std::to_string(t) + " is outside 0.." + std::to_string(d.V - 1));
    for (int64_t t0 = 0; t0 < L; t0 += d.segment) {
        const int64_t n = std::min(d.segment, L - t0);
        d.segment_pass(tokens + t0, n, logits + t0 * d.V, threads);
    }
    d.mid_frame = L % d.config.pool_period() != 0;
}

void forward_tokens(const Model& m, const int32_t* tokens, int64_t L, float* logits, kernels::ThreadPool* threads) {
    require_pooled(m, "pooled::forward_tokens");
    check_length(m.config(), L, false, "pooled::forward_tokens");
    Forward f(m, std::min<int64_t>(L, 8192));
    f.run(tokens, L, logits, threads);
}

// ---- the step ------------------------------------------------------------------------------------

struct Prepared {
    int P = 0, V = 0, D0 = 0;
    std::vector<int> widths;                        // [P+1] each level's d_model
    std::vector<kernels::PreparedModelPtr> stacks;  // [2P+1]
    std::vector<PoolW> pools;                       // [P]
    std::vector<float> embed;                       // [V][D0]
};

std::shared_ptr<const Prepared> prepare(const Model& m, kernels::PrepareOptions options) {
    require_pooled(m, "pooled::prepare");
    const ModelConfig& c = m.config();
    auto w = std::make_shared<Prepared>();
    w->P = int(c.pool.size());
    w->V = c.vocab;
    w->D0 = c.d_model;
    for (int i = 0; i <= w->P; ++i) w->widths.push_back(c.level_dims(i).d_model);
    for (int s = 0; s < c.stacks(); ++s) w->stacks.push_back(kernels::prepare_model(m.stack_view(s), options));
    w->pools = pool_weights(m);
    const float* e = m.tensor("backbone.embeddings.weight");
    w->embed.assign(e, e + int64_t(w->V) * w->D0);
    return w;
}

int64_t half_weight_count(const Prepared& w) {
    int64_t n = 0;
    for (const auto& s : w.stacks) n += kernels::half_weight_count(*s);
    return n;
}

struct Stepper::Impl {
    std::shared_ptr<const Prepared> w;
    int S = 0;
    std::vector<kernels::StepStatePtr> states;      // [2P+1], S streams each
    // per level i < P: the frame being gathered and the rows the frame adds in, [S][p][Di];
    // the level's place in its frame
    std::vector<std::vector<float>> win, queue;
    std::vector<int> phase;
    // per level: input rows, down stack's output, up stack's input, up stack's output, [S][Di]
    std::vector<std::vector<float>> xin, a, u, h;

    // Level i's step on rows xin[i]: its up stack's output (the centre's at the deepest level)
    // into out ([S][Di], or logits [S][V] at level 0).
    void level(int i, float* out) {
        const auto& stacks = w->stacks;
        const int P = w->P;
        if (i == P) {
            kernels::step_hidden(*stacks[size_t(P)], *states[size_t(P)], xin[size_t(P)].data(), out);
            return;
        }
        const PoolW& pw = w->pools[size_t(i)];
        const int Di = pw.Di, p = pw.p, ph = phase[size_t(i)];
        float *A = a[size_t(i)].data(), *U = u[size_t(i)].data();
        kernels::step_hidden(*stacks[size_t(i)], *states[size_t(i)], xin[size_t(i)].data(), A);
        for (int s = 0; s < S; ++s) {
            float* wrow = win[size_t(i)].data() + (int64_t(s) * p + ph) * Di;
            const float* q = queue[size_t(i)].data() + (int64_t(s) * p + ph) * Di;
            for (int d = 0; d < Di; ++d) {
                wrow[d] = A[int64_t(s) * Di + d];
                U[int64_t(s) * Di + d] = A[int64_t(s) * Di + d] + q[d];
            }
        }
        kernels::step_hidden(*stacks[size_t(2 * P - i)], *states[size_t(2 * P - i)], U, out);
        if (++phase[size_t(i)] < p) return;
        // the frame is whole: level i+1 hears it, and its answer is what the next frame adds in
        phase[size_t(i)] = 0;
        const int Dn = pw.Dn;
        for (int s = 0; s < S; ++s)
            pool_down(pw, win[size_t(i)].data() + int64_t(s) * p * Di, xin[size_t(i) + 1].data() + int64_t(s) * Dn);
        level(i + 1, h[size_t(i) + 1].data());
        for (int s = 0; s < S; ++s)
            pool_up(pw, h[size_t(i) + 1].data() + int64_t(s) * Dn, queue[size_t(i)].data() + int64_t(s) * p * Di);
    }
};

Stepper::Stepper(const Model& m, int streams) : Stepper(prepare(m), streams) {}

Stepper::Stepper(std::shared_ptr<const Prepared> weights, int streams) : impl_(std::make_unique<Impl>()) {
    if (!weights) throw std::invalid_argument("pooled::Stepper: no prepared weights");
    if (streams < 1) throw std::invalid_argument("pooled::Stepper: streams must be >= 1");
    Impl& d = *impl_;
    d.w = std::move(weights);
    d.S = streams;
    for (const auto& stack : d.w->stacks) d.states.push_back(kernels::make_state(*stack, streams, 64));
    const int P = d.w->P;
    for (int i = 0; i <= P; ++i) {
        const size_t Di = size_t(d.w->widths[size_t(i)]);
        for (auto* b : {&d.xin, &d.a, &d.u, &d.h}) b->emplace_back(size_t(streams) * Di, 0.0f);
        if (i < P) {
            const size_t F = size_t(d.w->pools[size_t(i)].p) * Di;
            d.win.emplace_back(size_t(streams) * F, 0.0f);
            d.queue.emplace_back(size_t(streams) * F, 0.0f);
        }
    }
    d.phase.assign(size_t(P), 0);
}

Stepper::~Stepper() = default;
Stepper::Stepper(Stepper&&) noexcept = default;
Stepper& Stepper::operator=(Stepper&&) noexcept = default;
int Stepper::streams() const { return impl_->S; }

void Stepper::reset() {
    Impl& d = *impl_;
    for (auto& s : d.states) kernels::reset_state(*s);
    for (auto& q : d.queue) std::fill(q.begin(), q.end(), 0.0f);
    for (auto& w : d.win) std::fill(w.begin(), w.end(), 0.0f);
    std::fill(d.phase.begin(), d.phase.end(), 0);
}

void Stepper::step(const int32_t* tokens, float* logits) {
    Impl& d = *impl_;
    for (int s = 0; s < d.S; ++s) {
        const int V = d.w->V, D0 = d.w->D0;
        const int32_t tok = tokens[s] < 0 ? 0 : tokens[s] >= V ? V - 1 : tokens[s];  // never read outside
        std::memcpy(d.xin[0].data() + int64_t(s) * D0, d.w->embed.data() + int64_t(tok) * D0, sizeof(float) * size_t(D0));
    }
    d.level(0, logits);
}

// ---- the training tape --------------------------------------------------------------------------

struct Tape::Impl {
    int chunk = 64;
    ModelConfig config;
    int P = 0;
    int64_t L = 0;
    std::vector<int64_t> Ln;
    std::vector<kernels::TrainTape> tapes;       // [2P+1]
    std::vector<PoolW> pools;                    // the forward's pool weights
    std::vector<int32_t> tokens;
    std::vector<std::vector<float>> x;           // [P+1] each level's input rows (x_0: embeddings)
    std::vector<std::vector<float>> a;           // [P]   the down stacks' outputs
    std::vector<std::vector<float>> h;           // [P+1] the up stacks' outputs (h_0 unused), the centre's
    std::vector<std::vector<float>> g1, g2;      // backward scratch per level
    std::vector<float> dx;                       // backward: the gradient of a level's input rows
    std::vector<float> carried, u, v;            // forward scratch
    std::vector<TensorSpec> specs;
    bool ready = false;
};

Tape::Tape(int chunk_samples) : impl_(std::make_unique<Impl>()) {
    if (chunk_samples < 1) throw std::invalid_argument("pooled::Tape: chunk must be >= 1");
    impl_->chunk = chunk_samples;
}
Tape::~Tape() = default;
Tape::Tape(Tape&&) noexcept = default;
Tape& Tape::operator=(Tape&&) noexcept = default;
int64_t Tape::length() const { return impl_->ready ? impl_->L : 0; }

int64_t Tape::bytes_held() const {
    int64_t n = 0;
    for (const auto& t : impl_->tapes) n += t.bytes_held();
    for (const auto* set : {&impl_->x, &impl_->a, &impl_->h, &impl_->g1, &impl_->g2})
        for (const auto& b : *set) n += int64_t(b.capacity() * sizeof(float));
    for (const auto* b : {&impl_->dx, &impl_->carried, &impl_->u, &impl_->v}) n += int64_t(b->capacity() * sizeof(float));
    return n;
}

void Tape::forward_tokens(const Model& m, const int32_t* tokens, int64_t L, const float* state_in, float* logits,
                          float* state_out) {
    require_pooled(m, "pooled::Tape::forward_tokens");
    Impl& d = *impl_;
    d.ready = false;
    const ModelConfig& c = m.config();
    check_length(c, L, state_out != nullptr, "pooled::Tape::forward_tokens");
    const int V = c.vocab;
    for (int64_t t = 0; t < L; ++t)
        if (tokens[t] < 0 || tokens[t] >= V)
            throw std::invalid_argument("pooled::Tape::forward_tokens: token " + std::to_string(tokens[t]) +
                                        " at position " + std::to_string(t) + " is outside 0.." + std::to_string(V - 1));
    d.config = c;
    d.P = int(c.pool.size());
    d.L = L;
    d.Ln = level_lengths(c, L);
    d.specs = m.tensors();
    d.tokens.assign(tokens, tokens + L);
    d.pools = pool_weights(m);
    while (int(d.tapes.size()) < c.stacks()) d.tapes.emplace_back(d.chunk);
    const int P = d.P;
    const StateLayout lay = state_layout(c);
    // the state out may be the state in: read every carried row before anything is written
    std::vector<float>& carried = d.carried;
    if (state_in) carried.assign(state_in, state_in + lay.total);
    auto sin = [&](int s) { return state_in ? carried.data() + lay.stack_offset[size_t(s)] : nullptr; };
    auto sout = [&](int s) { return state_out ? state_out + lay.stack_offset[size_t(s)] : nullptr; };
    d.x.resize(size_t(P + 1));
    d.a.resize(size_t(P));
    d.h.resize(size_t(P + 1));

    const int D0 = c.d_model;
    const float* embed = m.tensor("backbone.embeddings.weight");
    d.x[0].resize(size_t(L * D0));
    for (int64_t t = 0; t < L; ++t) std::memcpy(&d.x[0][size_t(t * D0)], embed + int64_t(tokens[t]) * D0, sizeof(float) * size_t(D0));
    for (int i = 0; i < P; ++i) {
        const PoolW& w = d.pools[size_t(i)];
        d.a[size_t(i)].resize(size_t(d.Ln[size_t(i)] * w.Di));
        if (d.Ln[size_t(i)] > 0)  // (a sequence shorter than a frame leaves the deeper levels idle)
            d.tapes[size_t(i)].forward_hidden(m.stack_view(i), d.x[size_t(i)].data(), d.Ln[size_t(i)], sin(i),
                                          d.a[size_t(i)].data(), sout(i));
        d.x[size_t(i) + 1].resize(size_t(d.Ln[size_t(i) + 1] * w.Dn));
        pool_down_frames(w, d.a[size_t(i)].data(), d.Ln[size_t(i) + 1], d.x[size_t(i) + 1].data());
    }
    d.h[size_t(P)].resize(size_t(d.Ln[size_t(P)] * c.level_dims(P).d_model));
    if (d.Ln[size_t(P)] > 0)
        d.tapes[size_t(P)].forward_hidden(m.stack_view(P), d.x[size_t(P)].data(), d.Ln[size_t(P)], sin(P),
                                      d.h[size_t(P)].data(), sout(P));
    for (int i = P - 1; i >= 0; --i) {
        const PoolW& w = d.pools[size_t(i)];
        const int64_t rows = d.Ln[size_t(i)] * w.Di;
        std::vector<float>& u = d.u;
        std::vector<float>& v = d.v;
        u.resize(size_t(rows));
        v.resize(size_t(w.p) * size_t(w.Di));
        const int64_t q = lay.queue_offset[size_t(i)];
        up_merge(w, d.a[size_t(i)].data(), d.Ln[size_t(i)], d.h[size_t(i) + 1].data(), d.Ln[size_t(i) + 1],
                 state_in ? carried.data() + q : nullptr, u.data(), v.data(), state_out ? state_out + q : nullptr);
        const int s = 2 * P - i;
        if (i > 0) {
            d.h[size_t(i)].resize(size_t(rows));
            if (rows > 0)
                d.tapes[size_t(s)].forward_hidden(m.stack_view(s), u.data(), d.Ln[size_t(i)], sin(s), d.h[size_t(i)].data(), sout(s));
        } else {
            d.tapes[size_t(s)].forward_hidden(m.stack_view(s), u.data(), L, sin(s), logits, sout(s));
        }
    }
    d.ready = true;
}

void Tape::backward(const float* d_logits, Model& grads) {
    Impl& d = *impl_;
    if (!d.ready) throw std::logic_error("pooled::Tape::backward: no forward to go back through");
    if (grads.tensors() != d.specs)
        throw std::invalid_argument("pooled::Tape::backward: the gradient model's tensors differ from the forward's "
                                    "model (make it with zeros_like(model))");
    const ModelConfig& c = d.config;
    const int P = d.P;
    std::vector<kernels::LayerGrad> layers;
    const std::vector<kernels::ModelGrad> stacks = stack_grads(grads, layers);
    auto stack_grad = [&](int s) { return stacks[size_t(s)]; };
    d.g1.resize(size_t(P + 1));
    d.g2.resize(size_t(P + 1));
    auto D = [&](int level) { return c.level_dims(level).d_model; };

    // Up the U from the head: du_i from up_i's tape; the skip takes du_i as it is, and frame
    // k+1's rows give the up pool's gradient and dh_{i+1}[k].
    std::vector<float>& du0 = d.g1[0];
    du0.assign(size_t(d.L * D(0)), 0.0f);
    d.tapes[size_t(2 * P)].backward(d_logits, stack_grad(2 * P), du0.data());
    for (int i = 0; i < P; ++i) {
        const PoolW& w = d.pools[size_t(i)];
        const int64_t F = int64_t(w.p) * w.Di, rows = d.Ln[size_t(i)] * w.Di;
        const std::string nm = "backbone.pools." + std::to_string(i) + ".";
        float *gW = grads.tensor(nm + "up.weight"), *gb = grads.tensor(nm + "up.bias");
        const std::vector<float>& du = d.g1[size_t(i)];
        std::vector<float>& dh = d.g2[size_t(i) + 1];
        dh.assign(size_t(d.Ln[size_t(i) + 1] * w.Dn), 0.0f);
        const int64_t frames = d.Ln[size_t(i) + 1];
        const float* h = d.h[size_t(i) + 1].data();
        // frames [0, whole) add into whole frames of u; the rest (at most one) into a frame cut short
        int64_t whole = 0;
        if (w.Dn % 8 == 0) {  // (the products' rows are Dn long; F is only their depth)
            whole = std::clamp<int64_t>(rows / F - 1, 0, frames);
            const float* dv = du.data() + F;  // [whole][F]: frame k's rows feed frame k+1
            for (int64_t k = 0; k < whole; ++k)
                for (int64_t r = 0; r < F; ++r) gb[r] += dv[k * F + r];
            kernels::outer_sum(gW, w.Dn, dv, F, int(F), h, w.Dn, w.Dn, whole);
            kernels::rows_times(dh.data(), w.Dn, dv, F, w.up_w.data(), w.Dn, int(F), w.Dn, whole, false);
        }
        for (int64_t k = whole; k < frames; ++k) {
            const float* hk = h + k * w.Dn;
            float* dhk = &dh[size_t(k * w.Dn)];
            for (int64_t r = 0; r < F && (k + 1) * F + r < rows; ++r) {  // v = W↑ · h + b↑
                const float dv = du[size_t((k + 1) * F + r)];
                gb[r] += dv;
                const float* Wr = w.up_w.data() + r * w.Dn;
                float* gWr = gW + r * w.Dn;
                for (int j = 0; j < w.Dn; ++j) {
                    gWr[j] += dv * hk[j];
                    dhk[j] += dv * Wr[j];
                }
            }
        }
        if (i + 1 < P) {  // through level i+1's up stack
            std::vector<float>& dun = d.g1[size_t(i) + 1];
            dun.assign(size_t(d.Ln[size_t(i) + 1] * w.Dn), 0.0f);
            if (d.Ln[size_t(i) + 1] > 0)
                d.tapes[size_t(2 * P - i - 1)].backward(dh.data(), stack_grad(2 * P - i - 1), dun.data());
        }
    }
    // the centre: dx_P
    std::vector<float>& dx = d.dx;
    dx.assign(size_t(d.Ln[size_t(P)] * D(P)), 0.0f);
    if (d.Ln[size_t(P)] > 0)
        d.tapes[size_t(P)].backward(d.g2[size_t(P)].data(), stack_grad(P), dx.data());
    // Down the U: da_i = du_i (the skip) + frame k's share of W↓ᵀ · dx_{i+1}[k]; then down_i's tape.
    for (int i = P - 1; i >= 0; --i) {
        const PoolW& w = d.pools[size_t(i)];
        const int64_t F = int64_t(w.p) * w.Di, frames = d.Ln[size_t(i) + 1];
        const std::string nm = "backbone.pools." + std::to_string(i) + ".";
        float *gW = grads.tensor(nm + "down.weight"), *gb = grads.tensor(nm + "down.bias");
        std::vector<float>& da = d.g1[size_t(i)];  // du_i is not read again: da takes its place
        const float* a = d.a[size_t(i)].data();
        for (int64_t k = 0; k < frames; ++k)
            for (int o = 0; o < w.Dn; ++o) gb[o] += dx[size_t(k * w.Dn + o)];
        if (F % 8 == 0) {
            kernels::outer_sum(gW, F, dx.data(), w.Dn, w.Dn, a, F, int(F), frames);
            kernels::rows_times(da.data(), F, dx.data(), w.Dn, w.down_w.data(), F, w.Dn, int(F), frames, true);
        } else {
            for (int64_t k = 0; k < frames; ++k) {
                const float* frame = a + k * F;
                float* dframe = &da[size_t(k * F)];
                for (int o = 0; o < w.Dn; ++o) {
                    const float g = dx[size_t(k * w.Dn + o)];
                    const float* Wo = w.down_w.data() + int64_t(o) * F;
                    float* gWo = gW + int64_t(o) * F;
                    for (int64_t j = 0; j < F; ++j) {
                        gWo[j] += g * frame[j];
                        dframe[j] += g * Wo[j];
                    }
                }
            }
        }
        dx.assign(size_t(d.Ln[size_t(i)] * w.Di), 0.0f);
        if (d.Ln[size_t(i)] > 0)
            d.tapes[size_t(i)].backward(da.data(), stack_grad(i), dx.data());
    }
    // x_0 = embeddings[token]
    float* ge = grads.tensor("backbone.embeddings.weight");
    const int D0 = D(0);
    for (int64_t t = 0; t < d.L; ++t) {
        float* row = ge + int64_t(d.tokens[size_t(t)]) * D0;
        for (int j = 0; j < D0; ++j) row[j] += dx[size_t(t * D0 + j)];
    }
}

} // namespace mw::pooled
