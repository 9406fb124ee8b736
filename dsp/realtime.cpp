// The real-time engine (dsp/realtime.h). Layout of this file:
//   helpers          model loading, Δ-scaling, smoothers, finite checks
//   slots            everything one model needs on the audio thread: its prepared weights,
//                    per-stream state, resamplers, scratch. Built on the message thread,
//                    run on the audio thread, deleted on the message thread.
//   hand-over        an atomic "pending" slot (message -> audio) and a lock-free queue of
//                    retired slots (audio -> message), drained by collect_garbage()
//   EngineCore       what both engines do alike: prepare, set_model, swaps and crossfades
//   EffectEngine     channels = streams of one effect model
//   SynthEngine      voices = streams of one generator model
#include "dsp/realtime.h"

#include "dsp/denormals.h"
#include "dsp/mulaw.h"
#include "dsp/resampler.h"
#include "dsp/spsc_queue.h"
#include "model/model_file.h"
#include "model/pooled.h"
#include "model/sampling.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace mw::dsp {

namespace {

// ---- helpers -------------------------------------------------------------------------------

// FNV-1a 64 over the bytes of the files, in order.
std::string fnv1a_hex(const std::vector<std::string>& files) {
    uint64_t h = 1469598103934665603ull;
    std::vector<char> buf(1 << 16);
    for (const std::string& f : files) {
        std::ifstream in(f, std::ios::binary);
        if (!in) throw ModelError(f + ": cannot be read to hash it");
        while (in) {
            in.read(buf.data(), std::streamsize(buf.size()));
            const std::streamsize got = in.gcount();
            for (std::streamsize i = 0; i < got; ++i) {
                h ^= uint8_t(buf[size_t(i)]);
                h *= 1099511628211ull;
            }
        }
    }
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
    return text;
}

// Δ-scaling by weights (see RateMode::delta): A_log += ln α, B *= α (x_proj's B rows, or an
// LTI layer's B).
void apply_delta_scaling(Model& m, double alpha) {
    const ModelConfig& c = m.config();
    const float log_alpha = float(std::log(alpha));
    const int64_t EN = int64_t(c.d_inner) * c.d_state;
    for (int l = 0; l < c.n_layers; ++l) {
        const std::string p = "backbone.layers." + std::to_string(l) + ".mixer.";
        float* A_log = m.tensor(p + "A_log");        // [E][N]
        for (int64_t i = 0; i < EN; ++i) A_log[i] += log_alpha;
        if (c.is_lti(l)) {
            float* B = m.tensor(p + "B");            // [E][N]
            for (int64_t i = 0; i < EN; ++i) B[i] *= float(alpha);
            continue;
        }
        float* x_proj = m.tensor(p + "x_proj.weight");  // [R + 2N][E]: rows R .. R+N-1 are B
        for (int r = c.dt_rank; r < c.dt_rank + c.d_state; ++r)
            for (int e = 0; e < c.d_inner; ++e) x_proj[int64_t(r) * c.d_inner + e] *= float(alpha);
    }
}

bool same_rate(double a, double b) { return std::fabs(a - b) < 1e-6; }

// The effect engine runs continuous models, the synth engine mulaw8 ones: a model of the other
// kind is refused, by name.
void check_kind(const RealtimeModel& model, IoKind engine_runs) {
    if (model.model.config().kind == engine_runs) return;
    const std::string name = model.path.empty() ? std::string("the model") : model.path;
    throw std::invalid_argument(name + (engine_runs == IoKind::continuous
                                            ? " is a generator (mulaw8) model; the effect engine runs effect "
                                              "(continuous) models"
                                            : " is an effect (continuous) model; the synth engine runs "
                                              "generator (mulaw8) models"));
}

float db_to_gain(float db) { return std::isfinite(db) ? std::pow(10.0f, std::clamp(db, -120.0f, 40.0f) / 20.0f) : 1.0f; }

bool all_finite(const float* x, int64_t n) {
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) ok &= std::isfinite(x[i]);
    return ok;
}

// A linear ramp to a target over a fixed number of samples; exactly at the target when idle.
struct Smoother {
    float value = 0, target = 0, step = 0;
    int remaining = 0, ramp = 1;

    void setup(int ramp_samples, float v) {
        ramp = std::max(1, ramp_samples);
        value = target = v;
        remaining = 0;
    }
    void set_target(float t) {
        if (t == target) return;
        target = t;
        remaining = ramp;
        step = (target - value) / float(ramp);
    }
    float next() {
        if (remaining > 0 && --remaining == 0) value = target;
        else if (remaining > 0) value += step;
        return value;
    }
};

using Clock = std::chrono::steady_clock;

// The load of one block and the running meters (written by the audio thread only).
struct Meters {
    std::atomic<int64_t> nonfinite{0}, swaps{0}, dropped{0}, restarts{0};
    std::atomic<double> load{0}, load_peak{0};
    std::atomic<float> peak_in{0}, peak_out{0};

    void note_block(Clock::time_point t0, int n, double rate_hz) {
        const double block_s = double(n) / rate_hz;
        const double used = std::chrono::duration<double>(Clock::now() - t0).count();
        const double inst = used / block_s;
        const double a = 1.0 - std::exp(-block_s / 0.25);  // ~0.25 s time constant
        const double old = load.load(std::memory_order_relaxed);
        load.store(old + a * (inst - old), std::memory_order_relaxed);
        if (inst > load_peak.load(std::memory_order_relaxed)) load_peak.store(inst, std::memory_order_relaxed);
    }
    static void raise(std::atomic<float>& meter, float v) {
        if (v > meter.load(std::memory_order_relaxed)) meter.store(v, std::memory_order_relaxed);
    }
    EngineStats take() {
        EngineStats s;
        s.nonfinite_events = nonfinite.load();
        s.model_swaps = swaps.load();
        s.dropped_events = dropped.load();
        s.silent_restarts = restarts.load();
        s.load = load.load();
        s.load_peak = load_peak.exchange(0);
        s.peak_in = peak_in.exchange(0);
        s.peak_out = peak_out.exchange(0);
        return s;
    }
};

// ---- hand-over -----------------------------------------------------------------------------

// Slots travel message -> audio through `pending` and audio -> message through `retired`.
// The message thread replaces a pending slot the audio thread has not taken yet and deletes
// it itself; the audio thread takes a pending slot only when no crossfade is running and the
// retired queue has room for the slot it will give back, so it never blocks and never frees.
template <class Slot>
struct HandOver {
    std::atomic<Slot*> pending{nullptr};
    SpscQueue<Slot*> retired{16};

