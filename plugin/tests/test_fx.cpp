// MambaWave FX in process: the real-time rules on processBlock, the match with the offline
// render, latency, and model swaps under load.
#include "plugin_test_util.h"

#include "model/engine.h"
#include "tests/alloc_trap.h"

#include <atomic>
#include <thread>

using namespace mw;
using namespace mw::plugin;
using namespace mw::plugin::test;

TEST_CASE("FX starts with the default preset, whose controls name and range the generic parameters", "[fx]") {
    FxProcessor p;
    const ModelStatus s = p.model_slot().status();
    REQUIRE(s.info != nullptr);
    CHECK(s.level == ModelStatus::Level::ok);
    CHECK(s.info->name == "ts9");
    CHECK(s.info->hash.length() == 16);
    // The model panel shows the held-out test score that eval --record wrote into the preset.
    CHECK(s.info->training.startsWith("ESR 0.0"));
    CHECK(s.info->training.contains("(test, 105 pairs)"));
    CHECK(p.getNumPrograms() >= 1);
    CHECK(p.getProgramName(p.getCurrentProgram()) == "ts9");

    // ts9: drive 0..1 (default 0.5), tone 100..1000 Hz log (default 400 Hz).
    REQUIRE(p.controls().count() == 2);
    CHECK(p.controls().name(0) == "drive");
    CHECK(p.controls().name(1) == "tone");
    CHECK(p.controls().name(2) == "Control 3");
    CHECK(p.controls().to_user(1, 0.0f) == Approx(100.0f));
    CHECK(p.controls().to_user(1, 1.0f) == Approx(1000.0f));
    CHECK(p.controls().to_user(1, 0.5f) == Approx(std::sqrt(100.0f * 1000.0f)));   // log axis
    auto* tone = p.parameters().getParameter(pid::control(1));
    auto* drive = p.parameters().getParameter(pid::control(0));
    CHECK(tone->getText(tone->getValue(), 0) == "400 Hz");   // the model's default is the default
    CHECK(drive->getValue() == Approx(0.5f));
    CHECK(tone->getDefaultValue() == Approx(p.controls().to_normalised(1, 400.0f)));
    CHECK(tone->getValueForText("1000 Hz") == Approx(1.0f));
    CHECK(p.parameters().getParameter(pid::control(5))->getName(32) == "Control 6");
    CHECK(p.getBypassParameter() == p.parameters().getParameter(pid::bypass));
}

TEST_CASE("FX processBlock allocates nothing: block sizes 1..4096, automation, NaN input, oversized blocks",
          "[fx][realtime]") {
    FxProcessor p;
    std::mt19937 rng(5);
    for (const auto& [rate, prepared_block] : {std::pair{48000.0, 4096}, std::pair{44100.0, 512}, std::pair{96000.0, 256}}) {
        p.prepareToPlay(rate, prepared_block);
        juce::AudioBuffer<float> buffer(2, 4096);
        juce::MidiBuffer midi;
        int64_t allocations = 0;
        for (int n : {1, 2, 3, 7, 31, 64, 127, 128, 256, 441, 1000, 1024, 2047, 4096}) {
            // Automation between blocks (the host's thread), as a host does it.
            set_parameter(p, pid::input_gain, std::uniform_real_distribution<float>(-12, 12)(rng));
            set_parameter(p, pid::mix, std::uniform_real_distribution<float>(0, 100)(rng));
            set_parameter(p, pid::control(0), std::uniform_real_distribution<float>(0, 1)(rng));
            set_parameter(p, pid::control(1), std::uniform_real_distribution<float>(0, 1)(rng));
            set_parameter(p, pid::bypass, n == 441 ? 1.0f : 0.0f);
            buffer.setSize(2, n, false, false, true);
            for (int c = 0; c < 2; ++c)
                for (int i = 0; i < n; ++i)
                    buffer.setSample(c, i, 0.5f * std::sin(0.01f * float(i + c)) + (i == n / 2 ? NAN : 0.0f));
            mw::test::AllocTrap trap;
            p.processBlock(buffer, midi);   // blocks above prepared_block are split inside
            allocations += trap.stop();
            CHECK(all_finite(buffer.getReadPointer(0), size_t(n)));
            CHECK(all_finite(buffer.getReadPointer(1), size_t(n)));
        }
        INFO("host rate " << rate << " Hz, prepared block " << prepared_block);
        CHECK(allocations == 0);
    }
}

