// Host state (the model by path and content hash, every parameter) and the program list.
#include "plugin_test_util.h"

using namespace mw;
using namespace mw::plugin;
using namespace mw::plugin::test;

namespace {

juce::MemoryBlock state_of(juce::AudioProcessor& p) {
    juce::MemoryBlock m;
    p.getStateInformation(m);
    return m;
}

void restore(juce::AudioProcessor& p, const juce::MemoryBlock& m) { p.setStateInformation(m.getData(), int(m.getSize())); }

// A saved session naming `path` and `hash` (parameters left out: defaults stay).
juce::MemoryBlock session_naming(const juce::String& path, const juce::String& hash) {
    juce::XmlElement root("MambaWave");
    root.setAttribute("format", 1);
    auto* m = root.createNewChildElement("Model");
    m->setAttribute("path", path);
    m->setAttribute("hash", hash);
    juce::MemoryBlock block;
    juce::AudioProcessor::copyXmlToBinary(root, block);
    return block;
}

} // namespace

TEST_CASE("state: every parameter and the model (path and hash) come back in a new instance", "[state]") {
    TempDir tmp;
    const juce::File model_b = write_effect_model(tmp.dir, "state-b");
    FxProcessor a;
    a.load_model_file(model_b);
    REQUIRE(wait_idle(a));
    REQUIRE(a.model_slot().status().level == ModelStatus::Level::ok);
    REQUIRE(a.controls().count() == 3);
    // The user picked the model: its control defaults apply (cutoff 1000 Hz on 200..8000 log).
    CHECK(a.parameters().getParameter(pid::control(1))->getText(a.parameters().getParameter(pid::control(1))->getValue(), 0) ==
          "1000 Hz");
    set_parameter(a, pid::input_gain, -3.5f);
    set_parameter(a, pid::output_gain, 6.0f);
    set_parameter(a, pid::mix, 42.0f);
    set_parameter(a, pid::control(0), 0.8f);
    set_parameter(a, pid::control(2), 0.1f);
    set_parameter(a, pid::bypass, 1.0f);
    const juce::MemoryBlock saved = state_of(a);

    FxProcessor b;   // starts with the default preset
    restore(b, saved);
    REQUIRE(wait_idle(b));
    const ModelStatus s = b.model_slot().status();
    REQUIRE(s.info != nullptr);
    CHECK(s.level == ModelStatus::Level::ok);
    CHECK(s.info->path == model_b.getFullPathName());
    CHECK(b.model_slot().session_model() == a.model_slot().session_model());
    CHECK(b.controls().count() == 3);
    CHECK(b.controls().name(1) == "cutoff");
    for (auto* param : a.getParameters()) {
        auto* with_id = dynamic_cast<juce::AudioProcessorParameterWithID*>(param);
        REQUIRE(with_id != nullptr);
        INFO(with_id->paramID);
        CHECK(b.parameters().getParameter(with_id->paramID)->getValue() == Approx(param->getValue()).margin(1e-6));
    }
    // Restored controls are not reset to the model's defaults by the load.
    CHECK(b.parameters().getParameter(pid::control(2))->getValue() == Approx(0.1f).margin(1e-6));
    CHECK(state_of(b) == saved);
}

TEST_CASE("state: a model file that moved is found in the preset directories by name and hash", "[state]") {
    const juce::File ts9 = preset_file("ts9.safetensors");
    FxProcessor p;   // starts with ts9, the default
    const juce::String hash = p.model_slot().status().info->hash;
    TempDir tmp;
    const juce::File b = write_effect_model(tmp.dir, "moved-b");
    p.load_model_file(b);   // run something else first
    REQUIRE(wait_idle(p));
    restore(p, session_naming("/no/such/dir/ts9.safetensors", hash));
    REQUIRE(wait_idle(p));
    const ModelStatus s = p.model_slot().status();
    INFO(s.message);
    CHECK(s.level == ModelStatus::Level::ok);
    CHECK(s.info->path == ts9.getFullPathName());
    CHECK(s.message.contains("was not at /no/such/dir/ts9.safetensors"));
}

TEST_CASE("state: a missing model file gets a clear message, the plugin keeps running, saving keeps it", "[state]") {
    FxProcessor p;
    const juce::String running = p.model_slot().status().info->path;
    const juce::String missing = "/no/such/dir/gone-model.safetensors";
    restore(p, session_naming(missing, "0123456789abcdef"));
    REQUIRE(wait_idle(p));
    const ModelStatus s = p.model_slot().status();
    INFO(s.message);
    CHECK(s.level == ModelStatus::Level::error);
    CHECK(s.message.contains("Model file not found: " + missing));
    CHECK(s.message.contains("01234567"));
    CHECK(s.message.contains("Still running ts9"));
    REQUIRE(s.info != nullptr);
    CHECK(s.info->path == running);   // audio goes on with the model it had
    // Saving the session again does not lose the reference to the missing file.
    FxProcessor q;
    restore(q, state_of(p));
    REQUIRE(wait_idle(q));
    CHECK(q.model_slot().session_model().path == missing);
    CHECK(q.model_slot().session_model().hash == "0123456789abcdef");
}