    ~HandOver() { clear(); }
    void publish(Slot* slot) {  // message thread
        if (Slot* old = pending.exchange(slot, std::memory_order_acq_rel)) delete old;
    }
    Slot* take() {  // audio thread
        if (!pending.load(std::memory_order_relaxed) || retired.space() < 1) return nullptr;
        return pending.exchange(nullptr, std::memory_order_acq_rel);
    }
    void retire(Slot* slot) {  // audio thread; room was checked in take()
        if (slot) retired.push(slot);
    }
    void collect() {  // message thread
        Slot* s = nullptr;
        while (retired.pop(s)) delete s;
    }
    void clear() {  // message thread, audio stopped
        collect();
        delete pending.exchange(nullptr);
    }
};

// ---- effect slot ---------------------------------------------------------------------------

// The scan's scratch holds this many rows (a longer block goes through in pieces): enough for
// the usual host blocks, small enough to stay in cache.
constexpr int kScanRows = 256;

struct EffectSlot {
    RealtimeModelPtr model;                      // null: dry
    std::unique_ptr<Model> scaled;               // RateMode::delta: the Δ-scaled copy
    kernels::PreparedModelPtr scaled_prepared;
    const kernels::PreparedModel* P = nullptr;
    const ModelConfig* config = nullptr;
    int channels = 0, n_in = 1, n_cond = 0;
    double run_rate_hz = 0;                      // the rate the model steps at
    bool resampling = false;
    Resampler to_model, to_host;
    int latency = 0;                             // host samples
    int max_model_block = 0;
    kernels::StepStatePtr state;                 // [S = channels], scan scratch for kScanRows rows
    std::vector<float> rows;                     // [max rows][I]: one stream's input for a block
    std::vector<float> control_rows;             // [max rows][n_cond]: smoothed controls per sample
    std::vector<float> model_in, model_out;      // [channels][max_model_block]
    std::vector<float*> model_in_ptr, model_out_ptr;  // [channels]
    std::vector<float> wet;                      // [channels][max_block]
    std::vector<float*> wet_ptr;                 // [channels]
    std::vector<float> dry_delay;                // [channels][latency]
    int dry_pos = 0;
    std::array<Smoother, kMaxControls> controls;
    bool controls_ready = false;
    int64_t samples_run = 0;                     // host samples processed

    // Streams through the model: in [S][K] -> out [S][K]. Returns the non-finite events.
    int run_model(const float* const* in, float* const* out, int K, const float* control_user) {
        const int S = channels, I = n_in;
        for (int i = 0; i < n_cond; ++i) {
            const ControlSpec& spec = config->controls[size_t(i)];
            const float user = control_user[i];
            const float v = std::isnan(user) ? spec.default_value
                                             : std::clamp(user, spec.min_value, spec.max_value);
            const float target = spec.normalise(v);
            if (!controls_ready) controls[size_t(i)].setup(int(kSmoothingSeconds * run_rate_hz), target);
            else controls[size_t(i)].set_target(target);
        }
        controls_ready = true;
        // The smoothed controls of each sample, shared by every stream.
        for (int t = 0; t < K; ++t)
            for (int i = 0; i < n_cond; ++i) control_rows[size_t(t * n_cond + i)] = controls[size_t(i)].next();
        // Each stream's block goes through the scan in one call (one thread, no allocation):
        // the same arithmetic per sample as the step, with the block's rows in flight together
        // instead of one sample's chain of dependent operations at a time.
        int events = 0;
        for (int s = 0; s < S; ++s) {
            for (int t = 0; t < K; ++t) {
                float* row = rows.data() + size_t(t * I);
                row[0] = in[s][t];
                std::copy_n(control_rows.data() + size_t(t * n_cond), n_cond, row + 1);
            }
            kernels::scan_continuous(*P, *state, s, rows.data(), K, out[s], nullptr);
            // A non-finite output means the state blew up: silence from there to the block's
            // end and start the stream over. A state that went bad without showing in the
            // output is caught too.
            const float* o = out[s];
            int bad = 0;
            while (bad < K && std::isfinite(o[bad])) ++bad;
            if (bad < K || !all_finite(kernels::stream_state(*state, s), kernels::stream_state_floats(*state))) {
                std::fill(out[s] + bad, out[s] + K, 0.0f);
                kernels::reset_stream(*state, s);
                ++events;
            }
        }
        return events;
    }

    // dry: [channels][n] sanitised input; pre: the same times the input gain. out: mixed.
    int run(const float* const* dry, const float* const* pre, const float* g_out,
            const float* g_wet, float* const* out, int n, const float* control_user) {
        samples_run += n;
        if (!model) {
            for (int c = 0; c < channels; ++c) std::copy_n(dry[c], n, out[c]);
            return 0;
        }
        int events = 0;
        if (resampling) {
            to_model.push(pre, n);
            const int K = std::min(to_model.ready(), max_model_block);
            to_model.read(model_in_ptr.data(), K);
            events = run_model(model_in_ptr.data(), model_out_ptr.data(), K, control_user);
            to_host.push(model_out_ptr.data(), K);
            to_host.read(wet_ptr.data(), n);  // always n ready: see Resampler's delay choice
        } else {
            events = run_model(pre, wet_ptr.data(), n, control_user);
        }
        for (int c = 0; c < channels; ++c) {
            const float* w = wet_ptr[size_t(c)];
            float* o = out[c];
            if (latency == 0) {
                for (int t = 0; t < n; ++t) o[t] = w[t] * g_out[t] * g_wet[t] + dry[c][t] * (1.0f - g_wet[t]);
                continue;
            }
            float* ring = dry_delay.data() + size_t(c) * size_t(latency);
            int pos = dry_pos;
            for (int t = 0; t < n; ++t) {
                const float d = ring[pos];
                ring[pos] = dry[c][t];
                if (++pos == latency) pos = 0;
                o[t] = w[t] * g_out[t] * g_wet[t] + d * (1.0f - g_wet[t]);
            }
        }
        if (latency > 0) dry_pos = int((dry_pos + int64_t(n)) % latency);
        return events;
    }
};

