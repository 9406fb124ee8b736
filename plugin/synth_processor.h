// MambaWave Synth: MIDI in -> generator model -> audio out. A note-on starts (or re-primes) a
// voice of dsp::SynthEngine, seeded from the seed parameter and the note; note-off fades it out.
// Bypass ramps the level down (the engine smooths it); notes keep their state.
#pragma once

#include "plugin/engine_processor.h"

namespace mw::plugin {

class SynthProcessor final : public EngineProcessor<dsp::SynthEngine> {
public:
    SynthProcessor();
    ~SynthProcessor() override;

    bool isBusesLayoutSupported(const BusesLayout& layouts) const override;
    void processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi) override;
    using juce::AudioProcessor::processBlock;
    double getTailLengthSeconds() const override { return dsp::kReleaseSeconds; }
    bool acceptsMidi() const override { return true; }

    int active_voices() const override { return engine_.active_voices(); }
    // Active voices less those that ended in silence (dsp::kSilentEndSeconds).
    int sounding_voices() const override { return engine_.sounding_voices(); }

private:
    static BusesProperties buses();
    void apply_parameters() noexcept override;
    void handle(const juce::uint8* bytes, int size, int offset) noexcept;

    std::atomic<float>* temperature_;
    std::atomic<float>* top_p_;
    std::atomic<float>* guidance_;
    std::atomic<float>* level_db_;
    std::atomic<float>* seed_;
    std::atomic<float>* bypass_on_;
};

} // namespace mw::plugin