TEST_CASE("state: a model file that changed since the session was saved is loaded with a warning", "[state]") {
    TempDir tmp;
    const juce::File f = write_effect_model(tmp.dir, "changing", 48000.0, 1);
    FxProcessor a;
    a.load_model_file(f);
    REQUIRE(wait_idle(a));
    const juce::MemoryBlock saved = state_of(a);
    const juce::String old_hash = a.model_slot().session_model().hash;
    write_effect_model(tmp.dir, "changing", 48000.0, 2);   // retrained in place

    FxProcessor b;
    restore(b, saved);
    REQUIRE(wait_idle(b));
    const ModelStatus s = b.model_slot().status();
    INFO(s.message);
    CHECK(s.level == ModelStatus::Level::warning);
    CHECK(s.message.contains("changed since the session was saved"));
    CHECK(s.info->path == f.getFullPathName());
    CHECK(b.model_slot().session_model().hash != old_hash);
}

TEST_CASE("state: foreign, damaged and wrong-kind states are refused without harm", "[state]") {
    FxProcessor p;
    set_parameter(p, pid::mix, 33.0f);
    const juce::MemoryBlock before = state_of(p);
    std::mt19937 rng(9);
    for (int size : {0, 1, 7, 100, 5000}) {
        std::vector<char> junk(size_t(size) + 1);
        for (char& c : junk) c = char(rng());
        p.setStateInformation(junk.data(), size);
    }
    juce::MemoryBlock other;
    juce::AudioProcessor::copyXmlToBinary(juce::XmlElement("SomethingElse"), other);
    restore(p, other);
    REQUIRE(wait_idle(p));
    CHECK(state_of(p) == before);

    // A generator model in the FX: refused with a message naming both kinds, the effect stays.
    restore(p, session_naming(preset_file("digits.safetensors").getFullPathName(), ""));
    REQUIRE(wait_idle(p));
    const ModelStatus s = p.model_slot().status();
    INFO(s.message);
    CHECK(s.level == ModelStatus::Level::error);
    CHECK(s.message.contains("generator"));
    CHECK(s.info->name == "ts9");
}

TEST_CASE("programs: the shipped presets, setCurrentProgram loads one and applies its control defaults", "[state]") {
    TempDir tmp;
    for (const char* name : {"ts9.safetensors", "ds1.safetensors", "digits.safetensors"})
        REQUIRE(preset_file(name).copyFileTo(tmp.dir.getChildFile(name)));
    write_effect_model(tmp.dir, "zz-second");
    tmp.dir.getChildFile("broken.safetensors").replaceWithText("not a model");
    PresetsDirOverride presets(tmp.dir);

    FxProcessor fx;
    REQUIRE(fx.getNumPrograms() == 3);   // effects only, by name; the broken file is left out
    CHECK(fx.getProgramName(0) == "ds1");
    CHECK(fx.getProgramName(1) == "ts9");
    CHECK(fx.getProgramName(2) == "zz-second");
    CHECK(fx.getCurrentProgram() == 1);   // the default preset, not the first by name
    CHECK(fx.model_slot().status().info->name == "ts9");
    fx.setCurrentProgram(2);
    REQUIRE(wait_idle(fx));
    CHECK(fx.getCurrentProgram() == 2);
    CHECK(fx.model_slot().status().info->name == "zz-second");
    auto* blend = fx.parameters().getParameter(pid::control(2));
    CHECK(blend->getText(blend->getValue(), 0) == "0.25");
    // A host re-sending the current program (e.g. after a session restore) changes nothing.
    set_parameter(fx, pid::control(2), 0.9f);
    fx.setCurrentProgram(2);
    REQUIRE(wait_idle(fx));
    CHECK(blend->getValue() == Approx(0.9f));

    SynthProcessor synth;
    CHECK(synth.getNumPrograms() == 1);
    CHECK(synth.getProgramName(0) == "digits");
    CHECK(synth.getCurrentProgram() == 0);
}

TEST_CASE("presets: MW_PRESETS_DIR first, then the directory next to the binary", "[state]") {
    TempDir tmp;
    PresetsDirOverride presets(tmp.dir);
    const std::vector<juce::File> dirs = preset_directories();
    REQUIRE(!dirs.empty());
    CHECK(dirs.front() == tmp.dir);
    CHECK(this_binary().existsAsFile());
    // An empty preset directory (and none elsewhere): the plugin starts without a model and
    // says what to do.
    FxProcessor p;
    if (find_presets(IoKind::continuous).empty()) {
        CHECK(p.model_slot().status().info == nullptr);
        CHECK(p.getNumPrograms() == 1);
        CHECK(p.getProgramName(0) == "(no presets found)");
        p.prepareToPlay(48000.0, 64);
        const std::vector<float> x(640, 0.25f);
        const std::vector<float> y = run(p, x, {64});
        CHECK(y.back() == Approx(0.25f));   // no model: the input passes dry
    }
}