std::unique_ptr<EffectSlot> make_effect_slot(RealtimeModelPtr model, RateMode mode, double host_rate_hz,
                                             int max_block, int channels) {
    auto slot = std::make_unique<EffectSlot>();
    slot->channels = channels;
    slot->wet.assign(size_t(channels) * size_t(max_block), 0.0f);
    for (int c = 0; c < channels; ++c) slot->wet_ptr.push_back(slot->wet.data() + size_t(c) * size_t(max_block));
    if (!model) return slot;
    check_kind(*model, IoKind::continuous);
    const ModelConfig& cfg = model->model.config();
    if (cfg.n_cond() > kMaxControls)
        throw std::invalid_argument("the model has " + std::to_string(cfg.n_cond()) +
                                    " controls; the real-time engine takes at most " +
                                    std::to_string(kMaxControls));
    slot->model = model;
    slot->config = &cfg;
    slot->n_cond = cfg.n_cond();
    slot->n_in = cfg.n_in();
    const double model_rate_hz = cfg.sample_rate_hz;
    const bool equal = same_rate(model_rate_hz, host_rate_hz);
    slot->P = model->prepared.get();
    slot->run_rate_hz = model_rate_hz;
    if (!equal && mode == RateMode::delta) {
        slot->scaled = std::make_unique<Model>(model->model);
        apply_delta_scaling(*slot->scaled, model_rate_hz / host_rate_hz);
        slot->scaled_prepared = kernels::prepare_model(slot->scaled->view());
        slot->P = slot->scaled_prepared.get();
        slot->run_rate_hz = host_rate_hz;
    }
    slot->resampling = !equal && mode == RateMode::resample;
    if (slot->resampling) {
        slot->to_model.prepare(host_rate_hz, model_rate_hz, channels, max_block, Resampler::DelayUnit::input);
        slot->max_model_block = int(std::ceil(double(max_block) * model_rate_hz / host_rate_hz)) + 4;
        slot->to_host.prepare(model_rate_hz, host_rate_hz, channels, slot->max_model_block,
                              Resampler::DelayUnit::output);
        // Both delays are whole host samples (input unit of the first, output unit of the second).
        slot->latency = int(slot->to_model.delay_ticks() / slot->to_model.ticks_per_input() +
                            slot->to_host.delay_ticks() / slot->to_host.ticks_per_output());
        slot->model_in.assign(size_t(channels) * size_t(slot->max_model_block), 0.0f);
        slot->model_out.assign(size_t(channels) * size_t(slot->max_model_block), 0.0f);
        for (int c = 0; c < channels; ++c) {
            slot->model_in_ptr.push_back(slot->model_in.data() + size_t(c) * size_t(slot->max_model_block));
            slot->model_out_ptr.push_back(slot->model_out.data() + size_t(c) * size_t(slot->max_model_block));
        }
        slot->dry_delay.assign(size_t(channels) * size_t(slot->latency), 0.0f);
    }
    const int max_rows = std::max(max_block, slot->max_model_block);
    slot->state = kernels::make_state(*slot->P, channels, std::min(max_rows, kScanRows));
    slot->rows.assign(size_t(max_rows) * size_t(slot->n_in), 0.0f);
    slot->control_rows.assign(size_t(max_rows) * size_t(std::max(slot->n_cond, 1)), 0.0f);
    return slot;
}

// ---- synth slot ----------------------------------------------------------------------------

constexpr int kMaxEvents = 256;
constexpr double kAttackSeconds = 0.002;

enum class EventType : uint8_t { on, off, all_off };

struct NoteEvent {
    int offset;
    EventType type;
    int note;
    float velocity;
};

// An event with its voice chosen (by the engine, the same for every slot).
struct VoiceEvent {
    int offset;  // host samples into the block
    EventType type;
    int voice;
    float velocity;
    uint64_t seed;
    int note;
};

// Streams of the generator stepped together: their state (or a pooled model's stepper) and
// their logits.
struct VoiceStream {
    int streams = 1;
    kernels::StepStatePtr state;
    std::unique_ptr<pooled::Stepper> pooled;  // a pooled model's step instead (model/pooled.h)
    std::vector<float> logits;                // [streams][V] after the last fed classes
};

struct SynthVoice {
    VoiceStream main;
    // Guidance against the null label (a model trained with label dropout): the voice's stream
    // and a second one, primed with the null label's prefix and fed the voice's classes, stepped
    // together as two streams (one pass over the weights for both); the voice then draws from
    // null_guidance_logits of the two. Made only for a model with a null label.
    VoiceStream pair;
    std::vector<float> guided;    // [V]
    Sampler sampler{SamplerParams{}, 256};
    bool on = false, primed = false, releasing = false, dead = false;
    bool guided_voice = false;  // started with guidance on: runs both streams until it ends
    int label = -1;  // a labelled model's: the label its note asks for (label_for_note)
    float velocity = 0, env = 0, env_step = 0;
    int release_left = 0;  // model samples
    int silent_run = 0;    // model samples in a row of the silence class drawn
    int loud = 0;          // samples of this voice at kSpokenLevel or above
    bool spoke = false;    // ... spoken_samples of them: it said something
    int restarts = 0;      // times it said nothing for kSilentEndSeconds and started again
    int since_start = 0;   // model samples drawn since it was last primed
};

struct SynthSlot {
    RealtimeModelPtr model;  // null: silence
    const kernels::PreparedModel* P = nullptr;
    int vocab = 256;
    int n_labels = 0, label_prefix = 0;  // a labelled model's (ModelConfig::labels, label_prefix)
    bool null_label = false;             // ... trained with label dropout (ModelConfig::label_null)
    double model_rate_hz = 0, host_rate_hz = 0;
    bool resampling = false;
    Resampler to_host;
    int64_t up = 1, down = 1;     // model sample k of host time t: k = ceil(t·down / up)
    int latency = 0;
    int max_model_block = 0;
    std::array<SynthVoice, SynthEngine::kMaxVoices> voices;
    int64_t model_clock = 0;      // model samples made
    int64_t host_clock = 0;       // host samples output
    int attack_samples = 1, release_samples = 1;
    int silent_end_samples = 1;   // kSilentEndSeconds at the model's rate
    int spoken_samples = 1;       // kSpokenSeconds at the model's rate
    float temperature = 1, top_p = 1;
    float guidance = 0;  // SynthEngine::set_guidance
    int restarts = 0;    // voices primed again for saying nothing, since the audio thread last read it

