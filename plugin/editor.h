// The editor of both plugins: the model picker (presets, a file chooser, drag and drop of a
// .safetensors file), what the model is (kind, rate, size, training metric), the status line
// (loads, missing or changed files), input/output meters, a live scope, the model's CPU load and
// the parameters. Resizable. Everything it shows it reads from the processor on a 30 Hz timer;
// the audio thread only ever writes the scope FIFOs and the engine's stats.
#pragma once

#include "plugin/look.h"
#include "plugin/processor_base.h"

#include <juce_audio_processors/juce_audio_processors.h>

#include <array>
#include <memory>
#include <vector>

namespace mw::plugin {

// A peak meter: instant attack, 24 dB/s release, dB scale from -60 to +6.
class Meter final : public juce::Component {
public:
    void set_peak(float linear, float seconds_since_last);
    float level_db() const { return level_db_; }
    void paint(juce::Graphics& g) override;

private:
    float level_db_ = -100.0f;
    float hold_db_ = -100.0f;
    float hold_seconds_ = 0.0f;
};

// The scope: the latest input (dim) and output (accent) samples, triggered on a rising zero
// crossing of the output so that periodic signals stand still.
class Scope final : public juce::Component {
public:
    static constexpr int kHistory = 4096;   // samples kept
    static constexpr int kShown = 1536;     // samples drawn
    explicit Scope(bool show_input);
    void append(const float* in, int n_in, const float* out, int n_out);
    void paint(juce::Graphics& g) override;

private:
    void append_to(std::vector<float>& ring, const float* x, int n);
    bool show_input_;
    std::vector<float> in_, out_;   // [kHistory], oldest first
};

// A rotary knob with a caption above and the parameter's value text below.
class Knob final : public juce::Component {
public:
    Knob(juce::AudioProcessorValueTreeState& state, const juce::String& parameter_id, const juce::String& caption);
    void set_caption(const juce::String& caption);
    juce::Slider& slider() { return slider_; }
    void resized() override;
    void paint(juce::Graphics& g) override;

private:
    juce::String caption_;
    juce::Slider slider_;
    std::unique_ptr<juce::AudioProcessorValueTreeState::SliderAttachment> attachment_;
};

class Editor final : public juce::AudioProcessorEditor,
                     public juce::FileDragAndDropTarget,
                     private juce::Timer {
public:
    explicit Editor(ProcessorBase& processor);
    ~Editor() override;

    void paint(juce::Graphics& g) override;
    void paintOverChildren(juce::Graphics& g) override;
    void resized() override;

    bool isInterestedInFileDrag(const juce::StringArray& files) override;
    void fileDragEnter(const juce::StringArray&, int, int) override;
    void fileDragExit(const juce::StringArray&) override;
    void filesDropped(const juce::StringArray& files, int, int) override;

    // Pulls scope audio, meters, CPU load and the model status from the processor (the timer
    // calls it 30 times a second; the snapshot test calls it directly).
    void refresh();

    static constexpr int kDefaultWidth = 920, kDefaultHeight = 620;

private:
    void timerCallback() override { refresh(); }
    void update_model_view();
    void choose_file();
    void paint_header(juce::Graphics& g);
    void paint_status(juce::Graphics& g);
    void paint_info(juce::Graphics& g);
    void paint_voices(juce::Graphics& g);
    void paint_section(juce::Graphics& g, juce::Rectangle<int> area, const juce::String& title);

    ProcessorBase& processor_;
    const bool is_fx_;
    Look look_;

    juce::ComboBox preset_box_;
    juce::TextButton load_button_{"Load model..."};
    Scope scope_;
    Meter meter_in_, meter_out_;
    std::vector<std::unique_ptr<Knob>> main_knobs_;   // FX: input, output, mix; Synth: temp, top-p, level, seed
    std::array<std::unique_ptr<Knob>, kNumControls> control_knobs_;   // FX only
    juce::ToggleButton bypass_button_{"Bypass"};
    std::unique_ptr<juce::AudioProcessorValueTreeState::ButtonAttachment> bypass_attachment_;
    std::unique_ptr<juce::FileChooser> chooser_;

    // Layout (resized()).
    juce::Rectangle<int> header_, status_area_, info_, scope_area_, knobs_area_, main_section_, control_section_;

    // What the timer last saw.
    int seen_status_version_ = -1;
    ModelStatus status_;
    dsp::EngineStats stats_;
    double cpu_load_ = 0.0;
    int voices_ = 0;
    int shown_controls_ = 0;
    bool drag_over_ = false;
    juce::int64 last_refresh_ms_ = 0;
    std::vector<float> pull_in_, pull_out_;   // scratch for the FIFOs
};

} // namespace mw::plugin
