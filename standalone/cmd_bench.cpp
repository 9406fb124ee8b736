// `mambawave bench`: the CPU paths side by side in one run, on random models of the sizes we
// ship or on model files (--model), against this CPU's own peak rates measured in the same run
// (the floor).
#include "cli_common.h"
#include "commands.h"
#include "kernels/fast.h"
#include "kernels/fixed_dt.h"
#include "kernels/harmonic_decay.h"
#include "kernels/reference.h"
#include "kernels/thread_pool.h"
#include "model/model_file.h"
#include "model/pooled.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace mw::cli {
namespace {

struct BenchShape {
    IoKind kind;
    int d_model, n_layers, streams;
    bool harmonic = false;  // A_log made harmonic (kernels/harmonic_decay.h): one exp per channel
    bool fixed_dt = false;  // Δ fixed per channel (kernels/fixed_dt.h): decays from a table, no exp
    bool lti = false;       // every layer LTI: Δ, B and C constants per channel, no x_proj, no exp
    bool f16 = false;       // every weight rounded to a half, as a model stored as F16: the step reads halves
};

struct BenchOptions {
    bool json = false;
    bool quick = false;
    double seconds = 0.3;  // per measurement
    std::vector<std::string> model_paths;  // --model, repeatable
    bool synthetic = false;                // with --model: the synthetic sizes too
};

// One model to time and how to report it: a random model of a BenchShape, or a model file.
struct BenchTarget {
    const Model* model;
    std::string file;  // the model file; empty for a synthetic shape
    int streams;       // streams stepped together: 1 mono, 2 stereo
    double rate_hz;     // the sample rate that % of a core and x real time refer to
};

// Median of a few timed runs of fn(), each run long enough to be measurable; ns per unit.
template <class F>
double time_ns_per(F&& fn, double units_per_call, double seconds) {
    std::vector<double> runs;
    int calls = 1;
    for (int warm = 0; warm < 8; ++warm) {  // size `calls` so a run takes about seconds/3
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < calls; ++i) fn();
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (dt > seconds / 3) break;
        calls = dt > 1e-4 ? std::max(calls + 1, int(calls * (seconds / 3) / dt)) : calls * 10;
    }
    for (int r = 0; r < 3; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < calls; ++i) fn();
        runs.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
                       (calls * units_per_call));
    }
    std::sort(runs.begin(), runs.end());
    return runs[1];
}

Model random_model(const BenchShape& s) {
    ModelConfig c = make_config(s.kind, s.d_model, s.n_layers);
    for (int l = 0; s.lti && l < s.n_layers; ++l) c.lti_layers.push_back(l);
    Model m(c);
    m.init_random(1, 0.3f);
    if (s.harmonic) m.for_each_A_log(m.data(), kernels::make_decays_harmonic);
    if (s.fixed_dt) m.zero_dt_inputs(m.data());
    if (s.f16)
        for (int64_t i = 0; i < m.parameter_count(); ++i) m.data()[i] = kernels::round_to_half(m.data()[i]);
    return m;
}


struct Row {
    std::string path;
    double ns_per_sample;  // per sample of one stream
};

// "48k", "44.1k", "8k": a sample rate in column headers.
std::string rate_label(double rate_hz) {
    char text[32];
    std::snprintf(text, sizeof text, "%gk", rate_hz / 1000.0);
    return text;
}

void print_table_header(double rate_hz) {
    std::printf("%-11s %-8s %-6s %-14s %10s %10s %10s %11s %10s %9s %8s\n", "kind", "size", "chan", "path",
                "ns/sample", ("%core@" + rate_label(rate_hz)).c_str(), "x realtime", "samples/s", "vs ref",
                "floor ns", "/floor");
}

