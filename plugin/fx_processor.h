// MambaWave FX: audio in -> effect model -> audio out (mono or stereo; a mono effect model runs
// one stream per channel). A thin shell over dsp::EffectEngine, which does the gains, mix,
// bypass, smoothing, resampling to the model's rate, crossfaded model swaps and the NaN guard.
#pragma once

#include "plugin/engine_processor.h"

#include <array>

namespace mw::plugin {

class FxProcessor final : public EngineProcessor<dsp::EffectEngine> {
public:
    FxProcessor();
    ~FxProcessor() override;

    bool isBusesLayoutSupported(const BusesLayout& layouts) const override;
    void processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi) override;
    using juce::AudioProcessor::processBlock;
    double getTailLengthSeconds() const override { return 0.0; }
    bool acceptsMidi() const override { return false; }

private:
    static BusesProperties buses();
    void apply_parameters() noexcept override;

    std::atomic<float>* input_gain_db_;
    std::atomic<float>* output_gain_db_;
    std::atomic<float>* mix_percent_;
    std::atomic<float>* bypass_on_;
    std::array<std::atomic<float>*, kNumControls> control_;   // 0..1 each
};

} // namespace mw::plugin
