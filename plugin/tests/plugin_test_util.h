// Helpers of the in-process plugin tests: processors driven the way a host drives them.
#pragma once

#include "dsp/audio_file.h"
#include "model/model_file.h"
#include "plugin/fx_processor.h"
#include "plugin/synth_processor.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace mw::plugin::test {

inline juce::File source_dir() { return juce::File(juce::String(MW_SOURCE_DIR)); }
inline juce::File preset_file(const char* name) { return source_dir().getChildFile("presets").getChildFile(name); }

// A directory removed when the test ends.
struct TempDir {
    juce::File dir;
    TempDir() : dir(juce::File::createTempFile("mw_plugin_test")) { dir.createDirectory(); }
    ~TempDir() { dir.deleteRecursively(); }
};

// MW_PRESETS_DIR for the processors made while this lives.
struct PresetsDirOverride {
    juce::String old;
    explicit PresetsDirOverride(const juce::File& dir)
        : old(juce::SystemStats::getEnvironmentVariable("MW_PRESETS_DIR", {})) {
        setenv("MW_PRESETS_DIR", dir.getFullPathName().toRawUTF8(), 1);
    }
    ~PresetsDirOverride() { setenv("MW_PRESETS_DIR", old.toRawUTF8(), 1); }
};

// A second effect model, different from the shipped ones: 3 controls, 44.1 kHz.
inline juce::File write_effect_model(const juce::File& dir, const juce::String& name, double rate_hz = 44100.0,
                                     uint64_t seed = 7) {
    ModelConfig c = make_config(IoKind::continuous, 8, 2);
    c.sample_rate_hz = rate_hz;
    c.skip = true;
    c.controls = {{"gain", "dB", -12.0f, 12.0f, 0.0f, false},
                  {"cutoff", "Hz", 200.0f, 8000.0f, 1000.0f, true},
                  {"blend", "", 0.0f, 1.0f, 0.25f, false}};
    c.description = "test effect " + name.toStdString();
    c.training_json = R"({"steps": 1200, "metric": {"name": "esr", "value": 0.0123, "split": "validation"}})";
    Model m(c);
    m.init_random(seed, 0.2f);
    const juce::File f = dir.getChildFile(name + ".safetensors");
    save_model(m, f.getFullPathName().toStdString());
    return f;
}

// A generator whose random weights give near-uniform class probabilities: loud noise at once
// and all the time, that depends on the seed (the shipped digits generator babbles with pauses).
inline juce::File write_generator_model(const juce::File& dir, const juce::String& name) {
    ModelConfig c = make_config(IoKind::mulaw8, 16, 2);
    c.sample_rate_hz = 16000.0;
    c.description = "loud test generator";
    Model m(c);
    m.init_random(5, 0.3f);
    const juce::File f = dir.getChildFile(name + ".safetensors");
    save_model(m, f.getFullPathName().toStdString());
    return f;
}

// The bundled guitar clip (mono, 48 kHz), `seconds` long.
inline std::vector<float> guitar(double seconds) {
    dsp::AudioData a = dsp::read_audio(source_dir().getChildFile("presets/demo/guitar_di.flac").getFullPathName().toStdString());
    std::vector<float> x = a.channels.at(0);
    x.resize(static_cast<size_t>(seconds * a.sample_rate_hz));
    return x;
}

// Runs `input` (mono, copied to every channel) through the processor in blocks of the given
// sizes (cycled), returning channel 0. Parameters are left as they are.
inline std::vector<float> run(juce::AudioProcessor& p, const std::vector<float>& input, const std::vector<int>& blocks,
                              int channels = 2) {
    std::vector<float> out(input.size());
    int max_block = 0;
    for (int b : blocks) max_block = std::max(max_block, b);
    juce::AudioBuffer<float> buffer(channels, max_block);
    juce::MidiBuffer midi;
    size_t t = 0;
    for (size_t k = 0; t < input.size(); ++k) {
        const int n = static_cast<int>(std::min<size_t>(size_t(blocks[k % blocks.size()]), input.size() - t));
        buffer.setSize(channels, n, false, false, true);
        for (int c = 0; c < channels; ++c) std::copy_n(input.data() + t, n, buffer.getWritePointer(c));
        p.processBlock(buffer, midi);
        std::copy_n(buffer.getReadPointer(0), n, out.data() + t);
        t += size_t(n);
    }
    return out;
}

inline bool all_finite(const float* x, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i])) return false;
    return true;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    float m = 0.0f;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

inline float peak(const float* x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(x[i]));
    return m;
}

inline void set_parameter(juce::AudioProcessor& p, const juce::String& id, float user_value) {
    auto* param = dynamic_cast<juce::RangedAudioParameter*>(
        dynamic_cast<ProcessorBase&>(p).parameters().getParameter(id));
    REQUIRE(param != nullptr);
    param->setValueNotifyingHost(param->convertTo0to1(user_value));
}

inline bool wait_idle(ProcessorBase& p) { return p.model_slot().wait_until_idle(20000); }

} // namespace mw::plugin::test
