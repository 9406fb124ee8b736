// The CUDA forward against the float64 reference (checks in cuda_checks.h). Without a GPU
// every case here says so and passes: run them on a CUDA machine before calling a change to
// kernels/cuda/ done (DESIGN.md).
#include "cuda_checks.h"
#include "model/engine.h"
#include "model/model.h"
#include "model/pooled.h"
#include "model/trainer.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

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
        if (r.tolerance <= 1e-3) worst = std::max(worst, r.rel_error);  // relative errors only
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

TEST_CASE("CUDA scan alone (requires a GPU): fp32 and bf16 inputs match the float64 reference", "[cuda]") {
    if (!gpu_present()) return;
    run_checks(scan_checks);
}

TEST_CASE("CUDA step (requires a GPU): effects equal the reference and the GPU scan, state carries, "
          "reset clears it",
          "[cuda]") {
    if (!gpu_present()) return;
    run_checks(step_effect_checks);
}

TEST_CASE("CUDA step (requires a GPU): generator logits equal the reference and the GPU scan", "[cuda]") {
    if (!gpu_present()) return;
    run_checks(step_generator_checks);
}

TEST_CASE("CUDA step (requires a GPU): generation with sampling on the GPU (greedy, distributions, "
          "top-p, seeds)",
          "[cuda]") {
    if (!gpu_present()) return;
    run_checks(generate_checks);
}

TEST_CASE("Philox-4x32-10 (the GPU sampler's random numbers) matches its known-answer vectors", "[cuda]") {
    run_checks(philox_checks);
}

TEST_CASE("CUDA step (requires a GPU): greedy generation equals greedy on the CPU step", "[cuda]") {
    if (!gpu_present()) return;
    run_checks(cpu_step_checks);
}

TEST_CASE("CUDA training tape (requires a GPU): forward, gradients vs the CPU tape and float64 finite "
          "differences, repeatable, misuse refused",
          "[cuda]") {
    if (!gpu_present()) return;
    run_checks(train_checks);
}

TEST_CASE("CUDA multi-resolution STFT loss (requires a GPU): losses and gradients equal the CPU's lane by lane, "
          "repeatable, misuse refused",
          "[cuda][train]") {
    if (!gpu_present()) return;
    run_checks(stft_checks);
}

TEST_CASE("CUDA forward (requires a GPU): LTI and mixed models match the float64 reference", "[cuda][lti]") {
    if (!gpu_present()) return;
    run_checks(lti_forward_checks);
}

TEST_CASE("CUDA forward (requires a GPU): LTI and mixed models carry state across calls and segments",
          "[cuda][lti]") {
    if (!gpu_present()) return;
    run_checks(lti_segment_checks);
}

TEST_CASE("CUDA step (requires a GPU): LTI and mixed models equal the reference and the GPU scan", "[cuda][lti]") {
    if (!gpu_present()) return;
    run_checks(lti_step_checks);
}

TEST_CASE("CUDA training tape (requires a GPU): LTI and mixed models, gradients vs the CPU tape and float64 "
          "finite differences",
          "[cuda][lti]") {
    if (!gpu_present()) return;
    run_checks(lti_train_checks);
}

TEST_CASE("CUDA pooled generators' training tape (requires a GPU): logits and state vs the float64 reference, "
          "gradients vs the CPU pooled tape and float64 finite differences",
          "[cuda][pooled]") {
    if (!gpu_present()) return;
    run_checks(pooled_train_checks);
}

// `mambawave run --device cuda` on a pooled generator: the tape's forward in segments of whole
// pooling periods, the states carried, the last one padded. Against the CPU's pooled forward,
// for lengths that end mid-period, in one pass and in several.
TEST_CASE("CUDA forward_tokens_cuda on pooled generators equals the CPU pooled forward, in one pass "
          "and in segments", "[cuda][pooled]") {
    if (!gpu_present()) return;
    const PooledCase cases[] = {
        {"pools 2,3", 16, 1, {2, 3}, {}, true, false, 1, 0, 11},
        {"pools 2,2,2, two layers a stack", 8, 2, {2, 2, 2}, {}, false, false, 1, 0, 12},
    };
    for (const PooledCase& k : cases) {
        const mw::Model m = pooled_case_model(k);
        const int V = m.config().vocab, period = m.config().pool_period();
        for (int64_t L : {int64_t(1), int64_t(period) * 7 + 5, int64_t(period) * 40 + 1}) {
            const std::vector<int32_t> tokens = token_input(1, L, uint64_t(k.seed + L));
            std::vector<float> cpu(size_t(L * V)), whole(size_t(L * V)), pieces(size_t(L * V));
            mw::pooled::forward_tokens(m, tokens.data(), L, cpu.data(), nullptr);
            mw::forward_tokens_cuda(m, tokens.data(), L, whole.data());
            mw::forward_tokens_cuda(m, tokens.data(), L, pieces.data(), 2 * period);
            double scale = 0, d_whole = 0, d_pieces = 0;
            for (size_t i = 0; i < cpu.size(); ++i) {
                scale = std::max(scale, double(std::abs(cpu[i])));
                d_whole = std::max(d_whole, double(std::abs(whole[i] - cpu[i])));
                d_pieces = std::max(d_pieces, double(std::abs(pieces[i] - cpu[i])));
            }
            INFO(k.name << ", L " << L << ": max |logit| " << scale << ", one pass " << d_whole
                        << ", segments of " << 2 * period << " " << d_pieces);
            CHECK(d_whole <= 1e-4 * scale);
            CHECK(d_pieces <= 1e-4 * scale);
        }
    }
    const mw::Model m = pooled_case_model(cases[0]);
    const int32_t tok[] = {1, 2, 3};
    float out[3 * 256];
    CHECK_THROWS_WITH(mw::forward_tokens_cuda(m, tok, 3, out, -1), Catch::Contains("max_segment -1 is negative"));
}

