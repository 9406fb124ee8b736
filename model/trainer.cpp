#include "model/trainer.h"

#include "kernels/counter_draws.h"
#include "kernels/harmonic_decay.h"
#include "kernels/thread_pool.h"
#include "model/engine.h"
#include "model/grad.h"
#include "model/losses.h"
#include "model/model_file.h"
#include "model/pooled.h"
#include "model/safetensors.h"
#include "model/sampling.h"

#include <nlohmann/json.hpp>

#if MW_HAVE_CUDA
#include "kernels/cuda/mamba_cuda.h"
#include "kernels/cuda/stft_cuda.h"
#endif

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace mw {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int kCheckpointVersion = 1;
constexpr const char* kTrainerFile = "trainer.safetensors";
constexpr const char* kModelFile = "model.safetensors";

// Where one lane of the batch is: which sequence, how far in, its recurrent state.
struct Lane {
    int seq = -1;
    int64_t pos = 0;
    int segs_left = 0;
    bool fresh = true;              // jumped here: the first `warmup` samples build state only
    bool null_label = false;        // this clip is led by the null label's prefix (label dropout)
    std::vector<float> state;       // [state floats per stream]
    std::vector<float> next_state;  // written by the step, swapped in after it
};

TrainOptions options_from_json(const json& j) {
    TrainOptions o;
    o.steps = j.at("steps").get<int64_t>();
    o.batch = j.at("batch").get<int>();
    o.segment = j.at("segment").get<int64_t>();
    o.tbptt_segments = j.at("tbptt_segments").get<int>();
    o.warmup = j.at("warmup").get<int64_t>();
    o.adam.lr = j.at("lr").get<double>();
    o.adam.beta1 = j.at("beta1").get<double>();
    o.adam.beta2 = j.at("beta2").get<double>();
    o.adam.eps = j.at("eps").get<double>();
    o.adam.weight_decay = j.at("weight_decay").get<double>();
    o.lr_warmup_steps = j.at("lr_warmup_steps").get<int64_t>();
    o.final_lr_ratio = j.at("final_lr_ratio").get<double>();
    o.clip_norm = j.at("clip_norm").get<double>();
    o.preemphasis = j.at("preemphasis").get<double>();
    o.balance_lanes = j.value("balance_lanes", false);  // checkpoints from before the option pooled
    o.stft_weight = j.value("stft_weight", 0.0);        // ... and had no STFT term
    o.harmonic_decays = j.value("harmonic_decays", false);  // ... and free decays
    o.fixed_dt = j.value("fixed_dt", false);                // ... and selective Δ
    o.label_dropout = j.value("label_dropout", 0.0);        // ... and no label dropout
    o.self_feed = j.value("self_feed", 0.0);                // ... and clean histories
    o.self_feed_ramp = j.value("self_feed_ramp", int64_t(0));
    o.validate_every = j.at("validate_every").get<int64_t>();
    o.seed = j.at("seed").get<uint64_t>();
    return o;
}

void check_options(const TrainOptions& o, bool effect) {
    auto bad = [](const std::string& what) { throw std::invalid_argument("training options: " + what); };
    if (o.steps < 1) bad("steps must be >= 1");
    if (o.batch < 1 || o.batch > 4096) bad("batch must be in 1..4096, found " + std::to_string(o.batch));
    if (o.segment < 16) bad("segment must be >= 16 samples, found " + std::to_string(o.segment));
    if (o.tbptt_segments < 1) bad("tbptt segments must be >= 1");
    if (o.warmup < 0 || (effect && o.warmup >= o.segment))
        bad("warmup must be in 0..segment-1 (" + std::to_string(o.segment - 1) + "), found " +
            std::to_string(o.warmup));
    if (!(o.adam.lr > 0)) bad("learning rate must be > 0");
    if (!(o.stft_weight >= 0)) bad("the STFT loss weight must be >= 0");
    if (!(o.label_dropout >= 0 && o.label_dropout < 1))
        bad("label dropout must be in [0, 1), found " + std::to_string(o.label_dropout));
    if (!(o.self_feed >= 0 && o.self_feed <= 1))
        bad("self-feed must be in [0, 1], found " + std::to_string(o.self_feed));
    if (o.self_feed > 0 && effect) bad("self-feed is for generators (the model's own mu-law classes)");
    if (o.self_feed_ramp < 0) bad("the self-feed ramp must be >= 0 steps, found " + std::to_string(o.self_feed_ramp));
    if (o.self_feed_ramp > 0 && !(o.self_feed > 0)) bad("a self-feed ramp needs a self-feed chance above 0");
    if (o.stft_weight > 0 && !effect) bad("the STFT loss is for effects; a generator's loss is cross-entropy");
    std::string why;
    if (o.device == Device::cuda && !cuda_available(&why)) bad("device cuda: " + why);
    if (o.tf32 && o.device != Device::cuda) bad("TF32 products are a GPU option (device cuda)");
}

// FNV-1a 64 over raw bytes.
struct Fnv {
    uint64_t h = 1469598103934665603ull;
    void add(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    }
    template <class T> void add_vec(const std::vector<T>& v) {
        const uint64_t n = v.size();
        add(&n, sizeof n);
        add(v.data(), v.size() * sizeof(T));
    }
    void add_str(const std::string& s) { add_vec(std::vector<char>(s.begin(), s.end())); }
};

void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        if (!f) throw std::runtime_error("cannot write checkpoint file " + tmp);
    }
    fs::rename(tmp, path);
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open checkpoint file " + path);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

} // namespace

json options_to_json(const TrainOptions& o) {
    return {{"steps", o.steps},
            {"batch", o.batch},
            {"segment", o.segment},
            {"tbptt_segments", o.tbptt_segments},
            {"warmup", o.warmup},
            {"lr", o.adam.lr},
            {"beta1", o.adam.beta1},
            {"beta2", o.adam.beta2},
            {"eps", o.adam.eps},
            {"weight_decay", o.adam.weight_decay},
            {"lr_warmup_steps", o.lr_warmup_steps},
            {"final_lr_ratio", o.final_lr_ratio},
            {"clip_norm", o.clip_norm},
            {"preemphasis", o.preemphasis},
            {"balance_lanes", o.balance_lanes},
            {"stft_weight", o.stft_weight},
            {"harmonic_decays", o.harmonic_decays},
            {"fixed_dt", o.fixed_dt},
            {"label_dropout", o.label_dropout},
            {"self_feed", o.self_feed},
            {"self_feed_ramp", o.self_feed_ramp},
            {"validate_every", o.validate_every},
            {"seed", o.seed}};
}