    void start(int v, float velocity, uint64_t seed, int note) {
        SynthVoice& s = voices[size_t(v)];
        s.label = label_prefix > 0 ? label_for_note(note, n_labels) : -1;
        s.guided_voice = null_label && s.label >= 0 && guidance > 0.0f;
        s.on = true;
        s.primed = false;
        s.releasing = false;
        s.dead = false;
        s.silent_run = 0;
        s.loud = 0;
        s.spoke = false;
        s.restarts = 0;
        s.since_start = 0;
        s.velocity = velocity;
        s.env = 0;
        s.env_step = 1.0f / float(attack_samples);
        s.sampler.reset(SamplerParams{temperature, top_p, seed});
    }
    void release(int v) {
        SynthVoice& s = voices[size_t(v)];
        if (!s.on || s.releasing) return;
        s.releasing = true;
        s.release_left = release_samples;
        s.env_step = s.env / float(release_samples);
    }
    void apply(const VoiceEvent& e) {
        if (e.type == EventType::on) start(e.voice, e.velocity, e.seed, e.note);
        else release(e.voice);
    }
    // The model sample at which an event at host offset `offset` of this block takes effect.
    int64_t model_time(int offset) const {
        const int64_t t = host_clock + offset;
        return resampling ? (t * down + up - 1) / up : t;
    }
    // Primes voice s from the zero state: its label's prefix (as in training), else silence;
    // a guided voice's null stream with the null label's prefix.
    bool prime(SynthVoice& s) {
        reset_voice(s);
        bool ok = true;
        if (s.guided_voice) {
            // the label's prefix on stream 0, the null label's (label n) on stream 1
            const int32_t lead[2] = {ModelConfig::label_token(s.label), ModelConfig::label_token(n_labels)};
            for (int i = 0; i < label_prefix && ok; ++i) ok = step(s.pair, lead);
        } else if (s.label >= 0) {
            const int32_t lead = ModelConfig::label_token(s.label);
            for (int i = 0; i < label_prefix && ok; ++i) ok = step(s.main, &lead);
        } else {
            const int32_t silent = kSilenceClass;
            for (int i = 0; i < SynthEngine::kPrimeTokens && ok; ++i) ok = step(s.main, &silent);
        }
        return ok;
    }
    // Feeds one class to voice s (both streams of a guided voice); false when logits came out
    // non-finite.
    bool feed(SynthVoice& s, int32_t token) {
        if (!s.guided_voice) return step(s.main, &token);
        const int32_t both[2] = {token, token};
        return step(s.pair, both);
    }
    // tokens [v.streams] in; false when logits came out non-finite.
    bool step(VoiceStream& v, const int32_t* tokens) {
        if (v.pooled) v.pooled->step(tokens, v.logits.data());
        else kernels::step_tokens(*P, *v.state, tokens, v.logits.data());
        return all_finite(v.logits.data(), v.streams * vocab);
    }
    static void reset_voice(SynthVoice& s) {
        for (VoiceStream* v : {&s.main, &s.pair}) {
            if (v->pooled) v->pooled->reset();
            else if (v->state) kernels::reset_state(*v->state);
        }
    }
    // The logits voice s draws its next class from.
    const float* draw_logits(SynthVoice& s) {
        if (!s.guided_voice) return s.main.logits.data();
        const float* both = s.pair.logits.data();
        null_guidance_logits(both, both + vocab, vocab, guidance, s.guided.data());
        return s.guided.data();
    }
    // One model sample of every voice, summed. Counts non-finite events into *events.
    float generate(int* events) {
        float sum = 0;
        for (SynthVoice& s : voices) {
            if (!s.on || s.dead) continue;
            if (!s.primed) {
                const bool ok = prime(s);
                s.primed = true;
                if (!ok) {
                    reset_voice(s);
                    s.dead = true;
                    s.primed = false;
                    ++*events;
                    continue;
                }
            }
            const int32_t token = s.sampler.sample(draw_logits(s));
            if (s.releasing) {  // linear to exactly 0 in release_samples samples
                s.env = --s.release_left > 0 ? std::max(0.0f, s.env - s.env_step) : 0.0f;
            } else if (s.env < 1.0f) {
                s.env = std::min(1.0f, s.env + s.env_step);
            }
            const float y = mulaw_decode(token);
            sum += y * s.velocity * s.env;
            s.loud += std::fabs(y) >= kSpokenLevel;
            s.spoke = s.spoke || s.loud >= spoken_samples;
            s.silent_run = token == kSilenceClass ? s.silent_run + 1 : 0;
            if (s.releasing && s.env <= 0.0f) {  // faded out
                s.on = false;
                continue;
            }
            if (!s.spoke && !s.releasing && ++s.since_start >= silent_end_samples && s.restarts < kSilentRestarts) {
                // nothing said in its first half second (silence, or a faint hiss): primed again
                // with the next sample, its sampler drawing on
                ++s.restarts;
                ++restarts;
                s.loud = 0;
                s.since_start = 0;
                s.silent_run = 0;
                s.primed = false;
                continue;
            }
            if (s.silent_run >= silent_end_samples) {  // finished
                s.on = false;
                continue;
            }
            if (!feed(s, token)) {
                reset_voice(s);
                s.dead = true;  // silent for the rest of the block, primed again after it
                s.primed = false;
                ++*events;
            }
        }
        return sum;
    }

    // n host samples of the voices' sum into out (mono). Returns non-finite events.
    int run(const VoiceEvent* ev, int n_events, float* out, int n) {
        int events = 0, next = 0;
        if (!model) {
            std::fill_n(out, n, 0.0f);
            host_clock += n;
            return 0;
        }
        for (SynthVoice& s : voices) s.sampler.set_temperature_top_p(temperature, top_p);
        auto apply_due = [&](int64_t k) {
            while (next < n_events && model_time(ev[next].offset) <= k) apply(ev[next++]);
        };
        if (!resampling) {
            for (int t = 0; t < n; ++t) {
                apply_due(model_clock);
                out[t] = generate(&events);
                ++model_clock;
            }
        } else {
            int made = 0;
            while (to_host.ready() < n && made < max_model_block) {
                apply_due(model_clock);
                const float v = generate(&events);
                const float* pv = &v;
                to_host.push(&pv, 1);
                ++model_clock;
                ++made;
            }
            to_host.read(&out, n);
        }
        // Events due at the next model sample (the block ended before it was needed).
        while (next < n_events) apply(ev[next++]);
        for (SynthVoice& s : voices) s.dead = false;
        host_clock += n;
        return events;
    }
};

std::unique_ptr<SynthSlot> make_synth_slot(RealtimeModelPtr model, double host_rate_hz, int max_block) {
    auto slot = std::make_unique<SynthSlot>();
    slot->host_rate_hz = host_rate_hz;
    if (!model) return slot;
    check_kind(*model, IoKind::mulaw8);
    const ModelConfig& cfg = model->model.config();
    slot->model = model;
    slot->P = model->prepared.get();
    slot->vocab = cfg.vocab;
    if (cfg.labelled()) {
        slot->n_labels = int(cfg.labels.size());
        slot->label_prefix = cfg.label_prefix;
        slot->null_label = cfg.label_null;
    }
    slot->model_rate_hz = cfg.sample_rate_hz;
    slot->resampling = !same_rate(cfg.sample_rate_hz, host_rate_hz);
    slot->max_model_block = max_block;
    if (slot->resampling) {
        slot->max_model_block = int(std::ceil(double(max_block) * cfg.sample_rate_hz / host_rate_hz)) + 4;
        slot->to_host.prepare(cfg.sample_rate_hz, host_rate_hz, 1, slot->max_model_block,
                              Resampler::DelayUnit::output);
        slot->up = slot->to_host.ticks_per_input();     // L = host / g
        slot->down = slot->to_host.ticks_per_output();  // M = model / g
        slot->latency = int(slot->to_host.delay_ticks() / slot->to_host.ticks_per_output());
    }
    slot->attack_samples = std::max(1, int(std::lround(kAttackSeconds * cfg.sample_rate_hz)));
    slot->release_samples = std::max(1, int(std::lround(kReleaseSeconds * cfg.sample_rate_hz)));
    slot->silent_end_samples = std::max(1, int(std::lround(kSilentEndSeconds * cfg.sample_rate_hz)));
    slot->spoken_samples = std::max(1, int(std::lround(kSpokenSeconds * cfg.sample_rate_hz)));
    auto make_stream = [&](VoiceStream& stream, int streams) {
        stream.streams = streams;
        if (cfg.pooled()) stream.pooled = std::make_unique<pooled::Stepper>(model->pooled, streams);  // the shared weights
        else stream.state = kernels::make_state(*slot->P, streams, 1);
        stream.logits.assign(size_t(streams) * size_t(cfg.vocab), 0.0f);
    };
    for (SynthVoice& v : slot->voices) {
        make_stream(v.main, 1);
        if (slot->null_label) {  // (a guided voice's second stream)
            make_stream(v.pair, 2);
            v.guided.assign(size_t(cfg.vocab), 0.0f);
        }
        if (cfg.vocab != 256) v.sampler = Sampler(SamplerParams{}, cfg.vocab);
    }
    return slot;
}

} // namespace

