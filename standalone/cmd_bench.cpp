// `mambawave bench`: the CPU paths side by side in one run, on random models of the sizes we
// ship, against this CPU's own peak rates measured in the same run (the floor).
#include "cli_common.h"
#include "commands.h"
#include "kernels/fast.h"
#include "kernels/reference.h"
#include "kernels/thread_pool.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace mw::cli {
namespace {

struct BenchShape {
    IoKind kind;
    int d_model, n_layers, streams;
};

struct BenchOptions {
    bool json = false;
    bool quick = false;
    double seconds = 0.3;  // per measurement
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

Model bench_model(const BenchShape& s) {
    ModelConfig c = make_config(s.kind, s.d_model, s.n_layers);
    Model m(c);
    m.init_random(1, 0.3f);
    return m;
}

struct Row {
    std::string path;
    double ns_per_sample;  // per sample of one stream
};

void bench_shape(const BenchShape& s, const BenchOptions& opt, const kernels::PeakRates& peaks,
                 kernels::ThreadPool& pool2) {
    const Model m = bench_model(s);
    const kernels::ModelView& v = m.view();
    const bool gen = s.kind == IoKind::mulaw8;
    const int I = gen ? 1 : m.config().n_in(), V = 256;
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uni(-0.5f, 0.5f);
    const int64_t L = opt.quick ? 8192 : 32768;
    std::vector<float> x(size_t(L) * I * s.streams), y(size_t(L) * (gen ? V : 1) * s.streams);
    std::vector<int32_t> tok(size_t(L) * s.streams);
    for (float& f : x) f = uni(rng);
    for (int32_t& t : tok) t = int32_t(rng() % 256);
    auto P = kernels::prepare_model(v);
    std::vector<Row> rows;

    // reference (float64, the oracle): a short sequence is enough to time it
    const int64_t Lref = 1024;
    rows.push_back({"reference", time_ns_per([&] {
                        if (gen) kernels::reference_forward_tokens(v, tok.data(), Lref, y.data());
                        else kernels::reference_forward_continuous(v, x.data(), Lref, y.data());
                    }, double(Lref), opt.seconds)});
    // step: one sample for all streams per call (the audio thread's path)
    {
        auto S = kernels::make_state(*P, s.streams);
        int64_t t = 0;
        rows.push_back({"step", time_ns_per([&] {
                            t = (t + 1) % L;
                            if (gen) kernels::step_tokens(*P, *S, tok.data() + t * s.streams, y.data());
                            else kernels::step_continuous(*P, *S, x.data() + t * I * s.streams, y.data());
                        }, double(s.streams), opt.seconds)});
    }
    // block64: the plugin's 64-sample block through the scan, one thread
    // scan: long sequence, chunked, 1 and 2 threads
    struct ScanCase { const char* name; int64_t len; int chunk; kernels::ThreadPool* pool; };
    kernels::ThreadPool pool1(1);
    for (const ScanCase& c : {ScanCase{"block64", 64, 64, &pool1}, ScanCase{"scan_1thread", L, 1024, &pool1},
                              ScanCase{"scan_2threads", L, 1024, &pool2}}) {
        auto S = kernels::make_state(*P, 1, c.chunk);
        int64_t t = 0;
        rows.push_back({c.name, time_ns_per([&] {
                            t = (t + c.len) % L;
                            const int64_t t0 = std::min(t, L - c.len);
                            for (int st = 0; st < s.streams; ++st) {
                                if (gen) kernels::scan_tokens(*P, *S, 0, tok.data() + t0, c.len, y.data(), c.pool);
                                else kernels::scan_continuous(*P, *S, 0, x.data() + t0 * I, c.len, y.data(), c.pool);
                            }
                        }, double(c.len) * s.streams, opt.seconds)});
    }

    const kernels::WorkPerSample w = kernels::work_per_sample(v);
    const double floor_compute = 1e9 * (w.flops / peaks.flops_per_s + w.exps / peaks.exps_per_s);
    const double floor_bytes = 1e9 * (w.weight_bytes + w.state_bytes) / peaks.l1_bytes_per_s;
    const double floor_ns = std::max(floor_compute, floor_bytes);
    const double ref_ns = rows[0].ns_per_sample;
    const double rate_hz = gen ? 8000.0 : 48000.0;
    for (const Row& r : rows) {
        // % of one core to run every stream in real time at 48 kHz (generators: at 8 kHz too)
        const double pct48 = r.ns_per_sample * s.streams * 48000.0 * 1e-7;
        if (opt.json) {
            nlohmann::json j = {{"kind", kind_name(s.kind)}, {"d_model", s.d_model}, {"n_layers", s.n_layers},
                                {"d_inner", m.config().d_inner}, {"d_state", m.config().d_state},
                                {"params", m.parameter_count()}, {"streams", s.streams}, {"path", r.path},
                                {"isa", kernels::to_string(kernels::active_isa())},
                                {"ns_per_sample", r.ns_per_sample}, {"pct_core_48k", pct48},
                                {"x_realtime_48k", 1e9 / (r.ns_per_sample * s.streams * 48000.0)},
                                {"samples_per_s", 1e9 / r.ns_per_sample},
                                {"speedup_vs_reference", ref_ns / r.ns_per_sample},
                                {"floor_ns_per_sample", floor_ns}, {"ratio_to_floor", r.ns_per_sample / floor_ns}};
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%-9s D%-3d x%-2d %-6s %-14s %10.1f %9.2f%% %11.3g %9.1fx %9.1f %7.2fx\n",
                        kind_name(s.kind), s.d_model, s.n_layers, s.streams == 1 ? "mono" : s.streams == 2 ? "stereo" : "many",
                        r.path.c_str(), r.ns_per_sample, pct48, 1e9 / r.ns_per_sample, ref_ns / r.ns_per_sample,
                        floor_ns, r.ns_per_sample / floor_ns);
        }
    }
    if (!opt.json)
        std::printf("  (%s: %lld params, %.0f flops + %.0f exps + %.0f bytes per sample; floor %.1f ns = "
                    "%.2f%% core @48k; rate of this model %.0f Hz)\n",
                    kind_name(s.kind), (long long)m.parameter_count(), w.flops, w.exps,
                    w.weight_bytes + w.state_bytes, floor_ns, floor_ns * 48000 * 1e-7, rate_hz);
}

void run_bench(const BenchOptions& opt) {
    const kernels::PeakRates peaks = kernels::measure_peaks(opt.quick ? 0.05 : 0.2);
    if (opt.json) {
        nlohmann::json j = {{"machine", "peaks"}, {"isa", kernels::to_string(kernels::active_isa())},
                            {"flops_per_s", peaks.flops_per_s}, {"exps_per_s", peaks.exps_per_s},
                            {"l1_bytes_per_s", peaks.l1_bytes_per_s}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("CPU peaks on one core (%s), measured now: %.1f GFLOP/s FMA, %.2f G exp/s, %.0f GB/s L1 copy\n\n",
                    kernels::to_string(kernels::active_isa()), peaks.flops_per_s * 1e-9, peaks.exps_per_s * 1e-9,
                    peaks.l1_bytes_per_s * 1e-9);
        std::printf("%-9s %-8s %-6s %-14s %10s %10s %11s %10s %9s %8s\n", "kind", "size", "chan", "path",
                    "ns/sample", "%core@48k", "samples/s", "vs ref", "floor ns", "/floor");
    }
    kernels::ThreadPool pool2(2);
    const BenchShape shapes[] = {
        {IoKind::continuous, 16, 4, 1}, {IoKind::continuous, 32, 4, 1}, {IoKind::continuous, 32, 4, 2},
        {IoKind::continuous, 64, 8, 1}, {IoKind::mulaw8, 64, 4, 1},
    };
    for (const BenchShape& s : shapes) {
        if (opt.quick && s.d_model == 64 && s.kind == IoKind::continuous) continue;
        bench_shape(s, opt, peaks, pool2);
    }
    if (!opt.json)
        std::printf("\nns/sample is per sample of one stream; %%core@48k covers every stream in real time at 48 kHz.\n"
                    "floor: flops at the FMA peak plus exps at the exp peak (or bytes at L1 speed, if larger).\n"
                    "Peer figures on this machine kind (issue #3): NAM standard WaveNet 4-7%%, RTNeural LSTM-32 ~7%%.\n");
}

} // namespace

void add_bench_command(CLI::App& app) {
    auto opt = std::make_shared<BenchOptions>();
    CLI::App* sub = app.add_subcommand("bench", "Measure the CPU paths: step, block, scan and reference, side by side");
    sub->footer(
        "Times the float64 reference, the SIMD step (the audio thread's path), 64-sample blocks, and the\n"
        "chunked scan on 1 and 2 threads, for effect models of d_model 16x4, 32x4 (mono, stereo), 64x8\n"
        "and a d_model 64x4 generator, and this CPU's peak rates (the floor) in the same run.\n\n"
        "Example:\n  mambawave bench            # a table\n  mambawave bench --json     # one JSON object per line");
    sub->add_flag("--json", opt->json, "One JSON object per line instead of a table");
    sub->add_flag("--quick", opt->quick, "Shorter runs, fewer sizes (for smoke tests)");
    sub->add_option("--seconds", opt->seconds, "Seconds per measurement (default 0.3)")->check(CLI::Range(0.01, 60.0));
    sub->callback([opt] { run_bench(*opt); });
}

} // namespace mw::cli