TEST_CASE("FX: NaN and Inf input never reach the output, and the effect recovers", "[fx][realtime]") {
    FxProcessor p;
    p.prepareToPlay(48000.0, 256);
    const std::vector<float> clip = guitar(0.1);
    for (float mix : {100.0f, 50.0f, 0.0f}) {
        for (float bypass : {0.0f, 1.0f}) {
            set_parameter(p, pid::mix, mix);
            set_parameter(p, pid::bypass, bypass);
            std::vector<float> bad = clip;
            for (size_t i = 0; i < bad.size(); i += 37) bad[i] = (i / 37) % 3 == 0 ? NAN : (i / 37) % 3 == 1 ? INFINITY : -INFINITY;
            const std::vector<float> y = run(p, bad, {256, 100, 1});
            INFO("mix " << mix << " %, bypass " << bypass);
            CHECK(all_finite(y.data(), y.size()));
        }
    }
    // Clean input afterwards is processed again (not stuck in silence).
    set_parameter(p, pid::mix, 100.0f);
    set_parameter(p, pid::bypass, 0.0f);
    const std::vector<float> y = run(p, clip, {256});
    CHECK(all_finite(y.data(), y.size()));
    CHECK(peak(y.data() + y.size() / 2, y.size() / 2) > 0.01f);
    CHECK(p.take_stats().nonfinite_events >= 0);
}

TEST_CASE("FX: denormal input gives no denormal output (FTZ/DAZ in processBlock)", "[fx][realtime]") {
    FxProcessor p;
    p.prepareToPlay(48000.0, 512);
    std::vector<float> tiny(4800);
    for (size_t i = 0; i < tiny.size(); ++i) tiny[i] = (i % 2 ? 1.0f : -1.0f) * 1e-39f * float(1 + i % 7);
    REQUIRE(std::fpclassify(tiny[1]) == FP_SUBNORMAL);
    for (float mix : {0.0f, 50.0f, 100.0f}) {
        set_parameter(p, pid::mix, mix);
        const std::vector<float> y = run(p, tiny, {512, 33});
        int subnormal = 0;
        for (float v : y) subnormal += std::fpclassify(v) == FP_SUBNORMAL;
        INFO("mix " << mix << " %");
        CHECK(subnormal == 0);
    }
}

TEST_CASE("FX at the model's rate with mix 1 matches the offline render (EffectRunner)", "[fx]") {
    const std::vector<float> clip = guitar(1.0);
    const Model model = load_model(preset_file("ts9.safetensors").getFullPathName().toStdString());
    const std::vector<float> controls = {0.5f, 400.0f};   // the model's defaults

    for (Path path : {Path::step, Path::scan}) {
        EffectRunner runner(model, path, 1, 1);
        runner.set_controls(controls.data());
        std::vector<float> expected(clip.size());
        const float* in = clip.data();
        float* out = expected.data();
        runner.process(&in, &out, int64_t(clip.size()));

        for (const std::vector<int>& blocks : {std::vector<int>{512}, std::vector<int>{1, 97, 480, 4096, 13}}) {
            FxProcessor p;
            p.prepareToPlay(48000.0, 4096);
            CHECK(p.getLatencySamples() == 0);
            const std::vector<float> y = run(p, clip, blocks);
            const float diff = max_abs_diff(y, expected);
            INFO(to_string(path) << " render, blocks of " << blocks.front() << "..., max |plugin - render| = " << diff);
            CHECK(diff < 2e-4f);
            CHECK(peak(y.data(), y.size()) > 0.05f);   // not silence vs silence
        }
    }
}

TEST_CASE("FX reports exact latency: 0 at the model's rate, the resampler's otherwise", "[fx]") {
    FxProcessor p;
    for (double rate : {48000.0, 44100.0, 96000.0, 22050.0}) {
        p.prepareToPlay(rate, 300);
        const int latency = p.getLatencySamples();
        CHECK(latency == p.engine().latency_samples());
        if (rate == 48000.0) CHECK(latency == 0);
        else CHECK(latency > 0);
        // The dry path is delayed by exactly the reported latency (mix 0: an impulse comes out
        // at sample `latency`).
        set_parameter(p, pid::mix, 0.0f);
        std::vector<float> impulse(size_t(rate / 10), 0.0f);
        impulse[0] = 1.0f;
        p.prepareToPlay(rate, 300);   // fresh smoothing state: mix starts at 0
        const std::vector<float> y = run(p, impulse, {300, 7});
        const auto at = size_t(std::max_element(y.begin(), y.end(), [](float a, float b) { return std::abs(a) < std::abs(b); }) - y.begin());
        INFO("host " << rate << " Hz, reported latency " << latency);
        CHECK(at == size_t(latency));
        CHECK(y[at] == Approx(1.0f).margin(1e-3));
        set_parameter(p, pid::mix, 100.0f);
    }
}