double self_feed_chance(const TrainOptions& o, int64_t step) {
    if (o.self_feed_ramp <= 0 || step >= o.self_feed_ramp) return o.self_feed;
    return o.self_feed * double(step) / double(o.self_feed_ramp);
}

int32_t self_fed_class(int32_t cls, const float* logits, int vocab, double p, uint64_t seed, int64_t step, int lane,
                       int64_t pos) {
    const SelfFeedCoin coin = self_feed_coin(p, seed, step, lane, pos);
    if (!coin.drawn) return cls;
    std::array<double, 256> e;  // ModelConfig::vocab is 256 (model.cpp checks it)
    if (vocab > int(e.size())) throw std::logic_error("self_fed_class: vocab " + std::to_string(vocab) + " > 256");
    return draw_class(logits, vocab, coin.u, e.data());
}

std::pair<int64_t, int64_t> parse_profile_steps(const char* value) {
    if (!value || !*value) return {0, 0};
    const std::string v = value;
    const auto bad = [&] {
        return std::invalid_argument("MW_PROFILE_STEPS: expected FIRST:LAST, two whole numbers with 1 <= FIRST <= LAST "
                                     "(steps counted from 1, e.g. 21:22), found \"" + v + "\"");
    };
    const auto number = [&](const std::string& part) {
        int64_t x = 0;
        const char* end = part.data() + part.size();
        const auto [stop, ec] = std::from_chars(part.data(), end, x);
        if (part.empty() || ec != std::errc() || stop != end) throw bad();
        return x;
    };
    const size_t colon = v.find(':');
    if (colon == std::string::npos) throw bad();
    const int64_t first = number(v.substr(0, colon)), last = number(v.substr(colon + 1));
    if (first < 1 || last < first) throw bad();
    return {first, last};
}

