// What MambaWave FX and MambaWave Synth do alike around their dsp/realtime.h engine: prepare it
// for the host's rate, block size and channels, hand it models, free old ones, report its
// latency and meters. Engine is dsp::EffectEngine or dsp::SynthEngine; the subclass supplies the
// parameters (apply_parameters) and the audio path (processBlock).
#pragma once

#include "plugin/processor_base.h"

#include <algorithm>
#include <exception>
#include <utility>

namespace mw::plugin {

template <class Engine>
class EngineProcessor : public ProcessorBase {
public:
    // Mono or stereo; a mono effect model runs one stream per channel.
    static constexpr int kMaxChannels = 2;

    // prepare_failed_note ends the error shown when the engine cannot run the model at the
    // host's rate, saying what the plugin does instead (e.g. "The synth stays silent.").
    EngineProcessor(Setup setup, juce::String prepare_failed_note)
        : ProcessorBase(std::move(setup)), prepare_failed_note_(std::move(prepare_failed_note)) {}

    void prepareToPlay(double sample_rate_hz, int max_block_samples) override {
        // The host has stopped the audio thread while it calls this.
        prepared_ = false;
        max_block_samples_ = std::max(1, max_block_samples);
        channels_ = std::clamp(getTotalNumOutputChannels(), 1, kMaxChannels);
        {
            const std::lock_guard<std::mutex> lock(engine_mutex_);
            apply_parameters();   // prepare() starts the smoothers at these values (no glide at start)
            try {
                engine_.prepare(sample_rate_hz, max_block_samples_, channels_);
            } catch (const std::exception& e) {
                // The engine stays prepared with no model.
                model_slot().report(ModelStatus::Level::error,
                                    juce::String::fromUTF8(e.what()) + " " + prepare_failed_note_);
            }
        }
        update_latency();
        prepared_ = true;
    }

    dsp::EngineStats take_stats() override { return engine_.stats(); }
    Engine& engine() { return engine_; }   // tests

protected:
    // The parameters' current values into the engine (audio thread, and prepareToPlay).
    virtual void apply_parameters() noexcept = 0;

    Engine engine_;
    int max_block_samples_ = 0;   // as prepared (audio stopped while these change)
    int channels_ = 0;
    bool prepared_ = false;

private:
    void install_model(dsp::RealtimeModelPtr model) override { engine_.set_model(std::move(model)); }
    void collect_engine_garbage() override { engine_.collect_garbage(); }
    int engine_latency_samples() const override { return engine_.latency_samples(); }

    const juce::String prepare_failed_note_;
};

} // namespace mw::plugin
