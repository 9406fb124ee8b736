// What MambaWave FX and MambaWave Synth share: the parameters (AudioProcessorValueTreeState), the
// model slot (loading off the audio thread, the session's model reference), the shipped presets
// as the host's program list, state save/restore, the scope FIFOs, and the 20 Hz timer that
// frees old models and keeps the reported latency exact. The audio path is in the subclasses
// (fx_processor.h, synth_processor.h), each a thin shell over one dsp/realtime.h engine, which
// engine_processor.h prepares and feeds models the same way for both.
#pragma once

#include "plugin/model_slot.h"
#include "plugin/params.h"
#include "plugin/presets.h"
#include "plugin/scope_fifo.h"

#include <juce_audio_processors/juce_audio_processors.h>

#include <atomic>
#include <mutex>
#include <vector>

namespace mw::plugin {

class ProcessorBase : public juce::AudioProcessor, private juce::Timer {
public:
    struct Setup {
        juce::String name;   // "MambaWave FX"
        IoKind io_kind = IoKind::continuous;
        BusesProperties buses;
        juce::AudioProcessorValueTreeState::ParameterLayout (*make_parameters)(const ControlMap&,
                                                                               const ModelConfig* initial) = nullptr;
    };
    explicit ProcessorBase(Setup setup);
    ~ProcessorBase() override;

    // --- For the editor (message thread) and tests ------------------------------------------
    juce::AudioProcessorValueTreeState& parameters() { return parameters_; }
    const ControlMap& controls() const { return controls_; }
    ModelSlot& model_slot() { return slot_; }
    const std::vector<Preset>& presets() const { return presets_; }
    IoKind io_kind() const { return io_kind_; }
    // The user picked a file (file chooser, drag and drop): load it off the audio thread; its
    // control defaults apply.
    void load_model_file(const juce::File& file);
    // Meters and CPU load since the last call (resets the peaks). One caller: the editor.
    virtual dsp::EngineStats take_stats() = 0;
    // Synth: voices playing now (a key held, or fading after its release); FX: -1.
    virtual int active_voices() const { return -1; }
    // Synth: of those, the voices the model is stepping (not ended in silence); FX: -1.
    virtual int sounding_voices() const { return -1; }
    ScopeFifo& scope_input() { return scope_in_; }
    ScopeFifo& scope_output() { return scope_out_; }
    // Frees models the audio thread let go of (the timer calls this; tests without a message
    // loop call it directly).
    void collect_garbage();

    // --- juce::AudioProcessor -----------------------------------------------------------------
    const juce::String getName() const override { return name_; }
    bool hasEditor() const override { return true; }
    juce::AudioProcessorEditor* createEditor() override;
    bool producesMidi() const override { return false; }
    bool isMidiEffect() const override { return false; }
    void releaseResources() override {}

    int getNumPrograms() override;
    int getCurrentProgram() override;
    void setCurrentProgram(int index) override;
    const juce::String getProgramName(int index) override;
    void changeProgramName(int, const juce::String&) override {}

    void getStateInformation(juce::MemoryBlock& dest) override;
    void setStateInformation(const void* data, int size_bytes) override;

    juce::AudioProcessorParameter* getBypassParameter() const override { return bypass_; }

protected:
    // Subclass constructors end with start(): installs the model the plugin starts with and
    // starts the timer. Subclass destructors begin with shut_down(): stops the loader thread and
    // the timer before the engine goes.
    void start();
    void shut_down();

    // Loader thread (or the constructor): hand a model of the right kind to the engine.
    virtual void install_model(dsp::RealtimeModelPtr model) = 0;
    virtual void collect_engine_garbage() = 0;
    virtual int engine_latency_samples() const = 0;

    // prepare()/set_model()/collect_garbage() of the engine are serialised by this mutex (host
    // thread, loader thread, timer). The audio thread never takes it.
    std::mutex engine_mutex_;

    std::atomic<float>* raw(const char* id) { return parameters_.getRawParameterValue(id); }
    // Reports the engine's latency to the host if it changed (any thread but the audio thread).
    void update_latency();

    const juce::String name_;
    const IoKind io_kind_;
    const std::vector<Preset> presets_;
    ControlMap controls_;   // the FX's model controls (the Synth has none)

private:
    void timerCallback() override;
    void install(dsp::RealtimeModelPtr model, const ModelSlot::Request& request);
    // The user picked a model: the FX's controls go to the model's defaults, the Synth's Guidance
    // to the weight the model declares (ModelConfig::guidance; none: it stays where it is).
    void reset_controls_to_model_defaults(float model_guidance);

    std::mutex latency_mutex_;              // update_latency() from one thread at a time
    juce::File initial_file_;               // the default preset
    dsp::RealtimeModelPtr initial_model_;   // loaded before the parameters exist (their defaults)
    juce::AudioProcessorValueTreeState parameters_;
    juce::AudioProcessorParameter* bypass_ = nullptr;
    ScopeFifo scope_in_, scope_out_;
    std::atomic<int> current_program_{0};
    ModelSlot slot_;   // last: its thread calls install() on the members above
};

} // namespace mw::plugin
