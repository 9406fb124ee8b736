// MambaWave Synth in process: notes start and stop voices, seeds replay, nothing allocates.
#include "plugin_test_util.h"

#include "tests/alloc_trap.h"

using namespace mw;
using namespace mw::plugin;
using namespace mw::plugin::test;

namespace {

// Renders `blocks` blocks of `n` samples; `events(block, midi)` fills each block's MIDI.
template <typename Events>
std::vector<float> play(SynthProcessor& p, int blocks, int n, Events events, int64_t* allocations = nullptr) {
    juce::AudioBuffer<float> buffer(2, n);
    juce::MidiBuffer midi;
    midi.ensureSize(4096);
    std::vector<float> out;
    out.reserve(size_t(blocks * n));
    for (int b = 0; b < blocks; ++b) {
        midi.clear();
        events(b, midi);
        mw::test::AllocTrap trap;
        p.processBlock(buffer, midi);
        const int64_t a = trap.stop();
        if (allocations) *allocations += a;
        out.insert(out.end(), buffer.getReadPointer(0), buffer.getReadPointer(0) + n);
    }
    return out;
}

} // namespace

TEST_CASE("Synth: note-on starts a voice, note-off fades it out, nothing allocates", "[synth][realtime]") {
    SynthProcessor p;
    REQUIRE(p.model_slot().status().level == ModelStatus::Level::ok);
    CHECK(p.model_slot().status().info->name == "digits_labelled");
    CHECK(p.acceptsMidi());
    TempDir tmp;
    p.load_model_file(write_generator_model(tmp.dir, "loud"));
    REQUIRE(wait_idle(p));
    REQUIRE(p.model_slot().status().info->name == "loud");
    p.prepareToPlay(48000.0, 480);
    int64_t allocations = 0;
    // 0.2 s of silence, note on at block 20 (offset 100), off at block 60, then 0.5 s.
    const std::vector<float> y = play(p, 160, 480, [](int b, juce::MidiBuffer& m) {
        if (b == 20) m.addEvent(juce::MidiMessage::noteOn(1, 60, 0.8f), 100);
        if (b == 60) m.addEvent(juce::MidiMessage::noteOff(1, 60), 5);
    }, &allocations);
    CHECK(allocations == 0);
    REQUIRE(all_finite(y.data(), y.size()));
    CHECK(peak(y.data(), 20 * 480 + 100) == 0.0f);             // silent before the note
    CHECK(peak(y.data() + 21 * 480, 39 * 480) > 0.01f);        // sounding while held
    CHECK(peak(y.data() + 70 * 480, 90 * 480) < 1e-6f);        // faded out after the release
    CHECK(p.active_voices() == 0);
}

TEST_CASE("Synth: the same seed and note replay the same audio, another seed differs", "[synth]") {
    TempDir tmp;
    const juce::File loud = write_generator_model(tmp.dir, "loud");
    auto render = [&](int seed) {
        SynthProcessor p;
        p.load_model_file(loud);
        REQUIRE(wait_idle(p));
        set_parameter(p, pid::seed, float(seed));
        p.prepareToPlay(44100.0, 256);
        return play(p, 40, 256, [](int b, juce::MidiBuffer& m) {
            if (b == 0) m.addEvent(juce::MidiMessage::noteOn(1, 64, 1.0f), 0);
        });
    };
    const std::vector<float> a = render(7), b = render(7), c = render(8);
    CHECK(peak(a.data(), a.size()) > 0.05f);
    CHECK(a == b);
    CHECK(max_abs_diff(a, c) > 1e-3f);
}

TEST_CASE("Synth: a labelled generator's keys choose its label, and the model info says which", "[synth]") {
    TempDir tmp;
    ModelConfig c = make_config(IoKind::mulaw8, 16, 2);
    c.labels = {"zero", "one", "two", "three"};
    c.label_prefix = 16;
    Model m(c);
    m.init_random(5, 0.3f);
    const juce::File labelled = tmp.dir.getChildFile("labelled.safetensors");
    save_model(m, labelled.getFullPathName().toStdString());
    m.mutable_config().labels.clear();
    m.mutable_config().label_prefix = 0;
    const juce::File plain = tmp.dir.getChildFile("plain.safetensors");
    save_model(m, plain.getFullPathName().toStdString());
    auto render = [&](const juce::File& file, const juce::String& keys) {
        SynthProcessor p;
        p.load_model_file(file);
        REQUIRE(wait_idle(p));
        CHECK(p.model_slot().status().info->keys == keys);
        p.prepareToPlay(8000.0, 256);
        return play(p, 20, 256, [&](int b, juce::MidiBuffer& midi) {
            if (b == 0) midi.addEvent(juce::MidiMessage::noteOn(1, 61, 1.0f), 0);
        });
    };
    // The same weights, seed and note: primed with label "one"'s prefix, the voice is another
    // than primed with silence (the sample-exact chain is checked in tests/test_dsp_realtime.cpp).
    const std::vector<float> one = render(labelled, "C4 plays zero ... D#4 plays three, every 4 keys");
    const std::vector<float> silent = render(plain, "");
    CHECK(peak(one.data(), one.size()) > 0.01f);
    CHECK(max_abs_diff(one, silent) > 1e-3f);
}