// Times every CPU path of t.model side by side and prints one row (or JSON object) per path.
void bench_model(const BenchTarget& t, const BenchOptions& opt, const kernels::PeakRates& peaks,
                 kernels::ThreadPool& pool2) {
    const Model& m = *t.model;
    const ModelConfig& c = m.config();
    const kernels::ModelView& v = m.view();
    const int streams = t.streams;
    const bool gen = c.kind == IoKind::mulaw8;
    const int I = gen ? 1 : c.n_in(), V = c.vocab;
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uni(-0.5f, 0.5f);
    const int64_t L = opt.quick ? 8192 : 32768;
    std::vector<float> x(size_t(L) * I * streams);            // [L][streams][I]
    std::vector<float> y(size_t(L) * (gen ? V : 1) * streams);  // [L][streams][V] or [L][streams]
    std::vector<int32_t> tok(size_t(L) * streams);              // [L][streams]
    for (float& f : x) f = uni(rng);
    for (int32_t& tk : tok) tk = int32_t(rng() % uint32_t(V));
    auto P = kernels::prepare_model(v);
    // A model stored as F16: the step reads halves of its large products (kernels::PrepareOptions),
    // timed beside the same step reading the floats ("step_floats")
    const int64_t halves = kernels::half_weight_count(*P);
    auto P_floats = halves > 0 ? kernels::prepare_model(v, {.half_weights = false}) : nullptr;
    std::vector<Row> rows;

    // reference (float64, the oracle): a short sequence is enough to time it
    const int64_t Lref = 1024;
    rows.push_back({"reference", time_ns_per([&] {
                        if (gen) kernels::reference_forward_tokens(v, tok.data(), Lref, y.data());
                        else kernels::reference_forward_continuous(v, x.data(), Lref, y.data());
                    }, double(Lref), opt.seconds)});
    // step: one sample for all streams per call (the audio thread's path)
    for (const kernels::PreparedModel* Q : {P.get(), P_floats.get()}) {
        if (!Q) continue;
        auto S = kernels::make_state(*Q, streams);
        int64_t t = 0;
        rows.push_back({Q == P.get() ? "step" : "step_floats", time_ns_per([&] {
                            t = (t + 1) % L;
                            if (gen) kernels::step_tokens(*Q, *S, tok.data() + t * streams, y.data());
                            else kernels::step_continuous(*Q, *S, x.data() + t * I * streams, y.data());
                        }, double(streams), opt.seconds)});
    }
    // block64, block512: a plugin host's block through the scan, one thread
    // scan: long sequence, chunked, 1 and 2 threads
    struct ScanCase { const char* name; int64_t len; int chunk; kernels::ThreadPool* pool; };
    kernels::ThreadPool pool1(1);
    for (const ScanCase& sc : {ScanCase{"block64", 64, 64, &pool1}, ScanCase{"block512", 512, 512, &pool1},
                               ScanCase{"scan_1thread", L, 1024, &pool1}, ScanCase{"scan_2threads", L, 1024, &pool2}}) {
        auto S = kernels::make_state(*P, 1, sc.chunk);
        int64_t t = 0;
        rows.push_back({sc.name, time_ns_per([&] {
                            t = (t + sc.len) % L;
                            const int64_t t0 = std::min(t, L - sc.len);
                            for (int st = 0; st < streams; ++st) {
                                if (gen) kernels::scan_tokens(*P, *S, 0, tok.data() + t0, sc.len, y.data(), sc.pool);
                                else kernels::scan_continuous(*P, *S, 0, x.data() + t0 * I, sc.len, y.data(), sc.pool);
                            }
                        }, double(sc.len) * streams, opt.seconds)});
    }

    const kernels::WorkPerSample w_floats = kernels::work_per_sample(v);
    kernels::WorkPerSample w = w_floats;
    w.weight_bytes -= 2.0 * double(halves);  // the step's halves: two bytes each, not four
    // A step whose bytes exceed L2: their floor at the rate measured for a cyclic read of as many
    // bytes (kernels::floors), in the same minute as its rows
    auto floors_of = [&](const kernels::WorkPerSample& ww, double* read_rate) {
        const double bytes = ww.weight_bytes + ww.state_bytes;
        *read_rate = bytes > peaks.l2_bytes ? kernels::measure_read_rate(bytes, opt.quick ? 0.05 : 0.2) : 0;
        return kernels::floors(ww, peaks, *read_rate);
    };
    double read_rate = 0, read_rate_floats = 0;
    const kernels::Floors fl = floors_of(w, &read_rate), fl_floats = halves > 0 ? floors_of(w_floats, &read_rate_floats) : fl;
    // the floors and the measured read rate a row's bytes were counted with (the bytes the step
    // reads: halves where it reads halves)
    auto bytes_of = [&](const Row& r) {
        return r.path == "step_floats" ? std::pair<const kernels::Floors&, double>{fl_floats, read_rate_floats}
                                       : std::pair<const kernels::Floors&, double>{fl, read_rate};
    };
    // the step's floor counts its bytes too; blocks and the scan read each weight once a block
    const auto is_step = [](const Row& r) { return r.path.rfind("step", 0) == 0; };
    auto floor_of = [&](const Row& r) { return is_step(r) ? bytes_of(r).first.step_ns() : fl.compute_ns; };
    const double ref_ns = rows[0].ns_per_sample;
    const bool harmonic = kernels::decays_harmonic(v);  // every layer: one exp per channel
    bool fixed_dt = true;                               // every layer: decays from a table
    bool lti = true;                                    // every layer LTI
    for (int l = 0; l < c.n_layers; ++l) {
        fixed_dt = fixed_dt && kernels::dt_fixed(v.layers[l], v.dims);
        lti = lti && kernels::is_lti(v.layers[l]);
    }
    // The decay form's name in --json, and its mark in the table: "effect(h)": harmonic decays;
    // "effect(Δ)": a fixed Δ; "effect(lti)": LTI layers
    struct Form { const char* name; const char* mark; };
    const Form form = lti ? Form{"lti", "(lti)"} : fixed_dt ? Form{"fixed_dt", "(Δ)"}
                      : harmonic ? Form{"harmonic", "(h)"} : Form{"free", ""};
    const std::string kind = std::string(kind_name(c.kind)) + form.mark + (halves > 0 ? "(f16)" : "");
    // 11 characters on screen: "Δ" takes two bytes and one column
    const int kind_width = 11 + int(std::count_if(kind.begin(), kind.end(), [](char ch) { return (ch & 0xC0) == 0x80; }));
    for (const Row& r : rows) {
        const double floor_ns = floor_of(r);
        // % of one core to run every stream in real time at t.rate_hz, and at 48 kHz
        const double pct = r.ns_per_sample * streams * t.rate_hz * 1e-7;
        const double pct48 = r.ns_per_sample * streams * 48000.0 * 1e-7;
        if (opt.json) {
            const auto [bytes, rate] = bytes_of(r);
            nlohmann::json j = {{"kind", kind_name(c.kind)}, {"d_model", c.d_model}, {"n_layers", c.n_layers},
                                {"d_inner", c.d_inner}, {"d_state", c.d_state},
                                {"decays", form.name}, {"step_half_weights", halves},
                                {"params", m.parameter_count()}, {"streams", streams}, {"path", r.path},
                                {"isa", kernels::to_string(kernels::active_isa())},
                                {"ns_per_sample", r.ns_per_sample}, {"pct_core_48k", pct48},
                                {"x_realtime_48k", 1e9 / (r.ns_per_sample * streams * 48000.0)},
                                {"samples_per_s", 1e9 / r.ns_per_sample},
                                {"speedup_vs_reference", ref_ns / r.ns_per_sample},
                                {"floor_ns_per_sample", floor_ns}, {"ratio_to_floor", r.ns_per_sample / floor_ns},
                                {"floor_compute_ns", fl.compute_ns},
                                {"floor_step_bytes_ns", bytes.step_bytes_ns},
                                {"floor_step_bytes_ideal_cache_ns", bytes.step_bytes_ideal_ns}};
            if (rate > 0 && is_step(r)) j["step_bytes_read_rate_bytes_per_s"] = rate;
            if (!t.file.empty()) {  // a model file: also at its own sample rate
                j["model"] = t.file;
                j["sample_rate_hz"] = t.rate_hz;
                j["pct_core"] = pct;
                j["x_realtime"] = 100.0 / pct;
            }
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%-*s D%-3d x%-2d %-6s %-14s %10.1f %9.2f%% %9.1fx %11.3g %9.1fx %9.1f %7.2fx\n",
                        kind_width, kind.c_str(), c.d_model, c.n_layers,
                        streams == 1 ? "mono" : streams == 2 ? "stereo" : "many",
                        r.path.c_str(), r.ns_per_sample, pct, 100.0 / pct, 1e9 / r.ns_per_sample,
                        ref_ns / r.ns_per_sample, floor_ns, r.ns_per_sample / floor_ns);
        }
    }
    if (!opt.json && (read_rate > 0 || read_rate_floats > 0)) {
        const bool f = read_rate == 0;  // only the floats exceed L2
        const kernels::Floors& b = f ? fl_floats : fl;
        const kernels::WorkPerSample& wb = f ? w_floats : w;
        std::printf("  (%s: %.0f KB a sample, more than L2's %.0f KB: %s's bytes floor %.1f ns, at the %.0f GB/s "
                    "measured now for a cyclic read of that size; an ideal cache's bound %.1f ns)\n",
                    f ? "step_floats" : "step", (wb.weight_bytes + wb.state_bytes) / 1e3, peaks.l2_bytes / 1e3,
                    f ? "step_floats" : "step", b.step_bytes_ns, (f ? read_rate_floats : read_rate) * 1e-9,
                    b.step_bytes_ideal_ns);
    }
    if (!opt.json)
        std::printf("  (%s: %lld params, %.0f multiply-adds + %.0f multiplies + %.0f exps + %.0f bytes per sample; "
                    "floor: compute %.1f ns = %.2f%% core @%s, the step's bytes %.1f ns; rate of this model %.0f Hz;\n"
                    "   peaks measured just before these rows: %.1f GFLOP/s FMA, %.2f G exp/s, %.0f GB/s L1, %.0f GB/s L2)\n",
                    kind_name(c.kind), (long long)m.parameter_count(), w.macs, w.muls, w.exps,
                    w.weight_bytes + w.state_bytes, fl.compute_ns, fl.compute_ns * t.rate_hz * 1e-7,
                    rate_label(t.rate_hz).c_str(), fl.step_bytes_ns, c.sample_rate_hz, peaks.flops_per_s * 1e-9,
                    peaks.exps_per_s * 1e-9, peaks.l1_bytes_per_s * 1e-9, peaks.l2_read_bytes_per_s * 1e-9);
}