std::string data_hash(const TrainData& d) {
    Fnv f;
    for (const auto* set : {&d.effect_train, &d.effect_val}) {
        for (const EffectSequence& s : *set) {
            f.add_str(s.name);
            f.add_vec(s.input);
            f.add_vec(s.target);
            f.add_vec(s.controls);
        }
        f.add_str("|");
    }
    for (const auto* set : {&d.token_train, &d.token_val}) {
        for (const TokenSequence& s : *set) {
            f.add_str(s.name);
            f.add_vec(s.tokens);
        }
        f.add_str("|");
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
    return hex;
}

struct Trainer::Impl {
    Model model;
    TrainData data;
    TrainOptions opt;
    bool effect = false;
    std::string hash;

    AdamW adam;
    std::vector<uint8_t> decay;
    std::mt19937_64 rng;
    int64_t step = 0;
    int b0 = 0, b1 = 0;                 // this rank's lanes [b0, b1) (all of them without opt.comm)

    std::unique_ptr<kernels::ThreadPool> pool;
    std::vector<Tape> tapes;            // [threads]
    std::vector<Model> lane_grads;      // [B]
    Model grads;
    std::vector<Lane> lanes;            // [B]
    std::vector<std::vector<float>> lane_in, lane_out, lane_dout;  // [B][...]
    std::vector<std::vector<int32_t>> lane_tok;                     // [B][...] (lane_tokens)
    std::vector<std::vector<int32_t>> lane_fed;                     // [B][...] (self_fed)
    std::vector<double> lane_error;     // [B] loss numerator (effects: error; generators: nats)
    // Self-feed on the GPU draws where the logits lie (gpu_self_feed). MW_SELF_FEED_ON_HOST=1 in
    // the environment reads them back and draws on the host instead, as before 2026-12-07's
    // twenty-third session: the same classes, kept for the benchmark that compares the two.
    const bool self_feed_on_host = [] {
        const char* v = std::getenv("MW_SELF_FEED_ON_HOST");
        return v && std::string(v) == "1";
    }();
    // MW_PROFILE_STEPS (parse_profile_steps): the steps a profiler records, on cuda.
    const std::pair<int64_t, int64_t> profile = parse_profile_steps(std::getenv("MW_PROFILE_STEPS"));
#if MW_HAVE_CUDA
    // device cuda: the batch's tape, made on the first step or validation (validation runs its
    // forward too, so a const validate() may make it)
    // (a pooled model's: one tape per stack, kernels/cuda/train_pooled.cu)
    mutable kernels::cuda::TrainTapePtr gpu;
    mutable kernels::cuda::PooledTapePtr gpu_pooled;
    kernels::cuda::StftLossPtr gpu_stft;  // effects with stft_weight: the batch's STFT term (cuFFT)
    std::vector<float> gpu_state[2];      // the batch's states in and out, kept from step to step

    void tape_on_gpu() const {
        if (model.config().pooled()) {
            if (!gpu_pooled) {
                gpu_pooled = kernels::cuda::make_pooled_tape(pooled::cuda_view(model), b1 - b0, opt.segment);
                kernels::cuda::set_tf32(*gpu_pooled, opt.tf32);
            }
        } else if (!gpu) {
            gpu = kernels::cuda::make_train_tape(model.view(), b1 - b0, opt.segment);
            kernels::cuda::set_tf32(*gpu, opt.tf32);
        }
    }
    // A generator's forward of this rank's BL lanes of L steps on the GPU tape (the logits stay
    // there), the cross-entropy against targets (nats per lane), then the gradient into `g`.
    // A pooled model's L is a multiple of its pooling period (the callers pad).
    // (logits: null leaves them on the GPU; else they come back, [BL][L][V]. up: as_last for a
    // second forward of the same step, whose weights the first took to the GPU)
    void gpu_tokens_forward(const int32_t* tokens, int64_t L, const float* state_in, float* state_out,
                            float* logits = nullptr,
                            kernels::cuda::WeightUpload up = kernels::cuda::WeightUpload::fresh) const {
        tape_on_gpu();
        if (gpu_pooled)
            kernels::cuda::train_pooled_forward(*gpu_pooled, pooled::cuda_view(model), tokens, L, state_in, logits,
                                                state_out, up);
        else
            kernels::cuda::train_forward_tokens(*gpu, model.view(), tokens, L, state_in, logits, state_out, up);
    }
    void gpu_cross_entropy(const int32_t* targets, double scale, double* nats) const {
        if (gpu_pooled)
            kernels::cuda::train_pooled_cross_entropy(*gpu_pooled, targets, scale, nats);
        else
            kernels::cuda::train_cross_entropy(*gpu, targets, scale, nats);
    }
    // TrainOptions::self_feed on the GPU: the draws self_fed makes on the host, made from the
    // last forward's logits where they lie; tok [BL][Lmax] is that forward's classes.
    void gpu_self_feed(const std::vector<int64_t>& n, std::vector<int32_t>& tok) const {
        kernels::cuda::SelfFeedDraws d;
        d.chance = self_feed_chance(opt, step);
        d.seed = opt.seed;
        d.step = step;
        for (int b = b0; b < b1; ++b) {
            d.lane.push_back(b);
            d.pos.push_back(lanes[size_t(b)].pos);
            d.first.push_back(first_fed_place(b));
            d.end.push_back(n[size_t(b)]);
        }
        if (gpu_pooled)
            kernels::cuda::train_pooled_self_feed(*gpu_pooled, d, tok.data());
        else
            kernels::cuda::train_self_feed(*gpu, d, tok.data());
    }
    void gpu_backward(const float* d_out, Model& g) const {
        std::vector<kernels::LayerGrad> layers;
        if (gpu_pooled)
            kernels::cuda::train_pooled_backward(*gpu_pooled, d_out, pooled::cuda_grad(g, layers));
        else
            kernels::cuda::train_backward(*gpu, d_out, g.as_gradient(layers));
    }
#endif
    // Steps the GPU tape runs for L samples: a pooled model's whole periods (the padding's
    // targets are -1; a lane that needed padding is at its clip's end, so its state is not used).
    int64_t gpu_length(int64_t L) const { return model.config().whole_periods(L); }

    Impl(Model m, TrainData d, TrainOptions o)
        : model(std::move(m)), data(std::move(d)), opt(o),
          effect(model.config().kind == IoKind::continuous), hash(mw::data_hash(data)),
          adam(model.parameter_count(), o.adam), decay(decay_mask(model)), rng(o.seed) {
        check_options(opt, effect);
        if (opt.label_dropout > 0 && !model.config().label_null)
            throw std::invalid_argument("training options: label dropout needs a labelled generator with a null label "
                                        "(io.label_null)");
        check_pooled();
        check_data();
        const int R = ranks(), r = rank();
        if (opt.batch < R)
            throw std::invalid_argument("batch " + std::to_string(opt.batch) + " is smaller than the " +
                                        std::to_string(R) + " data-parallel ranks: each rank needs a lane");
        b0 = int(int64_t(opt.batch) * r / R);
        b1 = int(int64_t(opt.batch) * (r + 1) / R);
        set_threads(opt.threads);
        // (a resumed model already has the form: projecting it again could move its last bits)
        if (opt.harmonic_decays && !kernels::decays_harmonic(model.view()))
            model.for_each_A_log(model.data(), kernels::make_decays_harmonic);
        if (opt.fixed_dt) model.zero_dt_inputs(model.data());
        grads = zeros_like(model);
        lane_grads.assign(size_t(opt.batch), zeros_like(model));
        lanes.resize(size_t(opt.batch));
        const size_t S = size_t(model.state_floats_per_stream());
        for (Lane& l : lanes) {
            l.state.assign(S, 0.0f);
            l.next_state.assign(S, 0.0f);
        }
        lane_in.resize(size_t(opt.batch));
        lane_tok.resize(size_t(opt.batch));
        lane_fed.resize(size_t(opt.batch));
        lane_out.resize(size_t(opt.batch));
        lane_dout.resize(size_t(opt.batch));
        lane_error.assign(size_t(opt.batch), 0.0);
    }

    void set_threads(int threads) {
        pool = std::make_unique<kernels::ThreadPool>(threads);
        tapes.clear();
        tapes.resize(size_t(pool->size()));
    }

    // A pooled model (model/pooled.h) trains with segments of whole pooling periods, so that
    // the state carried from one to the next is whole.
    void check_pooled() const {
        const ModelConfig& c = model.config();
        if (!c.pooled()) return;
        auto bad = [](const std::string& what) { throw std::invalid_argument("training a pooled model: " + what); };
        if (opt.segment % c.pool_period() != 0)
            bad("the segment (" + std::to_string(opt.segment) + " samples) must be a multiple of the pooling period " +
                std::to_string(c.pool_period()) + " (the product of the pool factors)");
        if (opt.harmonic_decays) bad("harmonic decays are for flat models");
    }

    void check_data() const {
        const ModelConfig& c = model.config();
        if (effect) {
            if (data.effect_train.empty()) throw std::invalid_argument("no effect training data");
            for (const auto* set : {&data.effect_train, &data.effect_val})
                for (const EffectSequence& s : *set) {
                    if (s.input.size() != s.target.size())
                        throw std::invalid_argument(s.name + ": input has " + std::to_string(s.input.size()) +
                                                    " samples, target " + std::to_string(s.target.size()));
                    if (int(s.controls.size()) != c.n_cond())
                        throw std::invalid_argument(s.name + ": " + std::to_string(s.controls.size()) +
                                                    " control values, the model has " +
                                                    std::to_string(c.n_cond()) + " controls");
                    if (int64_t(s.input.size()) < 2) throw std::invalid_argument(s.name + ": too short");
                }
        } else {
            if (data.token_train.empty()) throw std::invalid_argument("no generator training data");
            for (const auto* set : {&data.token_train, &data.token_val})
                for (const TokenSequence& s : *set) {
                    if (s.tokens.size() < 2) throw std::invalid_argument(s.name + ": fewer than 2 samples");
                    for (int32_t t : s.tokens)
                        if (t < 0 || t >= c.vocab) throw std::invalid_argument(s.name + ": class out of range");
                }
        }
    }

    int64_t seq_length(int seq) const {
        return effect ? int64_t(data.effect_train[size_t(seq)].input.size())
                      : int64_t(data.token_train[size_t(seq)].tokens.size());
    }
    int n_train() const {
        return effect ? int(data.effect_train.size()) : int(data.token_train.size());
    }
    // Samples the lane can still take from its sequence (generators need one more for targets).
    int64_t remaining(const Lane& l) const { return seq_length(l.seq) - l.pos - (effect ? 0 : 1); }

    void jump(Lane& l) {
        l.seq = int(rng() % uint64_t(n_train()));
        const int64_t len = seq_length(l.seq);
        // Effects start anywhere that leaves a full segment; generator clips start at their start.
        l.pos = effect && len > opt.segment ? int64_t(rng() % uint64_t(len - opt.segment + 1)) : 0;
        l.segs_left = opt.tbptt_segments;
        l.fresh = true;
        // (drawn only with dropout on, so that runs without it keep their data order)
        l.null_label = opt.label_dropout > 0 && double(rng() >> 11) * 0x1.0p-53 < opt.label_dropout;
        std::fill(l.state.begin(), l.state.end(), 0.0f);
    }

    // The classes lane b feeds the model this step (n of them from its position): its clip's,
    // or, for a clip drawn for label dropout, the same with the label prefix made the null
    // label's (copied into lane_tok[b]). The targets are always the clip's own: the prefix's
    // own predictions are unscored, so no prefix class is ever a scored target.
    const int32_t* lane_tokens(int b, int64_t n) {
        const Lane& l = lanes[size_t(b)];
        const int32_t* t = data.token_train[size_t(l.seq)].tokens.data() + l.pos;
        const ModelConfig& c = model.config();
        if (!l.null_label || l.pos >= c.label_prefix) return t;
        std::vector<int32_t>& buf = lane_tok[size_t(b)];
        buf.assign(t, t + n);
        const int64_t end = std::min<int64_t>(n, c.label_prefix - l.pos);
        std::fill(buf.begin(), buf.begin() + end, ModelConfig::label_token(c.null_label()));
        return buf.data();
    }

    // The first place of lane b's segment that self-feed may replace: past the label prefix, and
    // never the segment's first (its prediction was made the step before). The host's draws
    // (self_fed) and the GPU's (gpu_self_feed) both start here.
    int64_t first_fed_place(int b) const {
        return std::max<int64_t>(1, model.config().label_prefix - lanes[size_t(b)].pos);
    }

    // TrainOptions::self_feed: lane b's n classes `fed` with each place from first_fed_place on
    // replaced, at the option's chance this step (its ramp applied), by a draw from logits[i-1]
    // [V], the model's prediction for place i from the clean history (copied into lane_fed[b]).
    const int32_t* self_fed(int b, const int32_t* fed, int64_t n, const float* logits) {
        const Lane& l = lanes[size_t(b)];
        const ModelConfig& c = model.config();
        std::vector<int32_t>& buf = lane_fed[size_t(b)];
        buf.assign(fed, fed + n);
        const double p = self_feed_chance(opt, step);
        for (int64_t i = first_fed_place(b); i < n; ++i)
            buf[size_t(i)] = self_fed_class(buf[size_t(i)], logits + (i - 1) * c.vocab, c.vocab, p, opt.seed, step, b,
                                            l.pos + i);
        return buf.data();
    }

    // Lane b's loss (into lane_error) and dLoss/dout over its L samples (the first `skip` left
    // out of the loss). Effects: out/dout are y [L], the ESR (an STFT term is added by
    // cpu_stft_term or gpu_stft_term); generators: logits [L][V].
    void lane_loss(int b, int64_t L, int64_t skip, double lane_den, double denominator, const float* out,
                   float* dout) {
        const Lane& l = lanes[size_t(b)];
        if (effect) {
            const float* t = data.effect_train[size_t(l.seq)].target.data() + l.pos;
            lane_error[size_t(b)] = esr_sums(out, t, L, opt.preemphasis, skip).error / lane_den;
            esr_grad(out, t, L, opt.preemphasis, skip, lane_den, dout);
        } else {
            const int32_t* tokens = data.token_train[size_t(l.seq)].tokens.data() + l.pos;
            lane_error[size_t(b)] = cross_entropy(out, tokens + 1, L, model.config().vocab, skip, dout,
                                                  1.0 / denominator)
                                        .nats;
        }
    }

    // Effects with stft_weight on the CPU: lane b's STFT term over its counted samples [skip, L),
    // added to its loss and to dLoss/dy.
    void cpu_stft_term(int b, int64_t L, int64_t skip, const float* y, float* dy) {
        const Lane& l = lanes[size_t(b)];
        const float* t = data.effect_train[size_t(l.seq)].target.data() + l.pos;
        std::vector<float> ds(size_t(L - skip));
        lane_error[size_t(b)] += mrstft_loss(y + skip, t + skip, L - skip, StftLossParams{},
                                             opt.stft_weight / opt.batch, ds.data());
        for (int64_t i = 0; i < L - skip; ++i) dy[skip + i] += ds[size_t(i)];
    }

    // One lane on the CPU tape of its thread: forward, loss, backward into lane_grads[b].
    void cpu_forward_backward(int b, int64_t L, int64_t skip, double lane_den, double denominator) {
        const ModelConfig& c = model.config();
        Tape& tape = tapes[size_t(b % pool->size())];
        Lane& l = lanes[size_t(b)];
        Model& g = lane_grads[size_t(b)];
        std::fill(g.data(), g.data() + g.parameter_count(), 0.0f);
        const int64_t width = effect ? 1 : c.vocab;
        std::vector<float>& out = lane_out[size_t(b)];
        std::vector<float>& dout = lane_dout[size_t(b)];
        out.resize(size_t(L * width));
        dout.resize(size_t(L * width));
        if (effect) {
            const EffectSequence& s = data.effect_train[size_t(l.seq)];
            std::vector<float>& x = lane_in[size_t(b)];  // [L][I]
            effect_input(c, s.input.data() + l.pos, L, s.controls.data(), x);
            tape.forward_continuous(model, x.data(), L, l.state.data(), out.data(), l.next_state.data());
        } else {
            const int32_t* tokens = lane_tokens(b, L);
            // A pooled model's state is whole only after whole periods; a segment shorter than
            // that ends its sequence, so the lane jumps and its state is never used.
            const bool whole = !c.pooled() || L % c.pool_period() == 0;
            if (self_feed_chance(opt, step) > 0) {  // the model's predictions from the clean classes first
                tape.forward_tokens(model, tokens, L, l.state.data(), out.data(), nullptr);
                tokens = self_fed(b, tokens, L, out.data());
            }
            tape.forward_tokens(model, tokens, L, l.state.data(), out.data(), whole ? l.next_state.data() : nullptr);
        }
        lane_loss(b, L, skip, lane_den, denominator, out.data(), dout.data());
        if (effect && opt.stft_weight > 0) cpu_stft_term(b, L, skip, out.data(), dout.data());
        tape.backward(dout.data(), g);
    }

#if MW_HAVE_CUDA
    // Effects on the GPU: the STFT term of this rank's lanes at once (cuFFT), over each lane's
    // counted samples [skip, n) as cpu_stft_term counts it; y and dy are [BL][Lmax].
    void gpu_stft_term(const std::vector<int64_t>& n, const std::vector<int64_t>& skip, int64_t Lmax,
                       const std::vector<float>& y, std::vector<float>& dy) {
        const int BL = b1 - b0;
        if (!gpu_stft) {
            const StftLossParams p;
            gpu_stft = kernels::cuda::make_stft_loss(p.sizes, p.eps);
        }
        std::vector<float> target(size_t(BL * Lmax), 0.0f), grad(size_t(BL * Lmax));
        std::vector<int64_t> begin(static_cast<size_t>(BL)), end(static_cast<size_t>(BL));
        std::vector<double> scale(static_cast<size_t>(BL), opt.stft_weight / opt.batch), loss(static_cast<size_t>(BL));
        for (int i = 0; i < BL; ++i) {
            const int b = b0 + i;
            const Lane& l = lanes[size_t(b)];
            const float* t = data.effect_train[size_t(l.seq)].target.data() + l.pos;
            std::copy(t, t + n[size_t(b)], target.begin() + i * Lmax);
            begin[size_t(i)] = skip[size_t(b)];
            end[size_t(i)] = n[size_t(b)];
        }
        kernels::cuda::stft_loss(*gpu_stft, y.data(), target.data(), BL, Lmax, begin.data(), end.data(), scale.data(),
                                 loss.data(), grad.data());
        for (int i = 0; i < BL; ++i) lane_error[size_t(b0 + i)] += loss[size_t(i)];
        for (size_t k = 0; k < grad.size(); ++k) dy[k] += grad[k];
    }
#endif

    // The whole batch on the GPU tape: lanes padded to the longest (a lane shorter than the
    // segment has reached the end of its sequence, so the state after its padding is never used:
    // it jumps next step); the padding's dLoss/dout is zero. The gradient lands in `grads`.
    void gpu_forward_backward(const std::vector<int64_t>& n, const std::vector<int64_t>& skip,
                              const std::vector<double>& lane_den, double denominator) {
#if MW_HAVE_CUDA
        namespace kc = kernels::cuda;
        const ModelConfig& c = model.config();
        const int BL = b1 - b0, I = c.n_in();  // this rank's lanes: global lane b0 + i is row i
        const int64_t Lmax = gpu_length(*std::max_element(n.begin() + b0, n.begin() + b1));
        const int64_t S = model.state_floats_per_stream();
        tape_on_gpu();
        std::vector<float>& out = lane_out[0];  // effects: y and dy [BL][Lmax] for the whole batch
        std::vector<float>& dout = lane_dout[0];
        if (effect) {
            out.assign(size_t(BL * Lmax), 0.0f);
            dout.assign(size_t(BL * Lmax), 0.0f);
        }
        std::vector<float>& state_in = gpu_state[0];  // (every float written below: by the lanes, by the forward)
        std::vector<float>& state_out = gpu_state[1];
        state_in.resize(size_t(BL * S));
        state_out.resize(size_t(BL * S));
        for (int i = 0; i < BL; ++i)
            std::copy(lanes[size_t(b0 + i)].state.begin(), lanes[size_t(b0 + i)].state.end(), state_in.begin() + i * S);
        if (effect) {
            std::vector<float>& x = lane_in[0];  // [BL][Lmax][I]
            x.assign(size_t(BL * Lmax * I), 0.0f);
            std::vector<float> one;
            for (int i = 0; i < BL; ++i) {
                const int b = b0 + i;
                const Lane& l = lanes[size_t(b)];
                const EffectSequence& s = data.effect_train[size_t(l.seq)];
                effect_input(c, s.input.data() + l.pos, n[size_t(b)], s.controls.data(), one);
                std::copy(one.begin(), one.end(), x.begin() + i * Lmax * I);
            }
            kc::train_forward_continuous(*gpu, model.view(), x.data(), Lmax, state_in.data(), out.data(),
                                         state_out.data());
        } else {
            // Generators: the cross-entropy runs on the GPU (the logits, B·L·V floats, stay
            // there); rows past a lane's end or inside its warm-up have target -1.
            std::vector<int32_t> tok(size_t(BL * Lmax), 0), target(size_t(BL * Lmax), -1);
            for (int i = 0; i < BL; ++i) {
                const int b = b0 + i;
                const Lane& l = lanes[size_t(b)];
                const int32_t* t = data.token_train[size_t(l.seq)].tokens.data() + l.pos;
                const int32_t* fed = lane_tokens(b, n[size_t(b)]);
                std::copy(fed, fed + n[size_t(b)], tok.begin() + i * Lmax);
                std::copy(t + 1 + skip[size_t(b)], t + 1 + n[size_t(b)], target.begin() + i * Lmax + skip[size_t(b)]);
            }
            auto up = kc::WeightUpload::fresh;
            if (self_feed_chance(opt, step) > 0) {  // the model's predictions from the clean classes first
                up = kc::WeightUpload::as_last;     // (the second forward runs on the first's weights)
                if (self_feed_on_host) {
                    const int V = c.vocab;
                    std::vector<float>& logits = lane_out[0];  // [BL][Lmax][V]
                    logits.resize(size_t(BL * Lmax * V));
                    gpu_tokens_forward(tok.data(), Lmax, state_in.data(), nullptr, logits.data());
                    pool->run(BL, [&](int i) {
                        const int32_t* fed = self_fed(b0 + i, tok.data() + i * Lmax, n[size_t(b0 + i)],
                                                      logits.data() + i * Lmax * V);
                        std::copy(fed, fed + n[size_t(b0 + i)], tok.begin() + i * Lmax);
                    });
                } else {
                    gpu_tokens_forward(tok.data(), Lmax, state_in.data(), nullptr);
                    gpu_self_feed(n, tok);
                }
            }
            gpu_tokens_forward(tok.data(), Lmax, state_in.data(), state_out.data(), nullptr, up);
            std::vector<double> nats(static_cast<size_t>(BL));
            gpu_cross_entropy(target.data(), 1.0 / denominator, nats.data());
            for (int i = 0; i < BL; ++i) lane_error[size_t(b0 + i)] = nats[size_t(i)];
        }
        for (int i = 0; i < BL; ++i) {
            const int b = b0 + i;
            if (effect) {
                const int64_t off = i * Lmax;
                lane_loss(b, n[size_t(b)], skip[size_t(b)], lane_den[size_t(b)], denominator, out.data() + off,
                          dout.data() + off);
            }
            Lane& l = lanes[size_t(b)];
            std::copy(state_out.begin() + i * S, state_out.begin() + (i + 1) * S, l.next_state.begin());
        }
        if (effect && opt.stft_weight > 0) gpu_stft_term(n, skip, Lmax, out, dout);
        std::fill(grads.data(), grads.data() + grads.parameter_count(), 0.0f);
        gpu_backward(effect ? dout.data() : nullptr, grads);
#else
        (void)n, (void)skip, (void)lane_den, (void)denominator;
        throw std::runtime_error("training on cuda: this build has no CUDA support");
#endif
    }

    StepStats do_step(bool stop_requested) {
        profile_capture_at(step + 1, profile.first, true);
        StepStats st = take_step(stop_requested);
        profile_capture_at(step, profile.second, false);
        return st;
    }
    void profile_capture_at(int64_t s, int64_t at, bool on) const {
        if (opt.device != Device::cuda || at == 0 || s != at) return;
#if MW_HAVE_CUDA
        kernels::cuda::profiler_capture(on);
#else
        (void)on;
#endif
    }

    // kernels::cuda::host_trace_step: the step's forward and backward in MW_HOST_TRACE's table
    static void gpu_trace_step(bool begins) {
#if MW_HAVE_CUDA
        kernels::cuda::host_trace_step(begins);
#else
        (void)begins;
#endif
    }
    // kernels::cuda::host_wait_seconds (0 in a build without CUDA)
    static double gpu_wait_so_far() {
#if MW_HAVE_CUDA
        return kernels::cuda::host_wait_seconds();
#else
        return 0;
#endif
    }

    StepStats take_step(bool stop_requested) {
        const int B = opt.batch;
        // Where each lane goes this step (one random stream, lane order: deterministic).
        std::vector<int64_t> n(static_cast<size_t>(B)), skip(static_cast<size_t>(B));
        for (int b = 0; b < B; ++b) {
            Lane& l = lanes[size_t(b)];
            if (l.seq < 0 || l.segs_left <= 0 || remaining(l) < 2) jump(l);
            while (remaining(l) < 2) jump(l);  // a clip too short to learn from
            n[size_t(b)] = std::min(opt.segment, remaining(l));
            // (effects: the warm-up of a fresh lane; generators: a label prefix's own predictions)
            skip[size_t(b)] = effect ? (l.fresh ? std::min(opt.warmup, n[size_t(b)] - 1) : 0)
                                     : std::clamp(data.token_train[size_t(l.seq)].unscored - l.pos, int64_t(0),
                                                  n[size_t(b)] - 1);
        }
        // The loss's denominator depends on the targets only, so it is known before the forward:
        // effects: Σ p(target)² over the counted samples; generators: the number of predictions.
        double denominator = 0;
        std::vector<double> lane_den(static_cast<size_t>(B));  // effects: each lane's share of the loss
        for (int b = 0; b < B; ++b) {
            const Lane& l = lanes[size_t(b)];
            if (effect) {
                const float* t = data.effect_train[size_t(l.seq)].target.data() + l.pos;
                lane_den[size_t(b)] = esr_sums(t, t, n[size_t(b)], opt.preemphasis, skip[size_t(b)]).signal;
                denominator += lane_den[size_t(b)];
            } else {
                denominator += double(n[size_t(b)] - skip[size_t(b)]);
            }
        }
        if (effect && denominator <= 0) denominator = 1e-12;  // all-silent batch: error only
        if (effect) {
            // Pooled: every lane's error over the batch's energy. Balanced: the mean over lanes
            // of error / (the lane's energy + a floor), i.e. lane b divides by B * (E_b + floor).
            const double floor = TrainOptions::kLaneFloor * denominator / B;
            for (double& d : lane_den) d = opt.balance_lanes ? B * (d + floor) : denominator;
        }

        const int64_t P = model.parameter_count();
        float* G = grads.data();
        const auto t_start = std::chrono::steady_clock::now();
        double gpu_wait_s = 0;
        if (opt.device == Device::cuda) {
            const double wait0 = gpu_wait_so_far();
            gpu_trace_step(true);
            gpu_forward_backward(n, skip, lane_den, denominator);
            gpu_trace_step(false);
            gpu_wait_s = gpu_wait_so_far() - wait0;
        } else {
            pool->run(b1 - b0, [&](int i) {
                const int b = b0 + i;
                cpu_forward_backward(b, n[size_t(b)], skip[size_t(b)], lane_den[size_t(b)], denominator);
            });
            // Sum this rank's lanes' gradients in lane order.
            std::copy(lane_grads[size_t(b0)].data(), lane_grads[size_t(b0)].data() + P, G);
            for (int b = b0 + 1; b < b1; ++b) {
                const float* g = lane_grads[size_t(b)].data();
                for (int64_t i = 0; i < P; ++i) G[i] += g[i];
            }
        }
        const auto t_fb = std::chrono::steady_clock::now();
        // Data-parallel: the ranks' partial sums make the global gradient, the same on every rank;
        // with it go the loss and the stop requests.
        double shared[2] = {0, stop_requested ? 1.0 : 0.0};
        for (int b = b0; b < b1; ++b) shared[0] += lane_error[size_t(b)];
        if (opt.comm) {
            opt.comm->all_reduce_sum(G, size_t(P));
            opt.comm->all_reduce_sum(shared, 2);
        }
        StepStats st;
        st.stop = shared[1] > 0;
        if (opt.harmonic_decays) model.for_each_A_log(G, kernels::harmonic_decay_gradient);
        if (opt.fixed_dt) model.zero_dt_inputs(G);
        st.grad_norm = clip_grad_norm(G, P, opt.clip_norm, pool.get());
        st.lr = scheduled_lr(opt.adam.lr, step, opt.lr_warmup_steps, opt.steps, opt.final_lr_ratio);
        if (std::isfinite(st.grad_norm)) {
            adam.step(model.data(), G, st.lr, decay.data(), pool.get());
            if (opt.harmonic_decays) model.for_each_A_log(model.data(), kernels::make_decays_harmonic);
        } else {
            throw std::runtime_error("training diverged at step " + std::to_string(step + 1) +
                                     ": the gradient is not finite (try a lower --lr)");
        }
        const double error = shared[0];
        for (int b = 0; b < B; ++b) {  // every rank keeps every lane's place (not its state)
            Lane& l = lanes[size_t(b)];
            st.samples += n[size_t(b)];
            std::swap(l.state, l.next_state);
            l.pos += n[size_t(b)];
            l.segs_left -= 1;
            l.fresh = false;
        }
        st.loss = effect ? error : error / denominator / std::log(2.0);  // (effect lanes are already divided)
        ++step;
        st.step = step;
        const auto t_end = std::chrono::steady_clock::now();
        st.forward_backward_s = std::chrono::duration<double>(t_fb - t_start).count();
        st.update_s = std::chrono::duration<double>(t_end - t_fb).count();
        st.gpu_wait_s = gpu_wait_s;
        return st;
    }

    int rank() const { return opt.comm ? opt.comm->rank() : 0; }
    int ranks() const { return opt.comm ? opt.comm->size() : 1; }
    // Data-parallel validation: sequence i is this rank's when i % ranks == rank.
    bool owns_val(size_t i) const { return int(i % size_t(ranks())) == rank(); }

    // A generator's validation on the GPU, through the training tape: this rank's clips, as many
    // at once as the tape has lanes, in segments of the training length with each clip's state
    // carried across them, the cross-entropy on the GPU (only the nats per lane come back). One
    // clip at a time through the inference path, with the logits brought back to the CPU for
    // the loss, took 4 s per validation of the digits data (1M samples) on an H200.
    NllSums gpu_validate_tokens() const {
        NllSums nll;
#if MW_HAVE_CUDA
        const int BL = b1 - b0;
        const int64_t S = model.state_floats_per_stream(), seg = opt.segment;
        std::vector<size_t> mine;
        for (size_t i = 0; i < data.token_val.size(); ++i)
            if (owns_val(i) && data.token_val[i].tokens.size() >= 2) mine.push_back(i);
        std::vector<float> state(size_t(BL * S)), next(state.size());
        std::vector<int32_t> tok, target;
        std::vector<double> nats(static_cast<size_t>(BL));
        for (size_t g = 0; g < mine.size(); g += size_t(BL)) {
            const size_t lanes = std::min(mine.size() - g, size_t(BL));
            int64_t longest = 0;  // predictions of the group's longest clip
            for (size_t j = 0; j < lanes; ++j)
                longest = std::max(longest, int64_t(data.token_val[mine[g + j]].tokens.size()) - 1);
            std::fill(state.begin(), state.end(), 0.0f);
            for (int64_t off = 0; off < longest; off += seg) {
                const int64_t L = gpu_length(std::min(seg, longest - off));
                tok.assign(size_t(BL * L), 0);
                target.assign(size_t(BL * L), -1);
                for (size_t j = 0; j < lanes; ++j) {
                    const TokenSequence& clip = data.token_val[mine[g + j]];
                    const std::vector<int32_t>& x = clip.tokens;
                    const int64_t n = std::clamp(int64_t(x.size()) - 1 - off, int64_t(0), L);
                    const int64_t u = std::clamp(clip.unscored - off, int64_t(0), n);  // (a label prefix's)
                    std::copy_n(x.begin() + off, n, tok.begin() + int64_t(j) * L);
                    std::copy_n(x.begin() + off + 1 + u, n - u, target.begin() + int64_t(j) * L + u);
                    nll.count += n - u;
                }
                gpu_tokens_forward(tok.data(), L, state.data(), next.data());
                gpu_cross_entropy(target.data(), 1.0, nats.data());
                for (size_t j = 0; j < lanes; ++j) nll.nats += nats[j];
                std::swap(state, next);
            }
        }
#endif
        return nll;
    }

    ValStats do_validate() const {
        ValStats v;
        const ModelConfig& c = model.config();
        if (effect) {
            EsrSums plain, pre;
            double esr_sum = 0, pre_sum = 0;  // of the pairs' own ESRs
            // (On the GPU one pair at a time through the inference path, each in one segment:
            // through the training tape in segments of the training length, as a generator's
            // validation runs, it was slower for the captures' long pairs: 1.6 against 1.2 s.)
            for (size_t i = 0; i < data.effect_val.size(); ++i) {
                if (!owns_val(i)) continue;
                const EffectSequence& s = data.effect_val[i];
                const int64_t L = int64_t(s.input.size());
                std::vector<float> x, y(static_cast<size_t>(L));
                effect_input(c, s.input.data(), L, s.controls.data(), x);
                if (opt.device == Device::cuda)
                    forward_continuous_cuda(model, x.data(), L, y.data());
                else
                    forward_continuous(model, Path::scan, x.data(), L, y.data(), opt.threads);
                const EsrSums a = esr_sums(y.data(), s.target.data(), L, 0.0);
                const EsrSums b = esr_sums(y.data(), s.target.data(), L, kPreemphasis);
                plain += a;
                pre += b;
                esr_sum += a.esr();
                pre_sum += b.esr();
                v.samples += L;
            }
            if (opt.comm) {
                double sums[7] = {plain.error, plain.signal, pre.error, pre.signal, esr_sum, pre_sum, double(v.samples)};
                opt.comm->all_reduce_sum(sums, 7);
                plain = {sums[0], sums[1]};
                pre = {sums[2], sums[3]};
                esr_sum = sums[4];
                pre_sum = sums[5];
                v.samples = int64_t(sums[6]);
            }
            const double n = double(data.effect_val.size());
            v.metric = opt.balance_lanes ? esr_sum / n : plain.esr();
            v.esr_preemph = opt.balance_lanes ? pre_sum / n : pre.esr();
        } else {
            NllSums nll;
            if (opt.device == Device::cuda) {
                nll = gpu_validate_tokens();
            } else {
                TokenForward forward(model, opt.threads);  // made once for every clip
                std::vector<float> logits;
                for (size_t i = 0; i < data.token_val.size(); ++i) {
                    if (!owns_val(i)) continue;
                    const TokenSequence& s = data.token_val[i];
                    const int64_t L = int64_t(s.tokens.size()) - 1;
                    logits.resize(size_t(L * c.vocab));
                    forward.run(s.tokens.data(), L, logits.data());
                    nll += cross_entropy(logits.data(), s.tokens.data() + 1, L, c.vocab,
                                         std::min(s.unscored, L), nullptr, 1.0);
                }
            }
            if (opt.comm) {
                double sums[2] = {nll.nats, double(nll.count)};
                opt.comm->all_reduce_sum(sums, 2);
                nll.nats = sums[0];
                nll.count = int64_t(sums[1]);
            }
            v.metric = nll.bits_per_sample();
            v.samples = nll.count;
        }
        return v;
    }
};

Trainer::Trainer(Model init, TrainData data, TrainOptions options)
    : impl_(std::make_unique<Impl>(std::move(init), std::move(data), options)) {}
Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;

StepStats Trainer::step(bool stop_requested) { return impl_->do_step(stop_requested); }
int Trainer::rank() const { return impl_->rank(); }
int Trainer::ranks() const { return impl_->ranks(); }
ValStats Trainer::validate() { return impl_->do_validate(); }
const Model& Trainer::model() const { return impl_->model; }
int64_t Trainer::steps_done() const { return impl_->step; }
const TrainOptions& Trainer::options() const { return impl_->opt; }
const TrainData& Trainer::data() const { return impl_->data; }
const std::string& Trainer::data_hash() const { return impl_->hash; }
bool Trainer::effect() const { return impl_->effect; }

void Trainer::save_checkpoint(const std::string& dir) {
    const Impl& m = *impl_;
    const int B = m.opt.batch;
    const size_t S = size_t(m.model.state_floats_per_stream());
    std::vector<float> states(size_t(B) * S, 0.0f);  // [B][S]; each rank holds its own lanes' states
    json lanes = json::array();
    for (int b = 0; b < B; ++b) {
        const Lane& l = m.lanes[size_t(b)];
        if (b >= m.b0 && b < m.b1)
            std::copy(l.state.begin(), l.state.end(), states.begin() + ptrdiff_t(size_t(b) * S));
        lanes.push_back({{"seq", l.seq}, {"pos", l.pos}, {"segs_left", l.segs_left}, {"fresh", l.fresh},
                         {"null_label", l.null_label}});
    }
    if (m.opt.comm) m.opt.comm->all_reduce_sum(states.data(), states.size());  // the others add zeros
    if (m.rank() != 0) return;
    fs::create_directories(dir);
    save_model(m.model, (fs::path(dir) / kModelFile).string());
    std::ostringstream rng_text;
    rng_text << m.rng;
    const json meta = {{"version", kCheckpointVersion},
                       {"step", m.step},
                       {"adam_steps", m.adam.steps_taken()},
                       {"rng", rng_text.str()},
                       {"lanes", lanes},
                       {"options", options_to_json(m.opt)},
                       {"data_hash", m.hash}};
    AdamW& adam = const_cast<AdamW&>(m.adam);  // read-only use of the moments
    const int64_t P = m.model.parameter_count();
    const std::vector<safetensors::TensorToWrite> tensors = {
        {"adam.m", safetensors::DType::F32, {P}, adam.m().data()},
        {"adam.v", safetensors::DType::F32, {P}, adam.v().data()},
        {"lanes.state", safetensors::DType::F32, {int64_t(B), int64_t(S)}, states.data()},
    };
    write_file_atomically((fs::path(dir) / kTrainerFile).string(),
                          safetensors::to_bytes({{"mambawave_trainer", meta.dump()}}, tensors));
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& dir, TrainData data, int64_t steps,
                                         int threads, Device device, bool tf32,
                                         std::shared_ptr<Communicator> comm) {
    const std::string trainer_path = (fs::path(dir) / kTrainerFile).string();
    // A damaged or hand-edited checkpoint is refused with its file named: nlohmann's own
    // messages ("key 'step' not found") do not say which file they are about.
    try {
        return resume_checked(dir, trainer_path, std::move(data), steps, threads, device, tf32, std::move(comm));
    } catch (const json::exception& e) {
        throw std::runtime_error(trainer_path + ": the checkpoint's metadata is damaged (" +
                                 safetensors::short_parse_error(e.what()) +
                                 "); start the run again without --resume");
    }
}

std::unique_ptr<Trainer> Trainer::resume_checked(const std::string& dir, const std::string& trainer_path,
                                                 TrainData data, int64_t steps, int threads, Device device,
                                                 bool tf32, std::shared_ptr<Communicator> comm) {
    Model model = load_model((fs::path(dir) / kModelFile).string());
    const std::vector<uint8_t> bytes = read_file(trainer_path);
    const safetensors::File file = safetensors::parse(trainer_path, bytes.data(), bytes.size());
    const auto it = file.metadata.find("mambawave_trainer");
    if (it == file.metadata.end())
        throw std::runtime_error(trainer_path + ": not a MambaWave checkpoint (no mambawave_trainer metadata)");
    const json meta = json::parse(it->second);
    if (meta.at("version").get<int>() != kCheckpointVersion)
        throw std::runtime_error(trainer_path + ": checkpoint version " + meta.at("version").dump() +
                                 ", this build reads version " + std::to_string(kCheckpointVersion));
    const std::string want = meta.at("data_hash").get<std::string>();
    const std::string have = mw::data_hash(data);
    if (want != have)
        throw std::runtime_error(dir + ": the checkpoint was trained on other data (data hash " + want +
                                 ", the data given now hashes to " + have +
                                 "): resume with the same files, rates, split, labels, speed copies and padding");
    TrainOptions o = options_from_json(meta.at("options"));
    // the lanes' states are a [batch][state] tensor: a batch that does not match it is damage,
    // found before it sizes anything
    const safetensors::TensorInfo* lane_states = file.find("lanes.state");
    if (!lane_states || lane_states->shape.size() != 2 || o.batch < 1 || lane_states->shape[0] != o.batch)
        throw std::runtime_error(trainer_path + ": the checkpoint's batch (" + std::to_string(o.batch) +
                                 " lanes) does not match its lanes.state tensor" +
                                 (lane_states ? " of shape " + safetensors::shape_text(lane_states->shape) : " (missing)"));
    if (steps > 0) o.steps = steps;
    o.threads = threads;
    o.device = device;
    o.tf32 = tf32;
    o.comm = std::move(comm);
    auto impl = std::make_unique<Impl>(std::move(model), std::move(data), o);
    impl->step = meta.at("step").get<int64_t>();
    impl->adam.set_steps_taken(meta.at("adam_steps").get<int64_t>());
    std::istringstream rng_text(meta.at("rng").get<std::string>());
    rng_text >> impl->rng;
    if (!rng_text)
        throw std::runtime_error(trainer_path + ": the checkpoint's random stream ('rng') is damaged: "
                                 "a resumed run would not continue the same data order");

    const int64_t P = impl->model.parameter_count();
    const size_t S = size_t(impl->model.state_floats_per_stream());
    auto read = [&](const std::string& name, std::vector<int64_t> shape, float* out) {
        const safetensors::TensorInfo* t = file.find(name);
        if (!t || t->shape != shape)
            throw std::runtime_error(trainer_path + ": tensor " + name + " missing or not of shape " +
                                     safetensors::shape_text(shape));
        file.read_floats(*t, out);
    };
    read("adam.m", {P}, impl->adam.m().data());
    read("adam.v", {P}, impl->adam.v().data());
    std::vector<float> states(size_t(o.batch) * S);
    read("lanes.state", {int64_t(o.batch), int64_t(S)}, states.data());
    const json& lanes = meta.at("lanes");
    for (int b = 0; b < o.batch; ++b) {
        Lane& l = impl->lanes[size_t(b)];
        const json& j = lanes.at(size_t(b));
        l.seq = j.at("seq").get<int>();
        l.pos = j.at("pos").get<int64_t>();
        l.segs_left = j.at("segs_left").get<int>();
        l.fresh = j.at("fresh").get<bool>();
        l.null_label = j.value("null_label", false);
        // -1: not placed yet; else a training sequence of these data and a position in it
        const int64_t n = impl->n_train();
        if (l.seq < -1 || l.seq >= n || l.pos < 0 || (l.seq >= 0 && l.pos > impl->seq_length(l.seq)))
            throw std::runtime_error(trainer_path + ": lane " + std::to_string(b) + " of the checkpoint is at sequence " +
                                     std::to_string(l.seq) + ", sample " + std::to_string(l.pos) +
                                     ", outside the training data (" + std::to_string(n) + " sequences)");
        std::copy(states.begin() + ptrdiff_t(size_t(b) * S), states.begin() + ptrdiff_t(size_t(b + 1) * S),
                  l.state.begin());
    }
    return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
}

} // namespace mw