TEST_CASE("Synth: the Guidance knob guides the voices of a model with a null label, and only those", "[synth]") {
    TempDir tmp;
    ModelConfig c = make_config(IoKind::mulaw8, 16, 2);
    c.labels = {"zero", "one", "two"};
    c.label_prefix = 8;
    c.label_null = true;
    Model m(c);
    m.init_random(6, 0.3f);
    const juce::File with_null = tmp.dir.getChildFile("null.safetensors");
    save_model(m, with_null.getFullPathName().toStdString());
    m.mutable_config().label_null = false;
    const juce::File without = tmp.dir.getChildFile("plain.safetensors");
    save_model(m, without.getFullPathName().toStdString());
    auto render = [&](const juce::File& file, float guidance, int64_t* allocations = nullptr) {
        SynthProcessor p;
        p.load_model_file(file);
        REQUIRE(wait_idle(p));
        set_parameter(p, pid::guidance, guidance);
        p.prepareToPlay(8000.0, 256);
        return play(p, 20, 256, [&](int b, juce::MidiBuffer& midi) {
            if (b == 0) midi.addEvent(juce::MidiMessage::noteOn(1, 61, 1.0f), 0);
        }, allocations);
    };
    int64_t allocations = 0;
    const std::vector<float> guided = render(with_null, 4.0f, &allocations);
    CHECK(allocations == 0);
    const std::vector<float> plain = render(with_null, 0.0f);
    CHECK(peak(guided.data(), guided.size()) > 0.01f);
    CHECK(max_abs_diff(guided, plain) > 1e-3f);  // the knob reaches the voices
    CHECK(render(without, 4.0f) == render(without, 0.0f));  // a model without a null label ignores it

    // a model that declares its own weight moves the knob there when it is picked; one that
    // declares none leaves the knob where it was
    auto guidance_after_pick = [&](const juce::File& file) {
        SynthProcessor p;
        set_parameter(p, pid::guidance, 4.5f);
        p.load_model_file(file);
        REQUIRE(wait_idle(p));
        return p.parameters().getRawParameterValue(pid::guidance)->load();
    };
    m.mutable_config().label_null = true;
    m.mutable_config().guidance = 2.0f;
    const juce::File declared = tmp.dir.getChildFile("declared.safetensors");
    save_model(m, declared.getFullPathName().toStdString());
    CHECK(std::fabs(guidance_after_pick(declared) - 2.0f) < 1e-3f);
    CHECK(std::fabs(guidance_after_pick(with_null) - 4.5f) < 1e-3f);
}

TEST_CASE("Synth: parameter extremes, block sizes 1..4096, all-notes-off, SysEx", "[synth][realtime]") {
    SynthProcessor p;
    std::mt19937 rng(11);
    for (double rate : {44100.0, 48000.0, 96000.0}) {
        p.prepareToPlay(rate, 4096);
        int64_t allocations = 0;
        for (int n : {1, 3, 64, 333, 1024, 4096}) {
            set_parameter(p, pid::temperature, rng() % 2 ? kTemperatureMin : kTemperatureMax);
            set_parameter(p, pid::top_p, rng() % 2 ? kTopPMin : kTopPMax);
            set_parameter(p, pid::guidance, rng() % 2 ? 0.0f : kGuidanceMax);
            set_parameter(p, pid::level, rng() % 2 ? kLevelMinDb : kLevelMaxDb);
            const std::vector<float> y = play(p, 4, n, [&](int b, juce::MidiBuffer& m) {
                const uint8_t sysex[] = {0xf0, 0x7e, 0x7f, 0x09, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xf7};
                m.addEvent(sysex, int(sizeof(sysex)), 0);
                for (int k = 0; k < 12; ++k) m.addEvent(juce::MidiMessage::noteOn(1, 40 + k + b, 0.5f), k % n);
                if (b == 3) m.addEvent(juce::MidiMessage::allNotesOff(1), n - 1);
                m.addEvent(juce::MidiMessage::noteOn(1, 90, 0.5f), n + 50);   // past the end: clamped
            }, &allocations);
            INFO("rate " << rate << ", block " << n);
            CHECK(all_finite(y.data(), y.size()));
        }
        CHECK(allocations == 0);
    }
}

TEST_CASE("Synth: bypass mutes smoothly and state restores its parameters", "[synth][state]") {
    TempDir tmp;
    SynthProcessor p;
    p.load_model_file(write_generator_model(tmp.dir, "loud"));
    REQUIRE(wait_idle(p));
    p.prepareToPlay(48000.0, 480);
    set_parameter(p, pid::bypass, 1.0f);
    const std::vector<float> y = play(p, 30, 480, [](int b, juce::MidiBuffer& m) {
        if (b == 0) m.addEvent(juce::MidiMessage::noteOn(1, 60, 1.0f), 0);
    });
    CHECK(peak(y.data() + 10 * 480, 20 * 480) < 1e-4f);
    set_parameter(p, pid::bypass, 0.0f);
    const std::vector<float> z = play(p, 10, 480, [](int, juce::MidiBuffer&) {});
    CHECK(peak(z.data() + 5 * 480, 5 * 480) > 0.01f);   // the held note sounds again

    set_parameter(p, pid::temperature, 1.3f);
    set_parameter(p, pid::seed, 4242.0f);
    juce::MemoryBlock m;
    p.getStateInformation(m);
    SynthProcessor q;
    q.setStateInformation(m.getData(), int(m.getSize()));
    REQUIRE(wait_idle(q));
    for (const char* id : {pid::temperature, pid::top_p, pid::guidance, pid::level, pid::seed, pid::bypass})
        CHECK(q.parameters().getParameter(id)->getValue() == Approx(p.parameters().getParameter(id)->getValue()));
}
