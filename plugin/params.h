// The plugins' parameters: ids, ranges and units, and the mapping of the generic "Control 1..8"
// parameters onto the loaded model's own controls.
//
// A host sees a fixed parameter list (it is fixed when the plugin is made), but each effect model
// has its own controls (model/model.h ControlSpec: name, unit, range, log scale). So the FX has
// eight generic parameters "Control 1".."Control 8", each 0..1; ControlMap maps 0..1 onto the
// range of the model's control with that index (linear, or logarithmic where the model says so)
// and supplies the name and the value text (e.g. "tone", "400 Hz") that the editor and the
// host's value display show. Controls the model does not have do nothing and are hidden in the
// editor.
#pragma once

#include "dsp/realtime.h"
#include "model/model.h"

#include <juce_audio_processors/juce_audio_processors.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

namespace mw::plugin {

constexpr int kNumControls = dsp::kMaxControls;  // 8

// Parameter ids (stable: hosts store automation and sessions under them).
namespace pid {
inline constexpr const char* input_gain = "input_gain";
inline constexpr const char* output_gain = "output_gain";
inline constexpr const char* mix = "mix";
inline constexpr const char* bypass = "bypass";
inline constexpr const char* temperature = "temperature";
inline constexpr const char* top_p = "top_p";
inline constexpr const char* guidance = "guidance";
inline constexpr const char* level = "level";
inline constexpr const char* seed = "seed";
juce::String control(int index);  // "control_1".."control_8" (index 0..7)
} // namespace pid

// Ranges (user units).
constexpr float kGainMinDb = -24.0f, kGainMaxDb = 24.0f;
constexpr float kLevelMinDb = -60.0f, kLevelMaxDb = 6.0f, kLevelDefaultDb = -6.0f;
constexpr float kTemperatureMin = 0.05f, kTemperatureMax = 2.0f, kTemperatureDefault = dsp::kSynthTemperatureDefault;
constexpr float kTopPMin = 0.05f, kTopPMax = 1.0f, kTopPDefault = dsp::kSynthTopPDefault;
// Label guidance against the null label (dsp::SynthEngine::set_guidance): 0 is off; a model
// without a null label ignores it.
constexpr float kGuidanceMax = dsp::SynthEngine::kMaxGuidance, kGuidanceDefault = dsp::kSynthGuidanceDefault;
constexpr int kSeedMax = 65535, kSeedDefault = 1;

// The loaded model's controls, read by the audio thread (plain atomics: range and scale) and by
// the message thread (names and units, under a mutex the audio thread never takes).
class ControlMap {
public:
    // Loader or message thread: the controls of a newly installed model (at most kNumControls
    // are used).
    void set(const std::vector<ControlSpec>& specs);

    // Any thread, lock-free: how many controls the model has; 0..1 <-> user units.
    int count() const { return count_.load(std::memory_order_acquire); }
    float to_user(int index, float normalised) const;
    float to_normalised(int index, float user) const;
    // The model's default for a control, as 0..1 (0.5 for controls the model lacks).
    float default_normalised(int index) const;

    // Message threads: "drive", "tone" ("Control 3" where the model has no such control),
    // the unit ("Hz", "" ...) and the value as the user reads it ("400 Hz", "0.50").
    juce::String name(int index) const;
    juce::String unit(int index) const;
    juce::String text(int index, float normalised) const;

private:
    struct Range {
        std::atomic<float> min_value{0.0f}, max_value{1.0f}, default_value{0.5f};
        std::atomic<bool> log_scale{false};
    };
    std::array<Range, kNumControls> ranges_;
    std::atomic<int> count_{0};
    mutable std::mutex text_mutex_;
    std::array<std::string, kNumControls> names_, units_;
};

// The FX's parameters: input, output, mix, Control 1..8, bypass. `controls` supplies the value
// text of the control parameters (it must outlive the parameters); `initial` is the model the
// plugin starts with (its control defaults become the parameters' defaults; may be null).
juce::AudioProcessorValueTreeState::ParameterLayout make_fx_parameters(const ControlMap& controls,
                                                                       const ModelConfig* initial);
// The Synth's parameters: temperature, top-p, level, seed, bypass.
juce::AudioProcessorValueTreeState::ParameterLayout make_synth_parameters();

juce::String format_db(float db);

} // namespace mw::plugin