// A pooled generator (model/pooled.h): the reference, the step (what the Synth would run) and
// the forward over a sequence, with a compute floor summed over the stacks, each at its rate.
// The floor leaves out the bytes: the stacks' weights stream through the caches as a flat
// model's do, but the deeper levels' come in bursts, so no single-sample bound is given.
void bench_pooled(const BenchTarget& t, const BenchOptions& opt, const kernels::PeakRates& peaks,
                  kernels::ThreadPool& pool2) {
    const Model& m = *t.model;
    const ModelConfig& c = m.config();
    const int V = c.vocab;
    std::mt19937 rng(3);
    const int64_t L = opt.quick ? 8192 : 32768;
    std::vector<int32_t> tok(static_cast<size_t>(L));
    for (int32_t& tk : tok) tk = int32_t(rng() % uint32_t(V));
    std::vector<float> y(size_t(L) * V);
    std::vector<Row> rows;
    const int64_t Lref = 2 * c.pool_period();
    std::vector<double> yd(static_cast<size_t>(Lref) * V);
    rows.push_back({"reference", time_ns_per([&] {
                        pooled::reference_forward_tokens_f64(m, tok.data(), Lref, nullptr, yd.data(), nullptr);
                    }, double(Lref), opt.seconds)});
    // the step (halves where a stack's matrices are F16-exact), and beside it, where it reads any
    // halves, the same step reading the floats
    auto weights = pooled::prepare(m);
    const bool any_halves = pooled::half_weight_count(*weights) > 0;
    for (bool floats : {false, true}) {
        if (floats && !any_halves) break;
        pooled::Stepper step(floats ? pooled::prepare(m, {.half_weights = false}) : weights, 1);
        int64_t ts = 0;
        rows.push_back({floats ? "step_floats" : "step", time_ns_per([&] {  // whole periods: their bursts included
                            for (int k = 0; k < c.pool_period(); ++k, ts = (ts + 1) % L) step.step(tok.data() + ts, y.data());
                        }, double(c.pool_period()), opt.seconds)});
    }
    // the forward made once, as for a long file (its buffers are megabytes: made afresh each
    // call, their page faults cost this VM as much as the arithmetic)
    kernels::ThreadPool pool1(1);
    pooled::Forward forward(m);
    for (auto [name, pool] : {std::pair<const char*, kernels::ThreadPool*>{"scan_1thread", &pool1}, {"scan_2threads", &pool2}})
        rows.push_back({name, time_ns_per([&] {
                            forward.reset();
                            forward.run(tok.data(), L, y.data(), pool);
                        }, double(L), opt.seconds)});
    // the floor: each stack's work at its level's rate, plus the pools' products
    kernels::WorkPerSample w;
    double rate_div = 1;
    for (int s = 0; s < c.stacks(); ++s) {
        const int level = c.stack_level(s);
        double div = 1;
        for (int i = 0; i < level; ++i) div *= c.pool[size_t(i)];
        const kernels::WorkPerSample ws = kernels::work_per_sample(m.stack_view(s));
        w.macs += ws.macs / div;
        w.muls += ws.muls / div;
        w.exps += ws.exps / div;
        rate_div = std::max(rate_div, div);
    }
    for (size_t i = 0; i < c.pool.size(); ++i) {
        double div = 1;
        for (size_t j = 0; j < i; ++j) div *= c.pool[j];
        w.macs += 2.0 * c.level_dims(int(i)).d_model * c.level_dims(int(i) + 1).d_model / div;
    }
    const double floor_ns = kernels::floors(w, peaks).compute_ns;
    const double ref_ns = rows[0].ns_per_sample;
    for (const Row& r : rows) {
        const double pct = r.ns_per_sample * t.rate_hz * 1e-7;
        if (opt.json) {
            nlohmann::json j = {{"kind", kind_name(c.kind)}, {"d_model", c.d_model}, {"n_layers", c.n_layers},
                                {"pool", c.pool}, {"params", m.parameter_count()}, {"step_half_weights", any_halves}, {"streams", 1}, {"path", r.path},
                                {"isa", kernels::to_string(kernels::active_isa())}, {"ns_per_sample", r.ns_per_sample},
                                {"pct_core_48k", r.ns_per_sample * 48000.0 * 1e-7}, {"pct_core", pct},
                                {"x_realtime", 100.0 / pct}, {"samples_per_s", 1e9 / r.ns_per_sample},
                                {"speedup_vs_reference", ref_ns / r.ns_per_sample}, {"floor_ns_per_sample", floor_ns},
                                {"ratio_to_floor", r.ns_per_sample / floor_ns}, {"floor_compute_ns", floor_ns},
                                {"model", t.file}, {"sample_rate_hz", t.rate_hz}};
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%-11s D%-3d x%-2d %-6s %-14s %10.1f %9.2f%% %9.1fx %11.3g %9.1fx %9.1f %7.2fx\n",
                        any_halves ? "gen(pooled)(f16)" : "gen(pooled)",
                        c.d_model, c.n_layers, "mono", r.path.c_str(), r.ns_per_sample, pct, 100.0 / pct,
                        1e9 / r.ns_per_sample, ref_ns / r.ns_per_sample, floor_ns, r.ns_per_sample / floor_ns);
        }
    }
    if (!opt.json)
        std::printf("  (pooled generator: %lld params, %.0f multiply-adds + %.0f multiplies + %.0f exps per sample, each "
                    "stack at its rate; compute floor %.1f ns; the step timed over whole periods of %d samples, the "
                    "deeper levels' bursts included)\n",
                    (long long)m.parameter_count(), w.macs, w.muls, w.exps, floor_ns, c.pool_period());
}

