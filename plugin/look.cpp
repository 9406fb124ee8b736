#include "plugin/look.h"

namespace mw::plugin {

Look::Look(juce::Colour accent) : accent_(accent) {
    setDefaultSansSerifTypefaceName("DejaVu Sans");   // Debian's default; JUCE falls back if absent
    setColour(juce::ResizableWindow::backgroundColourId, colours::background);
    setColour(juce::Label::textColourId, colours::text);
    setColour(juce::Slider::textBoxTextColourId, colours::text);
    setColour(juce::Slider::textBoxOutlineColourId, juce::Colours::transparentBlack);
    setColour(juce::Slider::textBoxBackgroundColourId, juce::Colours::transparentBlack);
    setColour(juce::Slider::textBoxHighlightColourId, accent.withAlpha(0.35f));
    setColour(juce::Slider::rotarySliderFillColourId, accent);
    setColour(juce::Slider::rotarySliderOutlineColourId, colours::grid);
    setColour(juce::TextButton::buttonColourId, colours::panel);
    setColour(juce::TextButton::buttonOnColourId, accent);
    setColour(juce::TextButton::textColourOffId, colours::text);
    setColour(juce::TextButton::textColourOnId, colours::background);
    setColour(juce::ComboBox::backgroundColourId, colours::well);
    setColour(juce::ComboBox::outlineColourId, colours::panel_edge);
    setColour(juce::ComboBox::textColourId, colours::text);
    setColour(juce::ComboBox::arrowColourId, colours::dim_text);
    setColour(juce::PopupMenu::backgroundColourId, colours::panel);
    setColour(juce::PopupMenu::textColourId, colours::text);
    setColour(juce::PopupMenu::highlightedBackgroundColourId, accent.withAlpha(0.25f));
    setColour(juce::PopupMenu::highlightedTextColourId, colours::text);
    setColour(juce::TextEditor::backgroundColourId, colours::well);
    setColour(juce::TextEditor::textColourId, colours::text);
    setColour(juce::TextEditor::highlightColourId, accent.withAlpha(0.35f));
    setColour(juce::CaretComponent::caretColourId, accent);
}

juce::Font Look::font(float height, bool bold) {
    return juce::Font(juce::Font::getDefaultSansSerifFontName(), height, bold ? juce::Font::bold : juce::Font::plain);
}

void Look::drawRotarySlider(juce::Graphics& g, int x, int y, int width, int height, float position,
                            float start_angle, float end_angle, juce::Slider& slider) {
    const auto bounds = juce::Rectangle<int>(x, y, width, height).toFloat().reduced(4.0f);
    const float radius = std::min(bounds.getWidth(), bounds.getHeight()) * 0.5f;
    const auto centre = bounds.getCentre();
    const float track = std::max(3.0f, radius * 0.12f);
    const float arc_radius = radius - track * 0.5f;
    const float angle = start_angle + position * (end_angle - start_angle);
    const bool enabled = slider.isEnabled();
    const juce::Colour fill = enabled ? accent_ : colours::faint_text;

    juce::Path background;
    background.addCentredArc(centre.x, centre.y, arc_radius, arc_radius, 0.0f, start_angle, end_angle, true);
    g.setColour(colours::grid);
    g.strokePath(background, juce::PathStrokeType(track, juce::PathStrokeType::curved, juce::PathStrokeType::rounded));

    // Bipolar ranges (gains in dB) fill from the centre, the others from the start.
    const double lo = slider.getMinimum(), hi = slider.getMaximum();
    const bool bipolar = lo < 0.0 && hi > 0.0 && std::abs(lo + hi) < 1e-6 * hi;   // e.g. -24..+24 dB
    const float from = bipolar ? start_angle + static_cast<float>(slider.valueToProportionOfLength(0.0)) *
                                                   (end_angle - start_angle)
                               : start_angle;
    if (std::abs(angle - from) > 0.001f) {
        juce::Path value;
        value.addCentredArc(centre.x, centre.y, arc_radius, arc_radius, 0.0f, std::min(from, angle),
                            std::max(from, angle), true);
        g.setColour(fill);
        g.strokePath(value, juce::PathStrokeType(track, juce::PathStrokeType::curved, juce::PathStrokeType::rounded));
    }

    // The knob body and its pointer.
    const float body = arc_radius - track * 1.4f;
    g.setGradientFill(juce::ColourGradient(juce::Colour(0xff2a3038), centre.x, centre.y - body,
                                           juce::Colour(0xff1a1e24), centre.x, centre.y + body, false));
    g.fillEllipse(centre.x - body, centre.y - body, body * 2.0f, body * 2.0f);
    g.setColour(colours::panel_edge);
    g.drawEllipse(centre.x - body, centre.y - body, body * 2.0f, body * 2.0f, 1.0f);
    const juce::Point<float> tip = centre.getPointOnCircumference(body * 0.78f, angle);
    const juce::Point<float> base = centre.getPointOnCircumference(body * 0.30f, angle);
    g.setColour(enabled ? colours::text : colours::faint_text);
    g.drawLine({base, tip}, std::max(2.0f, radius * 0.06f));
}

void Look::drawButtonBackground(juce::Graphics& g, juce::Button& button, const juce::Colour& background,
                                bool highlighted, bool down) {
    const auto r = button.getLocalBounds().toFloat().reduced(0.5f);
    juce::Colour c = button.getToggleState() ? accent_ : background;
    if (down) c = c.brighter(0.15f);
    else if (highlighted) c = c.brighter(0.07f);
    g.setColour(c);
    g.fillRoundedRectangle(r, 5.0f);
    g.setColour(button.getToggleState() ? accent_.brighter(0.2f) : colours::panel_edge);
    g.drawRoundedRectangle(r, 5.0f, 1.0f);
}

void Look::drawToggleButton(juce::Graphics& g, juce::ToggleButton& button, bool highlighted, bool) {
    // A pill switch with the button's text to its right.
    const auto bounds = button.getLocalBounds().toFloat();
    const float h = std::min(18.0f, bounds.getHeight());
    const juce::Rectangle<float> pill(bounds.getX() + 2.0f, bounds.getCentreY() - h * 0.5f, h * 1.9f, h);
    const bool on = button.getToggleState();
    g.setColour(on ? colours::warning : (highlighted ? colours::grid.brighter(0.1f) : colours::grid));
    g.fillRoundedRectangle(pill, h * 0.5f);
    const float knob = h - 4.0f;
    const float knob_x = on ? pill.getRight() - knob - 2.0f : pill.getX() + 2.0f;
    g.setColour(on ? colours::background : colours::dim_text);
    g.fillEllipse(knob_x, pill.getY() + 2.0f, knob, knob);
    g.setColour(on ? colours::warning : colours::dim_text);
    g.setFont(font(13.0f, true));
    g.drawText(button.getButtonText(), bounds.withLeft(pill.getRight() + 8.0f), juce::Justification::centredLeft);
}

void Look::drawComboBox(juce::Graphics& g, int width, int height, bool, int, int, int, int, juce::ComboBox& box) {
    const auto r = juce::Rectangle<float>(0.0f, 0.0f, static_cast<float>(width), static_cast<float>(height)).reduced(0.5f);
    g.setColour(box.findColour(juce::ComboBox::backgroundColourId));
    g.fillRoundedRectangle(r, 5.0f);
    g.setColour(box.hasKeyboardFocus(true) ? accent_ : box.findColour(juce::ComboBox::outlineColourId));
    g.drawRoundedRectangle(r, 5.0f, 1.0f);
    // A chevron at the right.
    const float cx = static_cast<float>(width) - 16.0f, cy = static_cast<float>(height) * 0.5f;
    juce::Path chevron;
    chevron.startNewSubPath(cx - 4.5f, cy - 2.0f);
    chevron.lineTo(cx, cy + 2.5f);
    chevron.lineTo(cx + 4.5f, cy - 2.0f);
    g.setColour(colours::dim_text);
    g.strokePath(chevron, juce::PathStrokeType(1.6f, juce::PathStrokeType::curved, juce::PathStrokeType::rounded));
}

juce::Font Look::getComboBoxFont(juce::ComboBox&) { return font(14.0f); }

juce::Font Look::getTextButtonFont(juce::TextButton&, int button_height) {
    return font(std::min(14.0f, static_cast<float>(button_height) * 0.55f), true);
}

juce::Label* Look::createSliderTextBox(juce::Slider& slider) {
    juce::Label* label = LookAndFeel_V4::createSliderTextBox(slider);
    label->setFont(font(13.0f));
    label->setJustificationType(juce::Justification::centred);
    label->setColour(juce::Label::textColourId, colours::text);
    label->setColour(juce::Label::outlineColourId, juce::Colours::transparentBlack);
    label->setColour(juce::Label::backgroundColourId, juce::Colours::transparentBlack);
    label->setColour(juce::Label::outlineWhenEditingColourId, accent_);
    return label;
}

void Look::drawCornerResizer(juce::Graphics& g, int w, int h, bool mouse_over, bool dragging) {
    g.setColour((mouse_over || dragging) ? accent_ : colours::faint_text);
    for (float i = 0.3f; i < 1.0f; i += 0.3f)
        g.drawLine(static_cast<float>(w) * i, static_cast<float>(h), static_cast<float>(w),
                   static_cast<float>(h) * i, 1.2f);
}

} // namespace mw::plugin