TEST_CASE("FX: thousands of model swaps while another thread runs audio", "[fx][realtime][swap]") {
    TempDir tmp;
    const juce::File other = write_effect_model(tmp.dir, "swap-b");   // 44.1 kHz, 3 controls
    const juce::File ts9 = preset_file("ts9.safetensors");
    const dsp::RealtimeModelPtr a = dsp::load_realtime_model(ts9.getFullPathName().toStdString());
    const dsp::RealtimeModelPtr b = dsp::load_realtime_model(other.getFullPathName().toStdString());

    FxProcessor p;
    p.prepareToPlay(48000.0, 512);
    std::atomic<bool> stop{false}, nonfinite{false};
    std::atomic<int64_t> blocks{0}, allocations{0};
    std::thread audio([&] {
        juce::AudioBuffer<float> buffer(2, 512);
        juce::MidiBuffer midi;
        std::mt19937 rng(3);
        float phase = 0.0f;
        while (!stop.load()) {
            const int n = 1 + int(rng() % 512);
            buffer.setSize(2, n, false, false, true);
            for (int i = 0; i < n; ++i, phase += 0.03f) {
                buffer.setSample(0, i, 0.4f * std::sin(phase));
                buffer.setSample(1, i, 0.4f * std::cos(phase));
            }
            mw::test::AllocTrap trap;
            p.processBlock(buffer, midi);
            allocations += trap.stop();
            if (!all_finite(buffer.getReadPointer(0), size_t(n)) || !all_finite(buffer.getReadPointer(1), size_t(n)))
                nonfinite = true;
            ++blocks;
        }
    });

    constexpr int kSwaps = 3000;
    juce::MemoryBlock state;
    for (int i = 0; i < kSwaps; ++i) {
        const bool even = i % 2 == 0;
        if (!p.model_slot().load_now({even ? other : ts9, {}, false, i % 7 == 0}, even ? b : a)) {
            FAIL_CHECK("swap " << i << " failed: " << p.model_slot().status().message);
            break;
        }
        p.collect_garbage();
        if (i % 500 == 0) {   // the host's thread saves and restores meanwhile
            p.getStateInformation(state);
            p.setStateInformation(state.getData(), int(state.getSize()));
        }
        if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));   // let blocks pass
    }
    // Queued loads from files too (the path the editor and hosts use).
    for (int i = 0; i < 50; ++i) p.load_model_file(i % 2 ? ts9 : other);
    const bool idle = wait_idle(p);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop = true;
    audio.join();
    p.collect_garbage();
    CHECK(idle);

    const dsp::EngineStats stats = p.take_stats();
    INFO(kSwaps << " swaps requested, " << stats.model_swaps << " handed over in " << blocks.load() << " blocks");
    CHECK(blocks.load() > 100);
    CHECK(stats.model_swaps > 10);
    CHECK(!nonfinite.load());
    CHECK(allocations.load() == 0);
    // The last request (ts9, from the file) is what runs and what the session saves.
    CHECK(p.model_slot().session_model().path == ts9.getFullPathName());
}

TEST_CASE("FX: sample-rate and block-size changes between runs, mono and stereo", "[fx]") {
    FxProcessor p;
    const std::vector<float> clip = guitar(0.05);
    for (const auto& layout : {juce::AudioChannelSet::stereo(), juce::AudioChannelSet::mono()}) {
        juce::AudioProcessor::BusesLayout l;
        l.inputBuses.add(layout);
        l.outputBuses.add(layout);
        REQUIRE(p.setBusesLayout(l));
        for (double rate : {44100.0, 48000.0, 88200.0, 96000.0, 32000.0})
            for (int block : {1, 17, 64, 4096}) {
                p.prepareToPlay(rate, block);
                const std::vector<float> y = run(p, clip, {block}, layout.size());
                CHECK(all_finite(y.data(), y.size()));
            }
    }
    juce::AudioProcessor::BusesLayout bad;
    bad.inputBuses.add(juce::AudioChannelSet::mono());
    bad.outputBuses.add(juce::AudioChannelSet::stereo());
    CHECK_FALSE(p.checkBusesLayoutSupported(bad));
}