void run_bench(const BenchOptions& opt) {
    // Load every model file first: a bad one fails before any timing starts.
    std::vector<Model> files;
    for (const std::string& path : opt.model_paths) files.push_back(load_model(path));
    const bool synthetic = opt.model_paths.empty() || opt.synthetic;

    // The peaks are measured again before each model's rows, so that a floor and the times
    // divided by it come from the same minute: this VM's speed drifts by 10-20% from one minute
    // to the next, in the probes as in the kernels. With --json each measurement is a line of
    // its own ("machine": "peaks") ahead of the rows it served.
    const double probe_seconds = opt.quick ? 0.05 : 0.2;
    kernels::PeakRates peaks = kernels::measure_peaks(probe_seconds);
    auto print_peaks_json = [&] {
        nlohmann::json j = {{"machine", "peaks"}, {"isa", kernels::to_string(kernels::active_isa())},
                            {"flops_per_s", peaks.flops_per_s}, {"exps_per_s", peaks.exps_per_s},
                            {"l1_bytes_per_s", peaks.l1_bytes_per_s}, {"l2_read_bytes_per_s", peaks.l2_read_bytes_per_s},
                            {"l1_bytes", peaks.l1_bytes}};
        std::printf("%s\n", j.dump().c_str());
    };
    bool fresh = true;  // the peaks were just measured
    auto remeasure = [&] {
        if (!fresh) {
            peaks = kernels::measure_peaks(probe_seconds);
            if (opt.json) print_peaks_json();
        }
        fresh = false;
    };
    if (opt.json) {
        print_peaks_json();
    } else {
        std::printf("CPU peaks on one core (%s), measured now (and again before each model's rows): %.1f GFLOP/s FMA, "
                    "%.2f G exp/s, %.0f GB/s L1 copy, %.0f GB/s L2 read (L1 %.0f KiB)\n\n",
                    kernels::to_string(kernels::active_isa()), peaks.flops_per_s * 1e-9, peaks.exps_per_s * 1e-9,
                    peaks.l1_bytes_per_s * 1e-9, peaks.l2_read_bytes_per_s * 1e-9, peaks.l1_bytes / 1024);
    }
    kernels::ThreadPool pool2(2);
    if (synthetic) {
        if (!opt.json) print_table_header(48000.0);
        const BenchShape shapes[] = {
            {IoKind::continuous, 16, 4, 1}, {IoKind::continuous, 16, 4, 1, true},
            {IoKind::continuous, 16, 4, 1, false, true}, {IoKind::continuous, 16, 4, 1, false, false, true},
            {IoKind::continuous, 32, 4, 1},
            {IoKind::continuous, 32, 4, 2},
            {IoKind::continuous, 64, 8, 1}, {IoKind::mulaw8, 64, 4, 1},
            // the same two stored as F16: the step reads halves (and "step_floats" the floats)
            {IoKind::continuous, 64, 8, 1, false, false, false, true}, {IoKind::mulaw8, 64, 4, 1, false, false, false, true},
        };
        for (const BenchShape& s : shapes) {
            if (opt.quick && s.d_model == 64 && s.kind == IoKind::continuous) continue;
            const Model m = random_model(s);
            remeasure();
            bench_model({&m, "", s.streams, 48000.0}, opt, peaks, pool2);
        }
    }
    for (size_t i = 0; i < files.size(); ++i) {
        const double rate_hz = files[i].config().sample_rate_hz;
        if (!opt.json) {
            std::printf("%s%s (%s model, %.0f Hz, mono)\n", synthetic || i > 0 ? "\n" : "",
                        opt.model_paths[i].c_str(), kind_name(files[i].config().kind), rate_hz);
            print_table_header(rate_hz);
        }
        remeasure();
        if (files[i].config().pooled()) bench_pooled({&files[i], opt.model_paths[i], 1, rate_hz}, opt, peaks, pool2);
        else bench_model({&files[i], opt.model_paths[i], 1, rate_hz}, opt, peaks, pool2);
    }
    if (!opt.json && synthetic)
        std::printf("\nns/sample is per sample of one stream; %%core and x realtime cover every stream at 48 kHz.\n");
    if (!opt.json && !files.empty())
        std::printf("%sFor a model file, %%core and x realtime are for one mono stream at the model's own sample rate.\n",
                    synthetic ? "" : "\n");
    if (!opt.json)
        std::printf("floor: multiply-adds and multiplies at the FMA peak (one pipe slot each) plus exps at the exp peak;\n"
                    "for the step, the bytes too if they take longer: all at L1's rate, and what L1 cannot hold at L2's;\n"
                    "past L2's size, at the rate measured for a cyclic read of as many bytes (no cache keeps part of them).\n"
                    "(h): harmonic decays, A[n] = (n+1)*A[0] per channel: one exp per channel and step, not one per state.\n"
                    "(\u0394): a fixed \u0394 per channel (train --fixed-dt): the decays are constants, no exp per state.\n"
                    "(lti): LTI layers (config lti_layers): \u0394, B and C constants per channel, no x_proj, no exp per state.\n"
                    "Peer figures on this machine kind (issue #3): NAM standard WaveNet 4-7%%, RTNeural LSTM-32 ~7%%.\n");
}

} // namespace

