#include "plugin/fx_processor.h"

#include <algorithm>

namespace mw::plugin {

juce::AudioProcessor::BusesProperties FxProcessor::buses() {
    return BusesProperties()
        .withInput("Input", juce::AudioChannelSet::stereo(), true)
        .withOutput("Output", juce::AudioChannelSet::stereo(), true);
}

FxProcessor::FxProcessor()
    : EngineProcessor({"MambaWave FX", IoKind::continuous, buses(), &make_fx_parameters},
                      "The effect passes the input dry."),
      input_gain_db_(raw(pid::input_gain)),
      output_gain_db_(raw(pid::output_gain)),
      mix_percent_(raw(pid::mix)),
      bypass_on_(raw(pid::bypass)) {
    for (int i = 0; i < kNumControls; ++i)
        control_[size_t(i)] = parameters().getRawParameterValue(pid::control(i));
    start();
}

FxProcessor::~FxProcessor() { shut_down(); }

bool FxProcessor::isBusesLayoutSupported(const BusesLayout& layouts) const {
    // Mono -> mono or stereo -> stereo: each channel is one stream of the model.
    const juce::AudioChannelSet in = layouts.getMainInputChannelSet();
    const juce::AudioChannelSet out = layouts.getMainOutputChannelSet();
    return in == out && (out == juce::AudioChannelSet::mono() || out == juce::AudioChannelSet::stereo());
}

void FxProcessor::apply_parameters() noexcept {
    engine_.set_input_gain_db(input_gain_db_->load(std::memory_order_relaxed));
    engine_.set_output_gain_db(output_gain_db_->load(std::memory_order_relaxed));
    engine_.set_mix(mix_percent_->load(std::memory_order_relaxed) * 0.01f);
    engine_.set_bypass(bypass_on_->load(std::memory_order_relaxed) >= 0.5f);
    const int n = controls_.count();
    for (int i = 0; i < n; ++i)
        engine_.set_control(i, controls_.to_user(i, control_[size_t(i)]->load(std::memory_order_relaxed)));
}

void FxProcessor::processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer&) {
    juce::ScopedNoDenormals no_denormals;
    const int n = buffer.getNumSamples();
    const int in_channels = getTotalNumInputChannels();
    for (int c = in_channels; c < buffer.getNumChannels(); ++c) buffer.clear(c, 0, n);
    const int channels = std::min({channels_, in_channels, buffer.getNumChannels()});
    if (!prepared_ || n <= 0 || channels <= 0) return;

    apply_parameters();
    float* const* data = buffer.getArrayOfWritePointers();
    scope_input().push(data, channels, n);
    // Hosts may send more than they announced in prepareToPlay: split into prepared sizes.
    std::array<float*, kMaxChannels> at{};
    for (int start = 0; start < n; start += max_block_samples_) {
        const int len = std::min(max_block_samples_, n - start);
        for (int c = 0; c < channels; ++c) at[size_t(c)] = data[c] + start;
        engine_.process(at.data(), at.data(), channels, len);
    }
    scope_output().push(data, channels, n);
}

} // namespace mw::plugin