// The pooled tape checks its view before it needs a GPU: a flat model's, stacks that do not match
// the pools, a missing pool tensor.
TEST_CASE("CUDA pooled tape refuses a view whose parts do not fit, naming the part", "[cuda][pooled]") {
    using Catch::Contains;
    const PooledCase k{"", 8, 1, {2, 2}, {}, true, false, 1, 8, 4};
    const mw::Model m = pooled_case_model(k);
    const kc::PooledView good = mw::pooled::cuda_view(m);
    REQUIRE(good.stacks.size() == 5);
    kc::PooledView v = good;
    v.pools.clear();
    CHECK_THROWS_WITH(kc::make_pooled_tape(v, 1, 8), Contains("no pools"));
    v = good;
    v.stacks.pop_back();
    CHECK_THROWS_WITH(kc::make_pooled_tape(v, 1, 8), Contains("4 stacks for 2 pools, expected 5"));
    v = good;
    v.pools[1].d_out = 7;
    CHECK_THROWS_WITH(kc::make_pooled_tape(v, 1, 8), Contains("stack 2 (level 2) has d_model 32, expected 7"));
    v = good;
    v.pools[0].up_b = nullptr;
    CHECK_THROWS_WITH(kc::make_pooled_tape(v, 1, 8), Contains("pool 0 lacks a tensor"));
    v = good;
    v.stacks[1].head = mw::kernels::HeadKind::tokens;
    CHECK_THROWS_WITH(kc::make_pooled_tape(v, 1, 8), Contains("stack 1 must be a stack of layers alone"));
    v = good;
    v.stacks.back().embed_w = nullptr;
    CHECK_THROWS_WITH(kc::make_pooled_tape(v, 1, 8), Contains("the last stack lacks the embedding"));
    CHECK(kc::pooled_state_floats(good) == m.state_floats_per_stream());
}

// The model-view checks run before a GPU is needed: an LTI layer without its B, and a d_state
// above the LTI scan's limit, are refused by name at every entry point.
TEST_CASE("CUDA entry points refuse a broken LTI layer or an LTI d_state above their limit, naming it",
          "[cuda][lti]") {
    using Catch::Contains;
    mw::ModelConfig c = mw::make_config(mw::IoKind::continuous, 16, 2);
    c.lti_layers = {1};
    mw::Model m(c);
    m.init_random(3);
    std::vector<mw::kernels::LayerView> layers(m.view().layers, m.view().layers + 2);
    layers[1].lti_B = nullptr;
    mw::kernels::ModelView broken = m.view();
    broken.layers = layers.data();
    // (Catch2's && keeps references to its operands, so each check builds its own matcher.)
#define MW_REQUIRE_REFUSED(expr, a, b) CHECK_THROWS_WITH(expr, Contains(a) && Contains(b))
    MW_REQUIRE_REFUSED(kc::make_forward(broken, 4096, 1), "layer 1", "without mixer.B");
    MW_REQUIRE_REFUSED(kc::make_stepper(broken, 2), "layer 1", "without mixer.B");
    MW_REQUIRE_REFUSED(kc::make_train_tape(broken, 2, 4096), "layer 1", "without mixer.B");

    mw::ModelConfig big = mw::make_config(mw::IoKind::continuous, 8, 2, kc::kLtiMaxState + 1);
    big.lti_layers = {1};
    const mw::Model mb(big);
    const std::string n = "d_state " + std::to_string(kc::kLtiMaxState + 1);
    MW_REQUIRE_REFUSED(kc::make_forward(mb.view(), 64, 1), "layer 1 is an LTI layer", n);
    MW_REQUIRE_REFUSED(kc::make_stepper(mb.view(), 2), "layer 1 is an LTI layer", n);
    MW_REQUIRE_REFUSED(kc::make_train_tape(mb.view(), 2, 64), "layer 1 is an LTI layer", n);
#undef MW_REQUIRE_REFUSED
}

