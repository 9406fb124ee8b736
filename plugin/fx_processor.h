// MambaWave FX: audio in -> effect model -> audio out (mono or stereo; a mono effect model runs
// one stream per channel). A thin shell over dsp::EffectEngine, which does the gains, mix,
// bypass, smoothing, resampling to the model's rate, crossfaded model swaps and the NaN guard.
#pragma once

#include "plugin/processor_base.h"

#include <array>

namespace mw::plugin {

class FxProcessor final : public ProcessorBase {
public:
    FxProcessor();
    ~FxProcessor() override;

    bool isBusesLayoutSupported(const BusesLayout& layouts) const override;
    void prepareToPlay(double sample_rate_hz, int max_block_samples) override;
    void processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi) override;
    using juce::AudioProcessor::processBlock;
    double getTailLengthSeconds() const override { return 0.0; }
    bool acceptsMidi() const override { return false; }

    dsp::EngineStats take_stats() override { return engine_.stats(); }
    dsp::EffectEngine& engine() { return engine_; }   // tests

private:
    static BusesProperties buses();
    void install_model(dsp::RealtimeModelPtr model) override { engine_.set_model(std::move(model)); }
    void collect_engine_garbage() override { engine_.collect_garbage(); }
    int engine_latency_samples() const override { return engine_.latency_samples(); }
    void apply_parameters() noexcept;

    dsp::EffectEngine engine_;
    std::atomic<float>* input_gain_db_;
    std::atomic<float>* output_gain_db_;
    std::atomic<float>* mix_percent_;
    std::atomic<float>* bypass_on_;
    std::array<std::atomic<float>*, kNumControls> control_;   // 0..1 each
    int max_block_samples_ = 0;   // as prepared (audio stopped while these change)
    int channels_ = 0;
    bool prepared_ = false;
};

} // namespace mw::plugin
