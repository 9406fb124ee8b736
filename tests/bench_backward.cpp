// mw_bench_backward: samples per second of the training tape (forward that keeps the tape, then
// backward) on one thread, beside the inference scan (kernels::scan_*) on one thread measured in
// the same run, and the tape's memory. Not a test; run it on a quiet machine:
//   build/bin/mw_bench_backward [L] [repeats] [chunk]
#include "kernels/backward.h"
#include "kernels/fast.h"
#include "model/grad.h"
#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace mw;

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds one call of fn() takes.
template <class F>
double timed(F&& fn) {
    const double t0 = now_s();
    fn();
    return now_s() - t0;
}

// lti: every layer LTI (B, C, Δ constant per channel; kernels/model_view.h).
Model make(IoKind kind, int d_model, int n_layers, bool skip, bool lti = false) {
    ModelConfig c = make_config(kind, d_model, n_layers, 16);
    c.skip = skip;
    for (int l = 0; lti && l < n_layers; ++l) c.lti_layers.push_back(l);
    Model m(c);
    m.init_random(1, 0.3f);
    return m;
}

// with_scan false: the inference scan is not timed (its columns print "-").
void bench(const char* name, const Model& m, int64_t L, int repeats, int chunk, bool with_scan = true) {
    const bool effect = m.config().kind == IoKind::continuous;
    const int V = m.config().vocab, I = m.config().n_in();
    const int64_t O = effect ? L : L * V;
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(L * I)), out(static_cast<size_t>(O)), dout(static_cast<size_t>(O));
    std::vector<int32_t> tokens(static_cast<size_t>(L));
    for (float& v : x) v = 0.5f * normal(rng);
    for (int32_t& t : tokens) t = int32_t(rng() % 256);
    for (float& v : dout) v = normal(rng) / float(O);
    std::vector<float> state(static_cast<size_t>(m.state_floats_per_stream()), 0.0f);

    Tape tape(chunk);
    Model grads = zeros_like(m);
    auto forward = [&] {
        if (effect) tape.forward_continuous(m, x.data(), L, state.data(), out.data(), nullptr);
        else tape.forward_tokens(m, tokens.data(), L, state.data(), out.data(), nullptr);
    };
    auto train = [&] {
        forward();
        tape.backward(dout.data(), grads);
    };
    auto P = with_scan ? kernels::prepare_model(m.view()) : nullptr;
    auto S = with_scan ? kernels::make_state(*P, 1) : nullptr;
    auto scan = [&] {
        if (!with_scan) return;
        kernels::reset_state(*S);
        if (effect) kernels::scan_continuous(*P, *S, 0, x.data(), L, out.data(), nullptr);
        else kernels::scan_tokens(*P, *S, 0, tokens.data(), L, out.data(), nullptr);
    };
    train();  // sizes the tape
    scan();
    // Interleaved, best of each: a busy machine slows all three alike.
    double t_fwd = 1e30, t_train = 1e30, t_scan = 1e30;
    for (int r = 0; r < repeats; ++r) {
        t_train = std::min(t_train, timed(train));
        t_fwd = std::min(t_fwd, timed(forward));
        t_scan = std::min(t_scan, timed(scan));
    }

    const double sps_train = double(L) / t_train, sps_fwd = double(L) / t_fwd,
                 sps_scan = double(L) / t_scan;
    if (with_scan)
        std::printf("%-34s %8lld %12.0f %12.0f %12.0f %9.2fx %9.2fx %9.1f\n", name, (long long)L, sps_train,
                    sps_fwd, sps_scan, sps_scan / sps_train, sps_scan / sps_fwd,
                    double(tape.bytes_held()) / (1024.0 * 1024.0));
    else
        std::printf("%-34s %8lld %12.0f %12.0f %12s %10s %10s %9.1f\n", name, (long long)L, sps_train, sps_fwd,
                    "-", "-", "-", double(tape.bytes_held()) / (1024.0 * 1024.0));
}

void memory(const char* name, const Model& m, int64_t L) {
    const bool effect = m.config().kind == IoKind::continuous;
    std::vector<float> x(static_cast<size_t>(L * m.config().n_in()), 0.1f), out(static_cast<size_t>(effect ? L : L * 256));
    std::vector<int32_t> tokens(static_cast<size_t>(L), 7);
    Tape tape(64);
    if (effect) tape.forward_continuous(m, x.data(), L, nullptr, out.data(), nullptr);
    else tape.forward_tokens(m, tokens.data(), L, nullptr, out.data(), nullptr);
    std::printf("  %-32s L %6lld: tape holds %7.1f MiB (%.0f bytes per sample)\n", name, (long long)L,
                double(tape.bytes_held()) / (1024.0 * 1024.0), double(tape.bytes_held()) / double(L));
}

} // namespace

int main(int argc, char** argv) {
    const int64_t L = argc > 1 ? std::atoll(argv[1]) : 8192;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
    const int chunk = argc > 3 ? std::atoi(argv[3]) : 64;
    if (L < 1 || repeats < 1 || chunk < 1) {
        std::fprintf(stderr, "usage: mw_bench_backward [L >= 1] [repeats >= 1] [chunk >= 1]\n");
        return 2;
    }
    std::printf("training tape vs inference scan, one thread, ISA %s, tape chunk %d, best of %d\n",
                kernels::to_string(kernels::active_isa()), chunk, repeats);
    std::printf("%-34s %8s %12s %12s %12s %10s %10s %9s\n", "model", "L", "train smp/s", "tape-fwd/s",
                "scan smp/s", "scan/train", "scan/fwd", "tape MiB");
    bench("effect D16x4 (skip)", make(IoKind::continuous, 16, 4, true), L, repeats, chunk);
    bench("effect D32x4 (skip)", make(IoKind::continuous, 32, 4, true), L, repeats, chunk);
    // LTI layers (the tape only: the inference scan's LTI path is timed by the kernels' bench)
    bench("effect D16x4 (skip), LTI", make(IoKind::continuous, 16, 4, true, true), L, repeats, chunk, false);
    bench("effect D32x4 (skip), LTI", make(IoKind::continuous, 32, 4, true, true), L, repeats, chunk, false);
    bench("generator D32x4 (tied)", make(IoKind::mulaw8, 32, 4, false), L, repeats, chunk);
    std::printf("memory of the tape after a forward (activations + scratch + weights):\n");
    for (int64_t len : {int64_t(16384), int64_t(65536)}) {
        memory("effect D32x4", make(IoKind::continuous, 32, 4, true), len);
        memory("effect D64x4", make(IoKind::continuous, 64, 4, true), len);
        memory("generator D64x4", make(IoKind::mulaw8, 64, 4, false), len);
    }
    return 0;
}