// Self-feed's draws on the GPU (kc::train_self_feed, the trainer's GPU path) against the host's
// (mw::self_fed_class) from the same forward's logits, flat and pooled: the same class at every
// place, only the rows [first, end) of each sequence drawn, about `chance` of them.
TEST_CASE("CUDA self-feed draws the host's classes from the logits on the GPU (requires a GPU)", "[cuda][train]") {
    if (!gpu_present()) return;
    mw::ModelConfig flat = mw::make_config(mw::IoKind::mulaw8, 16, 2, 8);
    mw::ModelConfig pooled = mw::make_config(mw::IoKind::mulaw8, 8, 3, 8);  // pool 4: 3 stacks of one layer
    pooled.pool = {4};
    const int B = 3, V = 256;
    const int64_t L = 512;
    std::mt19937 rng(21);
    std::vector<int32_t> tokens(size_t(B * L));
    for (int32_t& t : tokens) t = int32_t(rng() % V);
    for (const mw::ModelConfig& c : {flat, pooled}) {
        INFO((c.pooled() ? "pooled model" : "flat model"));
        mw::Model m(c);
        m.init_random(c.pooled() ? 22 : 23);
        std::vector<float> logits(size_t(B * L * V));
        kc::TrainTapePtr tape;
        kc::PooledTapePtr ptape;
        const kc::PooledView pview = c.pooled() ? mw::pooled::cuda_view(m) : kc::PooledView{};
        if (c.pooled()) {
            ptape = kc::make_pooled_tape(pview, B, L);
            kc::train_pooled_forward(*ptape, pview, tokens.data(), L, nullptr, logits.data(), nullptr);
        } else {
            tape = kc::make_train_tape(m.view(), B, L);
            kc::train_forward_tokens(*tape, m.view(), tokens.data(), L, nullptr, logits.data(), nullptr);
        }
        auto draw = [&](const kc::SelfFeedDraws& d, std::vector<int32_t>& fed) {
            fed = tokens;
            if (c.pooled())
                kc::train_pooled_self_feed(*ptape, d, fed.data());
            else
                kc::train_self_feed(*tape, d, fed.data());
        };
        kc::SelfFeedDraws d;
        d.chance = 0.5;
        d.seed = 7;
        d.step = 3;
        d.lane = {5, 6, 7};
        d.pos = {0, 100, 37};
        d.first = {1, 20, 1};
        d.end = {L, L, 300};
        for (const double chance : {0.5, 1.0}) {
            d.chance = chance;
            std::vector<int32_t> fed;
            draw(d, fed);
            int64_t drawn = 0, changed = 0, eligible = 0;
            std::vector<int32_t> expected = tokens;
            for (int b = 0; b < B; ++b)
                for (int64_t i = d.first[size_t(b)]; i < d.end[size_t(b)]; ++i) {
                    const size_t r = size_t(b * L + i);
                    ++eligible;
                    drawn += mw::self_feed_coin(chance, d.seed, d.step, d.lane[size_t(b)], d.pos[size_t(b)] + i).drawn;
                    expected[r] = mw::self_fed_class(tokens[r], logits.data() + (r - 1) * V, V, chance, d.seed, d.step,
                                                     d.lane[size_t(b)], d.pos[size_t(b)] + i);
                    changed += expected[r] != tokens[r];
                }
            INFO("chance " << chance << ": " << drawn << " of " << eligible << " places drawn, " << changed << " changed");
            CHECK(fed == expected);
            CHECK(drawn == Approx(chance * double(eligible)).margin(0.05 * double(eligible)));
            CHECK(changed > drawn * 9 / 10);  // a draw seldom gives the clip's own class back
        }
        // Another step draws other places and classes.
        std::vector<int32_t> a, b;
        draw(d, a);
        d.step = 4;
        draw(d, b);
        CHECK(a != b);
        // Bad arrays are refused by name.
        kc::SelfFeedDraws bad = d;
        bad.first[1] = 0;
        std::vector<int32_t> fed;
        CHECK_THROWS_WITH(draw(bad, fed), Catch::Contains("sequence 1 draws rows 0.."));
        bad = d;
        bad.lane.pop_back();
        CHECK_THROWS_WITH(draw(bad, fed), Catch::Contains("2 lanes"));
    }
}
