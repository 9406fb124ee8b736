// Real-time rules for the step kernel: after prepare, stepping allocates nothing.
#include "alloc_trap.h"
#include "kernels/fast.h"
#include "model/sampling.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace mw;

namespace {
// Stores through volatile pointers, so the optimiser cannot elide the allocations below.
std::vector<float>* volatile g_vector_sink;
void* volatile g_malloc_sink;
} // namespace

TEST_CASE("the allocation trap catches allocations (so its zero means something)", "[realtime]") {
    test::AllocTrap trap;
    g_vector_sink = new std::vector<float>(100);  // two: the vector and its buffer
    g_malloc_sink = std::malloc(64);
    const int64_t count = trap.stop();
    std::free(g_malloc_sink);
    delete g_vector_sink;
    CHECK(count >= 3);
}

TEST_CASE("step allocates nothing after prepare (effect and generator, 1..8 streams)", "[realtime]") {
    for (int streams : {1, 2, 8}) {
        Model fx = test::random_model(IoKind::continuous, 16, 4, 16, 3, 2, true);
        auto P = kernels::prepare_model(fx.view());
        auto S = kernels::make_state(*P, streams);
        auto x = test::random_effect_input(512, 3 * streams, 1);
        std::vector<float> y(static_cast<size_t>(streams));
        test::AllocTrap trap;
        for (int t = 0; t < 170; ++t) kernels::step_continuous(*P, *S, x.data() + t * 3 * streams, y.data());
        kernels::reset_state(*S);
        kernels::reset_stream(*S, 0);
        CHECK(trap.stop() == 0);
    }
    Model gen = test::random_model(IoKind::mulaw8, 16, 2, 16, 4);
    auto P = kernels::prepare_model(gen.view());
    auto S = kernels::make_state(*P, 1);
    Sampler sampler({0.9f, 0.95f, 1});
    std::vector<float> logits(256);
    int32_t token = 128;
    test::AllocTrap trap;
    for (int t = 0; t < 200; ++t) {
        kernels::step_tokens(*P, *S, &token, logits.data());
        token = sampler.sample(logits.data());
    }
    CHECK(trap.stop() == 0);
}

TEST_CASE("the scan allocates nothing per call either (single thread)", "[realtime]") {
    Model fx = test::random_model(IoKind::continuous, 16, 2, 16, 3, 0, true);
    auto P = kernels::prepare_model(fx.view());
    auto S = kernels::make_state(*P, 1, 64);
    auto x = test::random_effect_input(256, 1, 1);
    std::vector<float> y(256);
    test::AllocTrap trap;
    kernels::scan_continuous(*P, *S, 0, x.data(), 256, y.data(), nullptr);
    CHECK(trap.stop() == 0);
}
