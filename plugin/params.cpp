#include "plugin/params.h"

#include <algorithm>
#include <cmath>

namespace mw::plugin {

juce::String pid::control(int index) { return "control_" + juce::String(index + 1); }

juce::String format_db(float db) {
    if (db <= -59.95f) return "-inf dB";
    return juce::String(db, 1) + " dB";
}

// --- ControlMap ---------------------------------------------------------------------------

void ControlMap::set(const std::vector<ControlSpec>& specs) {
    const int n = std::min(static_cast<int>(specs.size()), kNumControls);
    {
        std::lock_guard<std::mutex> lock(text_mutex_);
        for (int i = 0; i < kNumControls; ++i) {
            names_[size_t(i)] = i < n ? specs[size_t(i)].name : std::string();
            units_[size_t(i)] = i < n ? specs[size_t(i)].unit : std::string();
        }
    }
    for (int i = 0; i < kNumControls; ++i) {
        Range& r = ranges_[size_t(i)];
        if (i < n) {
            const ControlSpec& s = specs[size_t(i)];
            // A log axis needs a positive range (the loader checks this; be safe anyway).
            const bool log_scale = s.log_scale && s.min_value > 0.0f && s.max_value > s.min_value;
            r.min_value.store(s.min_value, std::memory_order_relaxed);
            r.max_value.store(s.max_value, std::memory_order_relaxed);
            r.default_value.store(s.default_value, std::memory_order_relaxed);
            r.log_scale.store(log_scale, std::memory_order_relaxed);
        } else {
            r.min_value.store(0.0f, std::memory_order_relaxed);
            r.max_value.store(1.0f, std::memory_order_relaxed);
            r.default_value.store(0.5f, std::memory_order_relaxed);
            r.log_scale.store(false, std::memory_order_relaxed);
        }
    }
    count_.store(n, std::memory_order_release);
}

float ControlMap::to_user(int index, float normalised) const {
    const Range& r = ranges_[size_t(std::clamp(index, 0, kNumControls - 1))];
    const float lo = r.min_value.load(std::memory_order_relaxed);
    const float hi = r.max_value.load(std::memory_order_relaxed);
    return ControlSpec::control_at(lo, hi, r.log_scale.load(std::memory_order_relaxed), normalised);
}

float ControlMap::to_normalised(int index, float user) const {
    const Range& r = ranges_[size_t(std::clamp(index, 0, kNumControls - 1))];
    const float lo = r.min_value.load(std::memory_order_relaxed);
    const float hi = r.max_value.load(std::memory_order_relaxed);
    if (!(hi > lo)) return 0.0f;
    const float v = std::clamp(user, lo, hi);
    if (r.log_scale.load(std::memory_order_relaxed) && lo > 0.0f)
        return std::log(v / lo) / std::log(hi / lo);
    return (v - lo) / (hi - lo);
}

float ControlMap::default_normalised(int index) const {
    if (index >= count()) return 0.5f;
    return to_normalised(index, ranges_[size_t(index)].default_value.load(std::memory_order_relaxed));
}

juce::String ControlMap::name(int index) const {
    std::lock_guard<std::mutex> lock(text_mutex_);
    const std::string& n = names_[size_t(std::clamp(index, 0, kNumControls - 1))];
    return n.empty() ? "Control " + juce::String(index + 1) : juce::String(n);
}

juce::String ControlMap::unit(int index) const {
    std::lock_guard<std::mutex> lock(text_mutex_);
    return juce::String(units_[size_t(std::clamp(index, 0, kNumControls - 1))]);
}

juce::String ControlMap::text(int index, float normalised) const {
    if (index >= count()) return juce::String(normalised, 2);   // a control the model lacks
    const float v = to_user(index, normalised);
    const float magnitude = std::abs(v);
    const int decimals = magnitude >= 100.0f ? 0 : magnitude >= 10.0f ? 1 : 2;
    const juce::String u = unit(index);
    return juce::String(v, decimals) + (u.isEmpty() ? juce::String() : " " + u);
}

// --- Layouts --------------------------------------------------------------------------------

namespace {

using juce::AudioParameterFloatAttributes;
using juce::NormalisableRange;
using juce::ParameterID;

// Version hint 1 for every parameter (AU hosts need one; never lower it).
constexpr int kVersion = 1;

std::unique_ptr<juce::AudioParameterFloat> db_parameter(const char* id, const char* name, float lo,
                                                        float hi, float def) {
    return std::make_unique<juce::AudioParameterFloat>(
        ParameterID{id, kVersion}, name, NormalisableRange<float>(lo, hi, 0.1f), def,
        AudioParameterFloatAttributes()
            .withLabel("dB")
            .withStringFromValueFunction([](float v, int) { return format_db(v); })
            .withValueFromStringFunction([](const juce::String& t) {
                return t.trim().startsWithIgnoreCase("-inf") ? -60.0f : t.getFloatValue();
            }));
}

std::unique_ptr<juce::AudioParameterBool> bypass_parameter() {
    return std::make_unique<juce::AudioParameterBool>(ParameterID{pid::bypass, kVersion}, "Bypass", false);
}

} // namespace

juce::AudioProcessorValueTreeState::ParameterLayout make_fx_parameters(const ControlMap& controls,
                                                                       const ModelConfig* initial) {
    juce::AudioProcessorValueTreeState::ParameterLayout layout;
    layout.add(db_parameter(pid::input_gain, "Input", kGainMinDb, kGainMaxDb, 0.0f));
    layout.add(db_parameter(pid::output_gain, "Output", kGainMinDb, kGainMaxDb, 0.0f));
    layout.add(std::make_unique<juce::AudioParameterFloat>(
        ParameterID{pid::mix, kVersion}, "Mix", NormalisableRange<float>(0.0f, 100.0f, 0.1f), 100.0f,
        AudioParameterFloatAttributes().withLabel("%").withStringFromValueFunction(
            [](float v, int) { return juce::String(v, 0) + " %"; })));
    for (int i = 0; i < kNumControls; ++i) {
        float def = 0.5f;
        if (initial && i < initial->n_cond()) {
            ControlMap one;
            one.set(initial->controls);
            def = one.default_normalised(i);
        }
        const ControlMap* map = &controls;
        layout.add(std::make_unique<juce::AudioParameterFloat>(
            ParameterID{pid::control(i), kVersion}, "Control " + juce::String(i + 1),
            NormalisableRange<float>(0.0f, 1.0f), def,
            AudioParameterFloatAttributes()
                .withStringFromValueFunction([map, i](float v, int) { return map->text(i, v); })
                .withValueFromStringFunction([map, i](const juce::String& t) {
                    return i < map->count() ? map->to_normalised(i, t.getFloatValue())
                                            : std::clamp(t.getFloatValue(), 0.0f, 1.0f);
                })));
    }
    layout.add(bypass_parameter());
    return layout;
}

juce::AudioProcessorValueTreeState::ParameterLayout make_synth_parameters() {
    juce::AudioProcessorValueTreeState::ParameterLayout layout;
    layout.add(std::make_unique<juce::AudioParameterFloat>(
        ParameterID{pid::temperature, kVersion}, "Temperature",
        NormalisableRange<float>(kTemperatureMin, kTemperatureMax, 0.01f), kTemperatureDefault,
        AudioParameterFloatAttributes().withStringFromValueFunction(
            [](float v, int) { return juce::String(v, 2); })));
    layout.add(std::make_unique<juce::AudioParameterFloat>(
        ParameterID{pid::top_p, kVersion}, "Top-p", NormalisableRange<float>(kTopPMin, kTopPMax, 0.01f),
        kTopPDefault,
        AudioParameterFloatAttributes().withStringFromValueFunction(
            [](float v, int) { return juce::String(v, 2); })));
    layout.add(std::make_unique<juce::AudioParameterFloat>(
        ParameterID{pid::guidance, kVersion}, "Guidance", NormalisableRange<float>(0.0f, kGuidanceMax, 0.1f),
        kGuidanceDefault,
        AudioParameterFloatAttributes().withStringFromValueFunction(
            [](float v, int) { return v <= 0.0f ? juce::String("off") : juce::String(v, 1); })));
    layout.add(db_parameter(pid::level, "Level", kLevelMinDb, kLevelMaxDb, kLevelDefaultDb));
    layout.add(std::make_unique<juce::AudioParameterInt>(ParameterID{pid::seed, kVersion}, "Seed", 0,
                                                         kSeedMax, kSeedDefault));
    layout.add(bypass_parameter());
    return layout;
}

} // namespace mw::plugin
