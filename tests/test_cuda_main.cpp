// mw_test_cuda: the CUDA checks (cuda_checks.h) without Catch2, for GPU machines that lack the
// project's test packages. Prints one line per check and "N passed, M failed"; exits non-zero
// on a failure. Without a GPU it says so and exits 0.
//   mw_test_cuda [WORD...]   only the groups whose name contains one of the WORDs (e.g. "step",
//                            "generate", "lti"); a WORD "=NAME" takes the group NAME alone
#include "cuda_checks.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

using namespace mw::test::cuda_checks;

int main(int argc, char** argv) {
    const std::vector<std::string> words(argv + 1, argv + argc);
    auto wanted = [&](const std::string& name) {
        if (words.empty()) return true;
        for (const std::string& w : words)
            if (w.rfind("=", 0) == 0 ? name == w.substr(1) : name.find(w) != std::string::npos) return true;
        return false;
    };
    if (!kc::available()) {
        std::printf("no CUDA device: CUDA tests skipped\n");
        return 0;
    }
    std::printf("device: %s\n", kc::device_name().c_str());
    int passed = 0, failed = 0;
    double worst = 0, worst_diff = 0;
    const Report report = [&](const Result& r) {
        std::printf("%s %-82s rel %.2e  max|diff| %.2e\n", r.ok() ? "ok  " : "FAIL", r.what.c_str(),
                    r.rel_error, r.max_abs_diff);
        std::fflush(stdout);
        (r.ok() ? passed : failed) += 1;
        // (relative errors only: counts and chi-square statistics have wider tolerances)
        if (r.tolerance >= 1e-4 && r.tolerance <= 1e-3) worst = std::max(worst, r.rel_error);
        worst_diff = std::max(worst_diff, r.max_abs_diff);
    };
    struct Group { const char* name; void (*checks)(const Report&); };
    for (const Group& g : {Group{"effects", effect_checks}, Group{"generators", generator_checks},
                           Group{"segments", segment_checks}, Group{"scan", scan_checks},
                           Group{"philox", philox_checks},
                           Group{"step effects", step_effect_checks},
                           Group{"step generators", step_generator_checks},
                           Group{"generate", generate_checks},
                           Group{"generate vs CPU step", cpu_step_checks},
                           Group{"train", train_checks},
                           Group{"lti forward", lti_forward_checks},
                           Group{"lti segments", lti_segment_checks},
                           Group{"lti step", lti_step_checks},
                           Group{"lti train", lti_train_checks},
                           Group{"pooled train", pooled_train_checks},
                           Group{"stft loss", stft_checks}}) {
        if (!wanted(g.name)) continue;
        try {
            g.checks(report);
        } catch (const std::exception& e) {
            std::printf("FAIL %s: exception: %s\n", g.name, e.what());
            ++failed;
        }
    }
    std::printf("%d passed, %d failed (worst rel error vs reference %.2e, worst max|diff| %.2e)\n", passed,
                failed, worst, worst_diff);
    return failed == 0 ? 0 : 1;
}
