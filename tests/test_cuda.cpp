// The CUDA forward against the float64 reference (checks in cuda_checks.h). Without a GPU
// every case here says so and passes: run them on a CUDA machine before calling a change to
// kernels/cuda/ done (DESIGN.md).
#include "cuda_checks.h"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace mw::test::cuda_checks;

namespace {

bool gpu_present() {
    if (kc::available()) return true;
    WARN("no CUDA device: CUDA tests skipped");
    return false;
}

void run_checks(void (*checks)(const Report&)) {
    double worst = 0;
    int count = 0;
    checks([&](const Result& r) {
        INFO(r.what << ": rel error " << r.rel_error << " (tolerance " << r.tolerance
                    << "), max |diff| " << r.max_abs_diff);
        CHECK(r.ok());
        worst = std::max(worst, r.rel_error);
        ++count;
    });
    WARN(count << " checks on " << kc::device_name() << ", worst rel error " << worst);
}

} // namespace

TEST_CASE("CUDA forward (requires a GPU): effects match the float64 reference", "[cuda]") {
    if (!gpu_present()) return;
    run_checks(effect_checks);
}

TEST_CASE("CUDA forward (requires a GPU): generators match the float64 reference", "[cuda]") {
    if (!gpu_present()) return;
    run_checks(generator_checks);
}

TEST_CASE("CUDA forward (requires a GPU): state carries across calls and segments, reset clears it",
          "[cuda]") {
    if (!gpu_present()) return;
    run_checks(segment_checks);
}
