// MambaWave Synth: MIDI in -> generator model -> audio out. A note-on starts (or re-primes) a
// voice of dsp::SynthEngine, seeded from the seed parameter and the note; note-off fades it out.
// Bypass ramps the level down (the engine smooths it); notes keep their state.
#pragma once

#include "plugin/processor_base.h"

namespace mw::plugin {

class SynthProcessor final : public ProcessorBase {
public:
    SynthProcessor();
    ~SynthProcessor() override;

    bool isBusesLayoutSupported(const BusesLayout& layouts) const override;
    void prepareToPlay(double sample_rate_hz, int max_block_samples) override;
    void processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi) override;
    using juce::AudioProcessor::processBlock;
    double getTailLengthSeconds() const override { return dsp::kReleaseSeconds; }
    bool acceptsMidi() const override { return true; }

    dsp::EngineStats take_stats() override { return engine_.stats(); }
    int active_voices() const override { return engine_.active_voices(); }
    dsp::SynthEngine& engine() { return engine_; }   // tests

private:
    static BusesProperties buses();
    void install_model(dsp::RealtimeModelPtr model) override { engine_.set_model(std::move(model)); }
    void collect_engine_garbage() override { engine_.collect_garbage(); }
    int engine_latency_samples() const override { return engine_.latency_samples(); }
    void apply_parameters() noexcept;
    void handle(const juce::uint8* bytes, int size, int offset) noexcept;

    dsp::SynthEngine engine_;
    std::atomic<float>* temperature_;
    std::atomic<float>* top_p_;
    std::atomic<float>* level_db_;
    std::atomic<float>* seed_;
    std::atomic<float>* bypass_on_;
    int max_block_samples_ = 0;
    int channels_ = 0;
    bool prepared_ = false;
};

} // namespace mw::plugin