// ---- labels on keys ------------------------------------------------------------------------

std::string note_name(int note) {
    static constexpr const char* kNames[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};
    const int octave = (note >= 0 ? note / 12 : (note - 11) / 12) - 1;
    return kNames[((note % 12) + 12) % 12] + std::to_string(octave);
}

int parse_note_name(const std::string& text) {
    if (text.empty() || text.size() > 5) return -1;
    auto number = [](const std::string& digits, int lo, int hi) {  // a whole number in [lo, hi], else INT_MIN
        if (digits.empty() || digits.size() > 3) return INT_MIN;
        size_t i = digits[0] == '-' ? 1 : 0;
        if (i == digits.size()) return INT_MIN;
        for (size_t k = i; k < digits.size(); ++k)
            if (digits[k] < '0' || digits[k] > '9') return INT_MIN;
        const int v = std::stoi(digits);
        return v >= lo && v <= hi ? v : INT_MIN;
    };
    if (const int midi = number(text, 0, 127); midi != INT_MIN) return midi;
    static constexpr int kSemitone[7] = {9, 11, 0, 2, 4, 5, 7};  // A B C D E F G
    const char letter = char(std::toupper(static_cast<unsigned char>(text[0])));
    if (letter < 'A' || letter > 'G') return -1;
    int pitch = kSemitone[letter - 'A'];
    size_t i = 1;
    if (i < text.size() && (text[i] == '#' || text[i] == 'b')) pitch += text[i++] == '#' ? 1 : -1;
    const int octave = number(text.substr(i), -1, 9);
    if (octave == INT_MIN) return -1;
    const int note = (octave + 1) * 12 + pitch;
    return note >= 0 && note <= 127 ? note : -1;
}

std::string label_keys_text(const ModelConfig& config) {
    if (!config.labelled() || config.labels.empty()) return {};
    const int n = int(config.labels.size());
    auto key = [&](int i) { return note_name(kFirstLabelNote + i) + " plays " + config.labels[size_t(i)]; };
    if (n == 1) return key(0) + ", every key";
    return key(0) + (n == 2 ? ", " : " ... ") + key(n - 1) + ", every " + std::to_string(n) + " keys";
}

// ---- models --------------------------------------------------------------------------------

RealtimeModelPtr load_realtime_model(const std::string& path) {
    auto rm = std::make_shared<RealtimeModel>();
    rm->model = load_model(path);
    try {
        if (rm->model.config().pooled()) rm->pooled = pooled::prepare(rm->model);
        else rm->prepared = kernels::prepare_model(rm->model.view());
    } catch (const std::exception& e) {
        throw ModelError(path + ": " + e.what());
    }
    rm->path = path;
    std::vector<std::string> files{path};
    if (std::filesystem::is_directory(path))
        files = {(std::filesystem::path(path) / "config.json").string(),
                 (std::filesystem::path(path) / "model.safetensors").string()};
    rm->content_hash = fnv1a_hex(files);
    return rm;
}

RealtimeModelPtr make_realtime_model(Model model) {
    auto rm = std::make_shared<RealtimeModel>();
    rm->model = std::move(model);
    if (rm->model.config().pooled()) rm->pooled = pooled::prepare(rm->model);
    else rm->prepared = kernels::prepare_model(rm->model.view());
    return rm;
}

// ---- what both engines share ---------------------------------------------------------------

// The sizes, the model most recently set, the slot running on the audio thread, the one fading
// out after a swap, and the hand-over between the threads. The effect and the synth do all of
// this the same way; they differ in the slot they build (make_slot) and in how they run it.
template <class Slot>
struct EngineCore {
    // prepare() (message thread, audio stopped)
    bool prepared = false;
    double host_rate_hz = 48000;
    int max_block = 0, channels = 0;

    // message thread
    mutable std::mutex latest_mutex;  // model() may be asked from any thread
    RealtimeModelPtr latest;
    std::atomic<int> latency{0};
    HandOver<Slot> hand;

    // audio thread
    Slot* current = nullptr;
    Slot* fading = nullptr;  // the one fading out
    int fade_pos = 0, fade_len = 1;

    Meters meters;

    virtual ~EngineCore() {
        delete current;
        delete fading;
    }

    // Message thread: the slot that runs `model` (null: dry, or silent) at the prepared sizes.
    virtual std::unique_ptr<Slot> make_slot(RealtimeModelPtr model) const = 0;

    // prepare()'s start: refuses bad sizes before anything changes, then drops every slot (the
    // audio thread is stopped) and keeps the sizes. `engine` names the caller in the message.
    void begin_prepare(const char* engine, double rate_hz, int max_block_samples, int n_channels) {
        if (!(rate_hz > 0) || max_block_samples < 1 || n_channels < 1)
            throw std::invalid_argument(std::string(engine) +
                                        "::prepare: rate, block size and channels must be positive");
        prepared = false;
        hand.clear();
        delete current;
        delete fading;
        current = fading = nullptr;
        host_rate_hz = rate_hz;
        max_block = max_block_samples;
        channels = n_channels;
        fade_len = std::max(1, int(std::lround(kCrossfadeSeconds * rate_hz)));
    }

    // prepare()'s end: a slot for the model most recently set. When that throws, the engine is
    // still left prepared, with an empty slot, and the caller gets the error.
    void finish_prepare() {
        const RealtimeModelPtr model_now = model();
        try {
            current = make_slot(model_now).release();
        } catch (...) {
            current = make_slot(nullptr).release();
            latency.store(0);
            prepared = true;
            throw;
        }
        latency.store(current->latency);
        prepared = true;
    }

    // Message thread: hands a slot for `model` to the audio thread.
    void publish(RealtimeModelPtr model) {
        std::unique_ptr<Slot> slot = make_slot(std::move(model));
        latency.store(slot->latency);
        hand.publish(slot.release());
    }

