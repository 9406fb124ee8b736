// The editor's look: a dark, flat palette with one accent colour per plugin (teal for the FX,
// violet for the Synth), arc knobs, pill toggles.
#pragma once

#include <juce_gui_basics/juce_gui_basics.h>

namespace mw::plugin {

namespace colours {
inline const juce::Colour background{0xff0f1114};
inline const juce::Colour panel{0xff171a1f};
inline const juce::Colour panel_edge{0xff262b33};
inline const juce::Colour well{0xff0b0d10};   // scope and meter backgrounds
inline const juce::Colour grid{0xff1f242b};
inline const juce::Colour text{0xffe4e7eb};
inline const juce::Colour dim_text{0xff8b939e};
inline const juce::Colour faint_text{0xff5b636e};
inline const juce::Colour ok{0xff57d68d};
inline const juce::Colour warning{0xffffb547};
inline const juce::Colour error{0xffff5f5f};
inline const juce::Colour fx_accent{0xff35d0c0};
inline const juce::Colour synth_accent{0xffa98bff};
} // namespace colours

class Look final : public juce::LookAndFeel_V4 {
public:
    explicit Look(juce::Colour accent);
    juce::Colour accent() const { return accent_; }

    void drawRotarySlider(juce::Graphics& g, int x, int y, int width, int height, float position,
                          float start_angle, float end_angle, juce::Slider& slider) override;
    void drawButtonBackground(juce::Graphics& g, juce::Button& button, const juce::Colour& background,
                              bool highlighted, bool down) override;
    void drawToggleButton(juce::Graphics& g, juce::ToggleButton& button, bool highlighted, bool down) override;
    void drawComboBox(juce::Graphics& g, int width, int height, bool down, int button_x, int button_y,
                      int button_w, int button_h, juce::ComboBox& box) override;
    juce::Font getComboBoxFont(juce::ComboBox& box) override;
    juce::Font getTextButtonFont(juce::TextButton& button, int button_height) override;
    juce::Label* createSliderTextBox(juce::Slider& slider) override;
    void drawResizableFrame(juce::Graphics&, int, int, const juce::BorderSize<int>&) override {}
    void drawCornerResizer(juce::Graphics& g, int w, int h, bool mouse_over, bool dragging) override;

    static juce::Font font(float height, bool bold = false);

private:
    juce::Colour accent_;
};

} // namespace mw::plugin