void add_bench_command(CLI::App& app) {
    auto opt = std::make_shared<BenchOptions>();
    CLI::App* sub = app.add_subcommand("bench", "Measure the CPU paths: step, block, scan and reference, side by side");
    sub->footer(
        "Times the float64 reference, the SIMD step (the audio thread's path), 64- and 512-sample blocks,\n"
        "and the chunked scan on 1 and 2 threads, for effect models of d_model 16x4 (free decays, harmonic\n"
        "decays marked (h), a fixed step size marked (\u0394), LTI layers marked (lti)), 32x4 (mono, stereo),\n"
        "64x8 and a d_model 64x4 generator, and this CPU's peak rates (the floor) in the same run.\n"
        "With --model, the given model files instead (mono, at each model's own sample rate); add\n"
        "--synthetic for the sizes above too.\n\n"
        "Example:\n  mambawave bench            # a table\n  mambawave bench --json     # one JSON object per line\n"
        "  mambawave bench --model presets/ts9.safetensors   # a shipped preset");
    sub->add_flag("--json", opt->json, "One JSON object per line instead of a table");
    sub->add_option("--model,-m", opt->model_paths,
                    "Model file (.safetensors) or HF Mamba checkpoint directory to time; repeatable")
        ->check(CLI::ExistingPath);
    sub->add_flag("--synthetic", opt->synthetic, "With --model: time the synthetic sizes too");
    sub->add_flag("--quick", opt->quick, "Shorter runs, fewer sizes (for smoke tests)");
    sub->add_option("--seconds", opt->seconds, "Seconds per measurement (default 0.3)")->check(CLI::Range(0.01, 60.0));
    sub->callback([opt] { run_bench(*opt); });
}

} // namespace mw::cli