    // set_model(): a model of the other kind is refused even before prepare(). A prepared
    // engine builds the new slot first, so a model it cannot run throws before anything changes.
    void set_model(RealtimeModelPtr model, IoKind engine_runs) {
        if (model) check_kind(*model, engine_runs);
        if (prepared) publish(model);
        std::lock_guard<std::mutex> lock(latest_mutex);
        latest = std::move(model);
    }

    RealtimeModelPtr model() const {
        std::lock_guard<std::mutex> lock(latest_mutex);
        return latest;
    }

    // Audio thread, at the start of process(): until prepare() has run, the output is silence.
    bool silent_until_prepared(float* const* out, int n_channels, int n) const {
        if (prepared) return false;
        for (int c = 0; c < n_channels; ++c) std::fill_n(out[c], n, 0.0f);
        return true;
    }

    // Audio thread, at the start of a block: the slot waiting in the hand-over, if any. While a
    // crossfade runs it waits (two slots at most are ever running).
    Slot* take_waiting() {
        if (fading) return nullptr;
        Slot* next = hand.take();
        if (next) meters.swaps.fetch_add(1, std::memory_order_relaxed);
        return next;
    }

    // Audio thread: `next` runs from now on. The old slot fades out, unless nothing was heard
    // from it yet (nothing processed since prepare()): then it goes at once, without a fade.
    void switch_to(Slot* next, bool old_was_heard) {
        if (!old_was_heard) {
            hand.retire(current);
            current = next;
        } else {
            fading = current;
            current = next;
            fade_pos = 0;
        }
    }

    // Audio thread, during a crossfade: new_out = old_out·(1 − g) + new_out·g for this block's n
    // samples, g rising linearly to 1 over fade_len samples.
    void crossfade(float* new_out, const float* old_out, int n) const {
        for (int t = 0; t < n; ++t) {
            const int k = fade_pos + t;
            const float g = k < fade_len ? float(k + 1) / float(fade_len) : 1.0f;
            new_out[t] = old_out[t] * (1.0f - g) + new_out[t] * g;
        }
    }

    // Audio thread, after each crossfaded block of n samples: the old slot goes once the fade
    // is complete.
    void advance_fade(int n) {
        fade_pos += n;
        if (fade_pos >= fade_len) {
            hand.retire(fading);
            fading = nullptr;
        }
    }
};

// ---- EffectEngine --------------------------------------------------------------------------

struct EffectEngine::Impl : EngineCore<EffectSlot> {
    // prepare() (message thread, audio stopped)
    std::vector<float> dry, pre, out_a, out_b;  // [channels][max_block]
    std::vector<float*> dry_ptr, pre_ptr, a_ptr, b_ptr;
    std::vector<const float*> in_at;            // [channels] in + chunk start
    std::vector<float*> out_at;                 // [channels]
    std::vector<float> g_out, g_wet;            // [max_block]

    // message thread
    std::atomic<int> mode{int(RateMode::resample)};

    // audio thread
    Smoother in_g, out_g, wet_g;

    // parameters (any thread)
    std::atomic<float> in_gain{1}, out_gain{1}, mix{1};
    std::atomic<bool> bypass{false};
    std::array<std::atomic<float>, kMaxControls> controls;  // user units; NaN = the default

    Impl() {
        for (auto& c : controls) c.store(std::numeric_limits<float>::quiet_NaN());
    }

    std::unique_ptr<EffectSlot> make_slot(RealtimeModelPtr model) const override {
        return make_effect_slot(std::move(model), RateMode(mode.load()), host_rate_hz, max_block, channels);
    }

    float wet_target() const {
        return bypass.load(std::memory_order_relaxed) ? 0.0f
                                                      : std::clamp(mix.load(std::memory_order_relaxed), 0.0f, 1.0f);
    }

    void process_block(const float* const* in, float* const* out, int C, int n) {
        if (EffectSlot* next = take_waiting()) switch_to(next, current->samples_run != 0);
        in_g.set_target(in_gain.load(std::memory_order_relaxed));
        out_g.set_target(out_gain.load(std::memory_order_relaxed));
        wet_g.set_target(wet_target());
        float control_user[kMaxControls];
        for (int i = 0; i < kMaxControls; ++i) control_user[i] = controls[size_t(i)].load(std::memory_order_relaxed);

        float peak_in = 0;
        for (int c = 0; c < channels; ++c) {
            float* d = dry_ptr[size_t(c)];
            if (c >= C) {
                std::fill_n(d, n, 0.0f);
                continue;
            }
            for (int t = 0; t < n; ++t) {
                const float x = in[c][t];
                d[t] = std::isfinite(x) ? x : 0.0f;
                peak_in = std::max(peak_in, std::fabs(d[t]));
            }
        }
        for (int t = 0; t < n; ++t) {
            const float gi = in_g.next();
            for (int c = 0; c < channels; ++c) pre_ptr[size_t(c)][t] = dry_ptr[size_t(c)][t] * gi;
            g_out[size_t(t)] = out_g.next();
            g_wet[size_t(t)] = wet_g.next();
        }
        int events = current->run(dry_ptr.data(), pre_ptr.data(), g_out.data(), g_wet.data(),
                                  a_ptr.data(), n, control_user);
        if (fading) {
            events += fading->run(dry_ptr.data(), pre_ptr.data(), g_out.data(), g_wet.data(),
                                  b_ptr.data(), n, control_user);
            for (int c = 0; c < channels; ++c) crossfade(a_ptr[size_t(c)], b_ptr[size_t(c)], n);
            advance_fade(n);
        }
        float peak_out = 0;
        for (int c = 0; c < C; ++c) {
            const float* a = a_ptr[size_t(c)];
            for (int t = 0; t < n; ++t) {
                const float y = std::isfinite(a[t]) ? a[t] : 0.0f;
                out[c][t] = y;
                peak_out = std::max(peak_out, std::fabs(y));
            }
        }
        if (events) meters.nonfinite.fetch_add(events, std::memory_order_relaxed);
        Meters::raise(meters.peak_in, peak_in);
        Meters::raise(meters.peak_out, peak_out);
    }
};

EffectEngine::EffectEngine() : impl_(new Impl) {}
EffectEngine::~EffectEngine() = default;

