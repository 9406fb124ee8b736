// mw_ab_kernels: two versions of the CPU fast kernels (kernels/fast_impl.inc) timed side by side
// in one process, so that a change is measured against its predecessor under the same load.
// This VM's speed drifts by 10-20% from one minute to the next; alternating the two versions
// every few milliseconds and comparing them rep by rep takes that drift out of the ratio.
//
// Version A is ab_old.inc from the build's ab/ folder (scripts/ab_kernels.sh writes it from a
// git revision); without it, A is the working tree's file too, and the ratio shows the noise.
// Version B is always the working tree's. Both are compiled for AVX-512 into their own
// namespaces and run on the same prepared model, so the two revisions must share the prepared
// layout (kernels/fast_internal.h, prepare_model); the outputs are compared too.
#include "kernels/fast_internal.h"
#include "kernels/thread_pool.h"
#include "model/model_file.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <immintrin.h>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace mw::kernels::ab_old {
#if __has_include("ab_old.inc")
#include "ab_old.inc"
constexpr bool kHaveOld = true;
#else
#include "kernels/fast_impl.inc"
constexpr bool kHaveOld = false;
#endif
} // namespace mw::kernels::ab_old

namespace mw::kernels::ab_new {
#include "kernels/fast_impl.inc"
} // namespace mw::kernels::ab_new

namespace {
using namespace mw::kernels;

// One version's entry points, so the timing loop is written once.
struct Version {
    decltype(&ab_new::step_continuous) step_continuous;
    decltype(&ab_new::step_tokens) step_tokens;
    decltype(&ab_new::scan) scan;
};
constexpr Version kOld{ab_old::step_continuous, ab_old::step_tokens, ab_old::scan};
constexpr Version kNew{ab_new::step_continuous, ab_new::step_tokens, ab_new::scan};

double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[size_t(q * double(v.size() - 1))];
}

void compare(const std::string& path, int streams, int reps) {
    const mw::Model model = mw::load_model(path);
    const ModelView& v = model.view();
    const bool gen = v.head == HeadKind::tokens;
    const int I = gen ? 1 : v.n_in, out_w = gen ? v.vocab : 1;
    auto P = prepare_model(v);
    const int L = 2048;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uni(-0.5f, 0.5f);
    std::vector<float> x(size_t(L) * streams * I);  // [L][streams][I]
    std::vector<int32_t> tok(size_t(L) * streams);
    for (float& f : x) f = uni(rng);
    for (int32_t& t : tok) t = int32_t(rng() % uint32_t(std::max(v.vocab, 1)));

    // mode 0: one sample of every stream per call (step); mode 1: blocks of 64 through the scan,
    // one thread, stream 0 only
    for (int mode = 0; mode < 2; ++mode) {
        const int S_n = mode == 0 ? streams : 1;
        StepStatePtr state[2] = {make_state(*P, S_n, 64), make_state(*P, S_n, 64)};
        const size_t ny = size_t(L) * S_n * out_w;
        std::vector<float> y[2] = {std::vector<float>(ny), std::vector<float>(ny)};
        std::vector<double> ns[2];
        double max_diff = 0, max_abs = 0;
        for (int rep = 0; rep < reps; ++rep) {
            for (int which = 0; which < 2; ++which) {
                const Version& ver = which ? kNew : kOld;
                StepState& S = *state[which];
                float* yw = y[which].data();
                const auto t0 = std::chrono::steady_clock::now();
                if (mode == 0) {
                    for (int i = 0; i < L; ++i) {
                        if (gen) ver.step_tokens(*P, S, tok.data() + size_t(i) * S_n, yw + size_t(i) * S_n * out_w);
                        else ver.step_continuous(*P, S, x.data() + size_t(i) * S_n * I, yw + size_t(i) * S_n);
                    }
                } else {
                    for (int i = 0; i < L; i += 64)
                        ver.scan(*P, S, 0, gen ? tok.data() + i : nullptr, gen ? nullptr : x.data() + size_t(i) * I,
                                 64, yw + size_t(i) * out_w, nullptr);
                }
                ns[which].push_back(
                    std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
                    (double(L) * S_n));
            }
            for (size_t i = 0; i < y[0].size(); ++i) {
                max_diff = std::max(max_diff, double(std::fabs(y[0][i] - y[1][i])));
                max_abs = std::max(max_abs, double(std::fabs(y[0][i])));
            }
        }
        const double a10 = quantile(ns[0], 0.1), b10 = quantile(ns[1], 0.1);
        std::printf("%-40s %-11s A %8.1f ns (median %8.1f)  B %8.1f ns (median %8.1f)  B/A %.3f  max|yA-yB| %.2e of %.2e\n",
                    mode == 0 ? path.c_str() : "", mode == 0 ? (streams > 1 ? ("step x" + std::to_string(streams)).c_str() : "step") : "block64", a10, quantile(ns[0], 0.5), b10,
                    quantile(ns[1], 0.5), b10 / a10, max_diff, max_abs);
    }
}
} // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
        std::printf("Usage: mw_ab_kernels [--streams S] MODEL.safetensors...\n"
                    "Times kernels/fast_impl.inc as it was (A: build/ab/ab_old.inc) against the working tree (B),\n"
                    "alternating them every 2048 samples, 300 times each. Prints the 10th percentile and the median of\n"
                    "ns per sample of one stream for the step (S streams per call) and for 64-sample blocks, B/A, and the largest output difference.\n"
                    "Run it through scripts/ab_kernels.sh REV MODEL..., which writes ab_old.inc from REV.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!isa_supported(Isa::avx512)) {
        std::fprintf(stderr, "mw_ab_kernels: compiled for AVX-512, which this CPU lacks\n");
        return 1;
    }
    if (!ab_old::kHaveOld) std::printf("(no ab_old.inc: A is the working tree too, so B/A shows the noise)\n");
    int streams = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--streams") == 0 && i + 1 < argc) {
            streams = std::max(1, std::atoi(argv[++i]));
            continue;
        }
        try {
            compare(argv[i], streams, 300);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "mw_ab_kernels: %s: %s\n", argv[i], e.what());
            return 1;
        }
    }
    return 0;
}