void EffectEngine::prepare(double host_rate_hz, int max_block_samples, int channels) {
    Impl& s = *impl_;
    s.begin_prepare("EffectEngine", host_rate_hz, max_block_samples, channels);
    const size_t block = size_t(max_block_samples);
    for (auto* v : {&s.dry, &s.pre, &s.out_a, &s.out_b}) v->assign(size_t(channels) * block, 0.0f);
    s.dry_ptr.clear(); s.pre_ptr.clear(); s.a_ptr.clear(); s.b_ptr.clear();
    for (int c = 0; c < channels; ++c) {
        s.dry_ptr.push_back(s.dry.data() + size_t(c) * block);
        s.pre_ptr.push_back(s.pre.data() + size_t(c) * block);
        s.a_ptr.push_back(s.out_a.data() + size_t(c) * block);
        s.b_ptr.push_back(s.out_b.data() + size_t(c) * block);
    }
    s.in_at.assign(size_t(channels), nullptr);
    s.out_at.assign(size_t(channels), nullptr);
    s.g_out.assign(block, 1.0f);
    s.g_wet.assign(block, 1.0f);
    const int ramp = int(std::lround(kSmoothingSeconds * host_rate_hz));
    s.in_g.setup(ramp, s.in_gain.load());
    s.out_g.setup(ramp, s.out_gain.load());
    s.wet_g.setup(ramp, s.wet_target());
    s.finish_prepare();
}

void EffectEngine::set_model(RealtimeModelPtr model) {
    impl_->set_model(std::move(model), IoKind::continuous);
}

RealtimeModelPtr EffectEngine::model() const { return impl_->model(); }

void EffectEngine::set_rate_mode(RateMode mode) {
    Impl& s = *impl_;
    const RateMode old = RateMode(s.mode.exchange(int(mode)));
    if (old == mode || !s.prepared) return;
    try {
        s.publish(model());
    } catch (...) {
        s.mode.store(int(old));
        throw;
    }
}

RateMode EffectEngine::rate_mode() const { return RateMode(impl_->mode.load()); }

void EffectEngine::collect_garbage() { impl_->hand.collect(); }

void EffectEngine::set_input_gain_db(float db) { impl_->in_gain.store(db_to_gain(db)); }
void EffectEngine::set_output_gain_db(float db) { impl_->out_gain.store(db_to_gain(db)); }
void EffectEngine::set_mix(float wet) { impl_->mix.store(std::isfinite(wet) ? std::clamp(wet, 0.0f, 1.0f) : 1.0f); }
void EffectEngine::set_bypass(bool bypass) { impl_->bypass.store(bypass); }
void EffectEngine::set_control(int index, float value) {
    if (index >= 0 && index < kMaxControls && std::isfinite(value)) impl_->controls[size_t(index)].store(value);
}

void EffectEngine::process(const float* const* in, float* const* out, int channels, int n) noexcept {
    if (n <= 0 || channels <= 0) return;
    Impl& s = *impl_;
    ScopedFlushDenormals flush;
    const Clock::time_point t0 = Clock::now();
    if (s.silent_until_prepared(out, channels, n)) return;
    const int C = std::min(channels, s.channels);
    for (int start = 0; start < n; start += s.max_block) {
        const int m = std::min(s.max_block, n - start);
        for (int c = 0; c < C; ++c) {
            s.in_at[size_t(c)] = in[c] + start;
            s.out_at[size_t(c)] = out[c] + start;
        }
        s.process_block(s.in_at.data(), s.out_at.data(), C, m);
    }
    for (int c = C; c < channels; ++c) std::fill_n(out[c], n, 0.0f);
    s.meters.note_block(t0, n, s.host_rate_hz);
}

int EffectEngine::latency_samples() const { return impl_->latency.load(); }
EngineStats EffectEngine::stats() { return impl_->meters.take(); }

// ---- SynthEngine ---------------------------------------------------------------------------

struct SynthEngine::Impl : EngineCore<SynthSlot> {
    struct VoiceInfo {
        bool active = false, held = false;
        int note = -1;
        float velocity = 0;
        uint64_t seed = 0;
        int64_t start_time = 0, release_end = 0;  // host samples
    };

    int release_host_samples = 1;
    std::vector<float> mono_a, mono_b;  // [max_block]

    Smoother level_g;

    std::atomic<float> temperature{1}, top_p{1}, level{1}, guidance{0};
    std::atomic<uint32_t> seed{0};

    // audio thread: the events of the next block, sorted by offset, and the voices
    std::array<NoteEvent, kMaxEvents> queue;
    int queued = 0;
    std::array<VoiceEvent, kMaxEvents * kMaxVoices> resolved;
    std::array<VoiceInfo, kMaxVoices> voices;
    int64_t clock = 0;  // host samples processed since prepare
    std::atomic<int> active{0}, sounding{0};

    std::unique_ptr<SynthSlot> make_slot(RealtimeModelPtr model) const override {
        return make_synth_slot(std::move(model), host_rate_hz, max_block);
    }

    void enqueue(NoteEvent e) {
        if (queued == kMaxEvents) {
            meters.dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        int i = queued++;
        while (i > 0 && queue[size_t(i - 1)].offset > e.offset) {
            queue[size_t(i)] = queue[size_t(i - 1)];
            --i;
        }
        queue[size_t(i)] = e;
    }

    int pick_voice(int note, int64_t time) const {
        for (int v = 0; v < kMaxVoices; ++v)
            if (voices[size_t(v)].active && voices[size_t(v)].note == note) return v;  // re-prime
        for (int v = 0; v < kMaxVoices; ++v) {
            const VoiceInfo& i = voices[size_t(v)];
            if (!i.active || (!i.held && i.release_end <= time)) return v;
        }
        int best = -1;  // the oldest releasing voice, else the oldest voice
        for (int pass = 0; pass < 2 && best < 0; ++pass)
            for (int v = 0; v < kMaxVoices; ++v) {
                const VoiceInfo& i = voices[size_t(v)];
                if (pass == 0 && i.held) continue;
                if (best < 0 || i.start_time < voices[size_t(best)].start_time) best = v;
            }
        return best;
    }

    // Events of the chunk [0, n) (offsets already relative to it) -> voice events.
    int resolve(const NoteEvent* ev, int count, int n) {
        int out = 0;
        const uint64_t seed_now = seed.load(std::memory_order_relaxed);
        auto release = [&](int v, int offset) {
            VoiceInfo& i = voices[size_t(v)];
            i.held = false;
            i.release_end = clock + offset + release_host_samples;
            resolved[size_t(out++)] = {offset, EventType::off, v, 0.0f, 0, i.note};
        };
        for (int k = 0; k < count; ++k) {
            const NoteEvent& e = ev[k];
            const int offset = std::clamp(e.offset, 0, n - 1);
            const int64_t time = clock + offset;
            if (e.type == EventType::on) {
                const int v = pick_voice(e.note, time);
                VoiceInfo& i = voices[size_t(v)];
                i = {true, true, e.note, e.velocity, seed_now + uint64_t(e.note), time,
                     std::numeric_limits<int64_t>::max()};
                resolved[size_t(out++)] = {offset, EventType::on, v, e.velocity, i.seed, e.note};
            } else {
                for (int v = 0; v < kMaxVoices; ++v)
                    if (voices[size_t(v)].active && voices[size_t(v)].held &&
                        (e.type == EventType::all_off || voices[size_t(v)].note == e.note))
                        release(v, offset);
            }
        }
        return out;
    }

    void process_block(const NoteEvent* ev, int count, float* const* out, int C, int n) {
        const int n_resolved = resolve(ev, count, n);
        if (SynthSlot* next = take_waiting()) {
            next->temperature = current->temperature;
            next->top_p = current->top_p;
            next->guidance = current->guidance;
            for (int v = 0; v < kMaxVoices; ++v) {  // held notes go on in the new model
                const VoiceInfo& i = voices[size_t(v)];
                if (i.active && i.held && next->model) next->start(v, i.velocity, i.seed, i.note);
            }
            switch_to(next, current->host_clock != 0);
        }
        const float temp = std::clamp(temperature.load(std::memory_order_relaxed), 0.05f, 2.0f);
        const float p = std::clamp(top_p.load(std::memory_order_relaxed), 0.05f, 1.0f);
        const float w = std::clamp(guidance.load(std::memory_order_relaxed), 0.0f, SynthEngine::kMaxGuidance);
        for (SynthSlot* slot : {current, fading})
            if (slot) {
                slot->temperature = temp;
                slot->top_p = p;
                slot->guidance = w;
            }
        int events = current->run(resolved.data(), n_resolved, mono_a.data(), n);
        if (fading) {
            events += fading->run(resolved.data(), n_resolved, mono_b.data(), n);
            crossfade(mono_a.data(), mono_b.data(), n);
            advance_fade(n);
        }
        level_g.set_target(level.load(std::memory_order_relaxed));
        float peak = 0;
        for (int t = 0; t < n; ++t) {
            float y = mono_a[size_t(t)] * level_g.next();
            if (!std::isfinite(y)) y = 0.0f;
            peak = std::max(peak, std::fabs(y));
            for (int c = 0; c < C; ++c) out[c][t] = y;
        }
        clock += n;
        int n_active = 0;
        for (VoiceInfo& i : voices) {
            if (i.active && !i.held && i.release_end <= clock) i.active = false;
            n_active += i.active;
        }
        active.store(n_active, std::memory_order_relaxed);
        int n_sounding = 0;
        for (const SynthVoice& s : current->voices) n_sounding += s.on;
        sounding.store(n_sounding, std::memory_order_relaxed);
        if (events) meters.nonfinite.fetch_add(events, std::memory_order_relaxed);
        for (SynthSlot* slot : {current, fading})
            if (slot && slot->restarts) {
                meters.restarts.fetch_add(slot->restarts, std::memory_order_relaxed);
                slot->restarts = 0;
            }
        Meters::raise(meters.peak_out, peak);
    }
};

SynthEngine::SynthEngine() : impl_(new Impl) {}
SynthEngine::~SynthEngine() = default;

void SynthEngine::prepare(double host_rate_hz, int max_block_samples, int channels) {
    Impl& s = *impl_;
    s.begin_prepare("SynthEngine", host_rate_hz, max_block_samples, channels);
    s.mono_a.assign(size_t(max_block_samples), 0.0f);
    s.mono_b.assign(size_t(max_block_samples), 0.0f);
    s.release_host_samples = std::max(1, int(std::lround(kReleaseSeconds * host_rate_hz)));
    s.level_g.setup(int(std::lround(kSmoothingSeconds * host_rate_hz)), s.level.load());
    s.queued = 0;
    s.voices = {};
    s.clock = 0;
    s.active.store(0);
    s.sounding.store(0);
    s.finish_prepare();
}

void SynthEngine::set_model(RealtimeModelPtr model) {
    impl_->set_model(std::move(model), IoKind::mulaw8);
}

RealtimeModelPtr SynthEngine::model() const { return impl_->model(); }

void SynthEngine::collect_garbage() { impl_->hand.collect(); }

void SynthEngine::set_temperature(float t) { if (std::isfinite(t)) impl_->temperature.store(std::clamp(t, 0.05f, 2.0f)); }
void SynthEngine::set_top_p(float p) { if (std::isfinite(p)) impl_->top_p.store(std::clamp(p, 0.05f, 1.0f)); }
void SynthEngine::set_guidance(float w) {
    if (std::isfinite(w)) impl_->guidance.store(std::clamp(w, 0.0f, kMaxGuidance));
}
void SynthEngine::set_level_db(float db) { impl_->level.store(db_to_gain(db)); }
void SynthEngine::set_seed(uint32_t seed) { impl_->seed.store(seed); }

void SynthEngine::note_on(int note, float velocity, int sample_offset) noexcept {
    if (note < 0 || note > 127) return;
    const float v = std::isfinite(velocity) ? std::clamp(velocity, 0.0f, 1.0f) : 0.0f;
    if (v == 0.0f) return note_off(note, sample_offset);  // MIDI: velocity 0 is a note-off
    impl_->enqueue({std::max(0, sample_offset), EventType::on, note, v});
}

void SynthEngine::note_off(int note, int sample_offset) noexcept {
    if (note < 0 || note > 127) return;
    impl_->enqueue({std::max(0, sample_offset), EventType::off, note, 0.0f});
}

void SynthEngine::all_notes_off() noexcept { impl_->enqueue({0, EventType::all_off, -1, 0.0f}); }

void SynthEngine::process(float* const* out, int channels, int n) noexcept {
    if (n <= 0 || channels <= 0) return;
    Impl& s = *impl_;
    ScopedFlushDenormals flush;
    const Clock::time_point t0 = Clock::now();
    if (s.silent_until_prepared(out, channels, n)) {
        s.queued = 0;  // events sent before prepare() are dropped
        return;
    }
    const int C = channels;
    float* out_at[64];
    const int Cp = std::min(C, 64);
    int next = 0;
    for (int start = 0; start < n; start += s.max_block) {
        const int m = std::min(s.max_block, n - start);
        const bool last = start + m >= n;
        NoteEvent chunk[kMaxEvents];
        int count = 0;
        while (next < s.queued && (last || s.queue[size_t(next)].offset < start + m)) {
            chunk[count] = s.queue[size_t(next++)];
            chunk[count].offset -= start;
            ++count;
        }
        for (int c = 0; c < Cp; ++c) out_at[c] = out[c] + start;
        s.process_block(chunk, count, out_at, Cp, m);
    }
    for (int c = Cp; c < C; ++c) std::copy_n(out[0], n, out[c]);
    s.queued = 0;
    s.meters.note_block(t0, n, s.host_rate_hz);
}

int SynthEngine::latency_samples() const { return impl_->latency.load(); }
int SynthEngine::active_voices() const { return impl_->active.load(); }
int SynthEngine::sounding_voices() const { return impl_->sounding.load(); }
EngineStats SynthEngine::stats() { return impl_->meters.take(); }

} // namespace mw::dsp
