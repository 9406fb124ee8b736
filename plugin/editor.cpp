#include "plugin/editor.h"

#include <algorithm>
#include <cmath>

namespace mw::plugin {

namespace {

constexpr int kRefreshHz = 30;
constexpr int kMargin = 14;
constexpr int kHeaderHeight = 58;
constexpr int kStatusHeight = 30;
constexpr int kKnobsHeight = 178;
constexpr int kInfoWidth = 300;
constexpr float kMeterFloorDb = -60.0f, kMeterTopDb = 6.0f;

float to_db(float linear) { return linear > 1e-6f ? 20.0f * std::log10(linear) : -120.0f; }

juce::String rate_text(double hz) {
    if (hz <= 0.0) return "-";
    const double khz = hz / 1000.0;
    return juce::String(khz, std::abs(khz - std::round(khz)) < 1e-9 ? 0 : 1) + " kHz";
}

juce::String count_text(int64_t n) {
    if (n >= 1000000) return juce::String(static_cast<double>(n) / 1e6, 2) + "M";
    if (n >= 1000) return juce::String(static_cast<double>(n) / 1e3, 1) + "k";
    return juce::String(n);
}

juce::String bytes_text(int64_t n) {
    if (n >= 1 << 20) return juce::String(static_cast<double>(n) / (1 << 20), 1) + " MB";
    return juce::String((n + 1023) / 1024) + " KB";
}

juce::Colour level_colour(ModelStatus::Level level) {
    switch (level) {
        case ModelStatus::Level::ok: return colours::ok;
        case ModelStatus::Level::warning: return colours::warning;
        case ModelStatus::Level::error: return colours::error;
        case ModelStatus::Level::loading: return colours::dim_text;
        case ModelStatus::Level::none: break;
    }
    return colours::faint_text;
}

bool is_model_path(const juce::String& path) {
    const juce::File f(path);
    return (f.existsAsFile() && f.hasFileExtension("safetensors")) ||
           (f.isDirectory() && f.getChildFile("config.json").existsAsFile());
}

} // namespace

// --- Meter ------------------------------------------------------------------------------------

void Meter::set_peak(float linear, float seconds) {
    const float db = to_db(linear);
    level_db_ = std::max(db, level_db_ - 24.0f * seconds);
    hold_seconds_ += seconds;
    if (db >= hold_db_ || hold_seconds_ > 1.5f) {
        hold_db_ = std::max(db, level_db_);
        hold_seconds_ = 0.0f;
    }
    repaint();
}

void Meter::paint(juce::Graphics& g) {
    const auto r = getLocalBounds().toFloat();
    g.setColour(colours::well);
    g.fillRoundedRectangle(r, 3.0f);
    auto y_of = [&](float db) {
        const float t = (std::clamp(db, kMeterFloorDb, kMeterTopDb) - kMeterFloorDb) / (kMeterTopDb - kMeterFloorDb);
        return r.getBottom() - t * r.getHeight();
    };
    if (level_db_ > kMeterFloorDb) {
        const float top = y_of(level_db_);
        // Green up to -12 dB, amber towards 0 dB, red above.
        auto at = [](float db) { return static_cast<double>((db - kMeterFloorDb) / (kMeterTopDb - kMeterFloorDb)); };
        juce::ColourGradient fill(colours::ok, 0.0f, r.getBottom(), colours::error, 0.0f, r.getY(), false);
        fill.addColour(at(-12.0f), colours::ok);
        fill.addColour(at(-3.0f), colours::warning);
        fill.addColour(at(0.0f), colours::error);
        g.setGradientFill(fill);
        g.fillRoundedRectangle(r.withTop(top).reduced(2.0f, 0.0f).withTrimmedBottom(2.0f), 2.0f);
    }
    if (hold_db_ > kMeterFloorDb) {
        g.setColour(hold_db_ > 0.0f ? colours::error : colours::text.withAlpha(0.8f));
        g.fillRect(r.getX() + 2.0f, y_of(hold_db_) - 1.0f, r.getWidth() - 4.0f, 2.0f);
    }
    g.setColour(colours::background.withAlpha(0.6f));   // the 0 dB and -12 dB ticks
    for (float db : {0.0f, -12.0f, -24.0f, -48.0f}) g.fillRect(r.getX(), y_of(db), r.getWidth(), 1.0f);
}

// --- Scope ------------------------------------------------------------------------------------

Scope::Scope(bool show_input) : show_input_(show_input), in_(kHistory, 0.0f), out_(kHistory, 0.0f) {}

void Scope::append_to(std::vector<float>& ring, const float* x, int n) {
    if (n <= 0) return;
    n = std::min(n, kHistory);
    std::move(ring.begin() + n, ring.end(), ring.begin());
    for (int i = 0; i < n; ++i) {
        const float v = x[i];
        ring[size_t(kHistory - n + i)] = std::isfinite(v) ? v : 0.0f;
    }
}

void Scope::append(const float* in, int n_in, const float* out, int n_out) {
    append_to(in_, in, n_in);
    append_to(out_, out, n_out);
    repaint();
}

void Scope::paint(juce::Graphics& g) {
    const auto r = getLocalBounds().toFloat();
    g.setColour(colours::well);
    g.fillRoundedRectangle(r, 6.0f);
    const auto plot = r.reduced(12.0f, 26.0f);
    g.setColour(colours::grid);
    for (int i = 1; i < 8; ++i) {
        const float x = plot.getX() + plot.getWidth() * static_cast<float>(i) / 8.0f;
        g.drawVerticalLine(static_cast<int>(x), plot.getY(), plot.getBottom());
    }
    for (float v : {-0.5f, 0.5f}) g.drawHorizontalLine(static_cast<int>(plot.getCentreY() - v * plot.getHeight() * 0.5f), plot.getX(), plot.getRight());
    g.setColour(colours::grid.brighter(0.25f));
    g.drawHorizontalLine(static_cast<int>(plot.getCentreY()), plot.getX(), plot.getRight());

    // Trigger: the first rising zero crossing of the output in the older half of the window.
    int start = kHistory - kShown;
    for (int i = kHistory - kShown; i > kHistory - 2 * kShown + 1 && i > 0; --i) {
        if (out_[size_t(i - 1)] < 0.0f && out_[size_t(i)] >= 0.0f) {
            start = i;
            break;
        }
    }
    // Auto-scale so that quiet signals are readable (the factor is printed).
    float peak = 0.0f;
    for (int i = 0; i < kShown; ++i) {
        peak = std::max(peak, std::abs(out_[size_t(start + i)]));
        if (show_input_) peak = std::max(peak, std::abs(in_[size_t(start + i)]));
    }
    const float gain = std::clamp(0.9f / std::max(peak, 1e-4f), 1.0f, 64.0f);
    auto trace = [&](const std::vector<float>& x) {
        juce::Path p;
        for (int i = 0; i < kShown; ++i) {
            const float px = plot.getX() + plot.getWidth() * static_cast<float>(i) / static_cast<float>(kShown - 1);
            const float v = std::clamp(x[size_t(start + i)] * gain, -1.0f, 1.0f);
            const float py = plot.getCentreY() - v * plot.getHeight() * 0.5f;
            if (i == 0) p.startNewSubPath(px, py);
            else p.lineTo(px, py);
        }
        return p;
    };
    auto* look = dynamic_cast<Look*>(&getLookAndFeel());
    const juce::Colour accent = look ? look->accent() : colours::fx_accent;
    if (show_input_) {
        g.setColour(colours::dim_text.withAlpha(0.45f));
        g.strokePath(trace(in_), juce::PathStrokeType(1.2f));
    }
    const juce::Path out_path = trace(out_);
    g.setColour(accent.withAlpha(0.18f));
    g.strokePath(out_path, juce::PathStrokeType(4.0f, juce::PathStrokeType::curved, juce::PathStrokeType::rounded));
    g.setColour(accent);
    g.strokePath(out_path, juce::PathStrokeType(1.6f, juce::PathStrokeType::curved, juce::PathStrokeType::rounded));

    g.setFont(Look::font(11.5f, true));
    g.setColour(colours::dim_text);
    g.drawText("SCOPE", r.reduced(12.0f, 6.0f).removeFromTop(16.0f), juce::Justification::centredLeft);
    juce::String legend = juce::String::fromUTF8("\xc3\x97") + juce::String(gain, gain < 10.0f ? 1 : 0);
    g.setFont(Look::font(11.5f));
    g.drawText(legend, r.reduced(12.0f, 6.0f).removeFromTop(16.0f), juce::Justification::centredRight);
    auto legend_area = r.reduced(12.0f, 6.0f).removeFromBottom(16.0f);
    if (show_input_) {
        g.setColour(colours::dim_text.withAlpha(0.7f));
        g.drawText("input", legend_area.removeFromLeft(50.0f), juce::Justification::centredLeft);
    }
    g.setColour(accent);
    g.drawText("output", legend_area.removeFromLeft(60.0f), juce::Justification::centredLeft);
}

// --- Knob -------------------------------------------------------------------------------------

Knob::Knob(juce::AudioProcessorValueTreeState& state, const juce::String& parameter_id, const juce::String& caption)
    : caption_(caption) {
    slider_.setSliderStyle(juce::Slider::RotaryHorizontalVerticalDrag);
    slider_.setTextBoxStyle(juce::Slider::TextBoxBelow, false, 90, 20);
    slider_.setRotaryParameters(juce::MathConstants<float>::pi * 1.25f, juce::MathConstants<float>::pi * 2.75f, true);
    // The value box: a dark well, no outline (set here: the knob is made before it has a parent
    // and so before the editor's look applies).
    slider_.setColour(juce::Slider::textBoxOutlineColourId, juce::Colours::transparentBlack);
    slider_.setColour(juce::Slider::textBoxBackgroundColourId, colours::well);
    slider_.setColour(juce::Slider::textBoxTextColourId, colours::text);
    addAndMakeVisible(slider_);
    attachment_ = std::make_unique<juce::AudioProcessorValueTreeState::SliderAttachment>(state, parameter_id, slider_);
    if (auto* p = state.getParameter(parameter_id)) {
        slider_.setDoubleClickReturnValue(true, p->convertFrom0to1(p->getDefaultValue()));
        slider_.setTooltip(p->getName(64));
    }
}

void Knob::set_caption(const juce::String& caption) {
    caption_ = caption;
    slider_.updateText();
    repaint();
}

void Knob::resized() { slider_.setBounds(getLocalBounds().withTrimmedTop(20)); }

void Knob::paint(juce::Graphics& g) {
    g.setColour(colours::dim_text);
    g.setFont(Look::font(12.5f, true));
    g.drawText(caption_.toUpperCase(), getLocalBounds().removeFromTop(18), juce::Justification::centred);
}

// --- Editor -----------------------------------------------------------------------------------

Editor::Editor(ProcessorBase& processor)
    : juce::AudioProcessorEditor(processor),
      processor_(processor),
      is_fx_(processor.io_kind() == IoKind::continuous),
      look_(is_fx_ ? colours::fx_accent : colours::synth_accent),
      scope_(is_fx_) {
    setLookAndFeel(&look_);
    juce::AudioProcessorValueTreeState& state = processor_.parameters();

    for (size_t i = 0; i < processor_.presets().size(); ++i)
        preset_box_.addItem(processor_.presets()[i].name, static_cast<int>(i) + 1);
    preset_box_.setTextWhenNothingSelected("choose a model");
    preset_box_.setTextWhenNoChoicesAvailable("no presets found");
    preset_box_.onChange = [this] {
        const int index = preset_box_.getSelectedItemIndex();
        if (index >= 0 && index != processor_.getCurrentProgram()) {
            processor_.setCurrentProgram(index);
            processor_.updateHostDisplay(juce::AudioProcessor::ChangeDetails().withProgramChanged(true));
        }
    };
    addAndMakeVisible(preset_box_);
    load_button_.onClick = [this] { choose_file(); };
    addAndMakeVisible(load_button_);

    addAndMakeVisible(scope_);
    addAndMakeVisible(meter_in_);
    addAndMakeVisible(meter_out_);
    meter_in_.setVisible(is_fx_);

    if (is_fx_) {
        main_knobs_.push_back(std::make_unique<Knob>(state, pid::input_gain, "Input"));
        main_knobs_.push_back(std::make_unique<Knob>(state, pid::output_gain, "Output"));
        main_knobs_.push_back(std::make_unique<Knob>(state, pid::mix, "Mix"));
        for (int i = 0; i < kNumControls; ++i) {
            control_knobs_[size_t(i)] = std::make_unique<Knob>(state, pid::control(i), processor_.controls().name(i));
            addChildComponent(*control_knobs_[size_t(i)]);
        }
    } else {
        main_knobs_.push_back(std::make_unique<Knob>(state, pid::temperature, "Temperature"));
        main_knobs_.push_back(std::make_unique<Knob>(state, pid::top_p, "Top-p"));
        main_knobs_.push_back(std::make_unique<Knob>(state, pid::guidance, "Guidance"));
        main_knobs_.push_back(std::make_unique<Knob>(state, pid::seed, "Seed"));
        main_knobs_.push_back(std::make_unique<Knob>(state, pid::level, "Level"));
    }
    for (auto& k : main_knobs_) addAndMakeVisible(*k);
    addAndMakeVisible(bypass_button_);
    bypass_attachment_ = std::make_unique<juce::AudioProcessorValueTreeState::ButtonAttachment>(state, pid::bypass,
                                                                                                 bypass_button_);

    pull_in_.resize(ScopeFifo::kCapacity);
    pull_out_.resize(ScopeFifo::kCapacity);
    processor_.scope_input().set_enabled(is_fx_);
    processor_.scope_output().set_enabled(true);

    setResizable(true, true);
    setResizeLimits(760, 500, 1800, 1100);
    setSize(kDefaultWidth, kDefaultHeight);
    update_model_view();
    startTimerHz(kRefreshHz);
}

Editor::~Editor() {
    stopTimer();
    processor_.scope_input().set_enabled(false);
    processor_.scope_output().set_enabled(false);
    setLookAndFeel(nullptr);
}

void Editor::refresh() {
    const juce::int64 now = juce::Time::currentTimeMillis();
    const float seconds = last_refresh_ms_ == 0 ? 1.0f / kRefreshHz
                                                : std::clamp(static_cast<float>(now - last_refresh_ms_) / 1000.0f, 0.0f, 0.5f);
    last_refresh_ms_ = now;

    const int n_in = processor_.scope_input().pop(pull_in_.data(), static_cast<int>(pull_in_.size()));
    const int n_out = processor_.scope_output().pop(pull_out_.data(), static_cast<int>(pull_out_.size()));
    if (n_in > 0 || n_out > 0) scope_.append(pull_in_.data(), n_in, pull_out_.data(), n_out);

    stats_ = processor_.take_stats();
    cpu_load_ = cpu_load_ * 0.8 + stats_.load * 0.2;
    meter_in_.set_peak(stats_.peak_in, seconds);
    meter_out_.set_peak(stats_.peak_out, seconds);
    voices_ = processor_.sounding_voices();

    if (processor_.model_slot().status_version() != seen_status_version_) update_model_view();
    repaint(info_);
    repaint(meter_in_.getBounds().getUnion(meter_out_.getBounds()).expanded(4, 24));
}

void Editor::update_model_view() {
    seen_status_version_ = processor_.model_slot().status_version();
    status_ = processor_.model_slot().status();

    const int program = processor_.getCurrentProgram();
    const bool running_preset = status_.info && program >= 0 && program < static_cast<int>(processor_.presets().size()) &&
                                processor_.presets()[size_t(program)].file.getFullPathName() == status_.info->path;
    if (running_preset) preset_box_.setSelectedItemIndex(program, juce::dontSendNotification);
    else preset_box_.setText(status_.info ? status_.info->name : juce::String(), juce::dontSendNotification);

    if (is_fx_) {
        const int n = processor_.controls().count();
        for (int i = 0; i < kNumControls; ++i) {
            Knob& k = *control_knobs_[size_t(i)];
            k.setVisible(i < n);
            k.set_caption(processor_.controls().name(i));
            k.slider().setDoubleClickReturnValue(true, processor_.controls().default_normalised(i));
        }
        if (n != shown_controls_) {
            shown_controls_ = n;
            resized();
        }
    }
    repaint();
}

void Editor::choose_file() {
    juce::File start = status_.info ? juce::File(status_.info->path).getParentDirectory() : juce::File();
    if (!start.isDirectory()) {
        const auto dirs = preset_directories();
        start = dirs.empty() ? juce::File::getSpecialLocation(juce::File::userHomeDirectory) : dirs.front();
    }
    chooser_ = std::make_unique<juce::FileChooser>("Load a MambaWave model", start, "*.safetensors");
    chooser_->launchAsync(juce::FileBrowserComponent::openMode | juce::FileBrowserComponent::canSelectFiles,
                          [this](const juce::FileChooser& chooser) {
                              const juce::File f = chooser.getResult();
                              if (f != juce::File()) processor_.load_model_file(f);
                          });
}

bool Editor::isInterestedInFileDrag(const juce::StringArray& files) {
    return std::any_of(files.begin(), files.end(), [](const juce::String& f) { return is_model_path(f); });
}

void Editor::fileDragEnter(const juce::StringArray&, int, int) {
    drag_over_ = true;
    repaint();
}

void Editor::fileDragExit(const juce::StringArray&) {
    drag_over_ = false;
    repaint();
}

void Editor::filesDropped(const juce::StringArray& files, int, int) {
    drag_over_ = false;
    for (const juce::String& f : files) {
        if (is_model_path(f)) {
            processor_.load_model_file(juce::File(f));
            break;
        }
    }
    repaint();
}

// --- Layout and painting ----------------------------------------------------------------------

void Editor::resized() {
    auto r = getLocalBounds();
    header_ = r.removeFromTop(kHeaderHeight);
    status_area_ = r.removeFromTop(kStatusHeight).reduced(kMargin, 0);
    r.reduce(kMargin, kMargin);
    knobs_area_ = r.removeFromBottom(kKnobsHeight);
    r.removeFromBottom(kMargin);
    info_ = r.removeFromLeft(kInfoWidth);
    r.removeFromLeft(kMargin);
    scope_area_ = r;

    // Header: title left; bypass, presets and the load button right.
    auto h = header_.reduced(kMargin, 13);
    load_button_.setBounds(h.removeFromRight(128));
    h.removeFromRight(8);
    preset_box_.setBounds(h.removeFromRight(std::min(260, h.getWidth() / 3)));
    h.removeFromRight(18);
    bypass_button_.setBounds(h.removeFromRight(100));

    // Scope with the meters at its right.
    auto s = scope_area_;
    auto meters = s.removeFromRight(is_fx_ ? 66 : 40).reduced(0, 0);
    s.removeFromRight(10);
    scope_.setBounds(s);
    meters = meters.withTrimmedTop(20).withTrimmedBottom(20);
    if (is_fx_) {
        meter_in_.setBounds(meters.removeFromLeft(24).reduced(2, 0));
        meters.removeFromLeft(10);
    }
    meter_out_.setBounds(meters.removeFromLeft(24).reduced(2, 0));

    // Knobs: the main section, then (FX) the model's controls.
    const int knob_w = 96;
    auto k = knobs_area_.reduced(12, 0).withTrimmedTop(30).withTrimmedBottom(10);
    const int main_w = static_cast<int>(main_knobs_.size()) * knob_w;
    main_section_ = knobs_area_.withWidth(main_w + 24);
    auto main = k.removeFromLeft(main_w);
    for (auto& knob : main_knobs_) knob->setBounds(main.removeFromLeft(knob_w));
    control_section_ = knobs_area_.withLeft(main_section_.getRight() + kMargin);
    if (is_fx_) {
        k.removeFromLeft(24 + kMargin);
        const int n = std::max(1, shown_controls_);
        const int w = std::min(knob_w, k.getWidth() / n);
        for (int i = 0; i < kNumControls; ++i)
            if (i < shown_controls_) control_knobs_[size_t(i)]->setBounds(k.removeFromLeft(w));
    }
}

void Editor::paint_section(juce::Graphics& g, juce::Rectangle<int> area, const juce::String& title) {
    g.setColour(colours::panel);
    g.fillRoundedRectangle(area.toFloat(), 8.0f);
    g.setColour(colours::panel_edge);
    g.drawRoundedRectangle(area.toFloat().reduced(0.5f), 8.0f, 1.0f);
    g.setColour(colours::dim_text);
    g.setFont(Look::font(11.5f, true));
    g.drawText(title, area.reduced(14, 8).removeFromTop(16), juce::Justification::centredLeft);
}

void Editor::paint_header(juce::Graphics& g) {
    g.setColour(colours::panel);
    g.fillRect(header_);
    g.setColour(colours::panel_edge);
    g.fillRect(header_.withTop(header_.getBottom() - 1));
    auto r = header_.reduced(kMargin, 0);
    // A small mark: three bars like a waveform.
    auto mark = r.removeFromLeft(26).withSizeKeepingCentre(26, 26).toFloat();
    g.setColour(look_.accent());
    const float heights[] = {0.45f, 1.0f, 0.7f};
    for (int i = 0; i < 3; ++i) {
        const float bh = mark.getHeight() * heights[i];
        g.fillRoundedRectangle(mark.getX() + static_cast<float>(i) * 9.0f, mark.getCentreY() - bh * 0.5f, 6.0f, bh, 3.0f);
    }
    r.removeFromLeft(12);
    g.setFont(Look::font(21.0f, true));
    g.setColour(colours::text);
    const juce::String brand = "MambaWave";
    const int brand_w = g.getCurrentFont().getStringWidth(brand);
    g.drawText(brand, r.removeFromLeft(brand_w + 6), juce::Justification::centredLeft);
    g.setColour(look_.accent());
    const juce::String product = is_fx_ ? "FX" : "Synth";
    g.drawText(product, r.removeFromLeft(g.getCurrentFont().getStringWidth(product) + 12), juce::Justification::centredLeft);
    g.setFont(Look::font(12.0f));
    g.setColour(colours::faint_text);
#ifdef MW_VERSION
    g.drawText("v" MW_VERSION, r.removeFromLeft(60), juce::Justification::centredLeft);
#endif
}

void Editor::paint_status(juce::Graphics& g) {
    auto r = status_area_;
    const juce::Colour c = level_colour(status_.level);
    g.setColour(c);
    g.fillEllipse(r.removeFromLeft(10).withSizeKeepingCentre(8, 8).toFloat());
    r.removeFromLeft(8);
    g.setFont(Look::font(13.0f));
    g.setColour(status_.level == ModelStatus::Level::ok ? colours::dim_text : c);
    const juce::String text = status_.message.isNotEmpty() ? status_.message : "No model loaded: choose a preset, use Load model... or drop a .safetensors file here.";
    g.drawFittedText(text, r, juce::Justification::centredLeft, 1, 0.9f);
}

void Editor::paint_info(juce::Graphics& g) {
    paint_section(g, info_, "MODEL");
    auto r = info_.reduced(14, 8);
    r.removeFromTop(22);
    const std::shared_ptr<const ModelInfo> info = status_.info;
    if (!info) {
        g.setColour(colours::faint_text);
        g.setFont(Look::font(13.0f));
        g.drawFittedText("No model running.\nDrop a .safetensors file here.", r.removeFromTop(40), juce::Justification::topLeft, 2);
        return;
    }
    const ModelConfig& c = info->config;
    g.setColour(colours::text);
    g.setFont(Look::font(17.0f, true));
    g.drawFittedText(info->name, r.removeFromTop(24), juce::Justification::centredLeft, 1, 0.8f);
    if (c.untrained) {
        r.removeFromTop(4);
        auto badge = r.removeFromTop(20);
        g.setFont(Look::font(11.0f, true));
        const juce::String b = "UNTRAINED PLACEHOLDER";
        badge = badge.withWidth(g.getCurrentFont().getStringWidth(b) + 16);
        g.setColour(colours::warning.withAlpha(0.16f));
        g.fillRoundedRectangle(badge.toFloat(), 10.0f);
        g.setColour(colours::warning);
        g.drawText(b, badge, juce::Justification::centred);
    }
    r.removeFromTop(10);

    const double host_rate = processor_.getSampleRate();
    juce::String rate = rate_text(c.sample_rate_hz);
    if (host_rate > 0.0 && std::abs(host_rate - c.sample_rate_hz) > 0.5)
        rate += " (host " + rate_text(host_rate) + ", resampled)";
    juce::String kind = c.kind == IoKind::continuous
                            ? "effect" + juce::String(c.n_cond() > 0 ? ", " + juce::String(c.n_cond()) + " controls" : "") +
                                  (c.skip ? ", residual" : "")
                            : "generator, mu-law 8-bit";
    const juce::String size = juce::String(c.d_model) + juce::String::fromUTF8(" \xc3\x97 ") + juce::String(c.n_layers) +
                              " layers, " + count_text(info->parameters) + " params, " + bytes_text(info->file_bytes);
    const int latency = processor_.getLatencySamples();
    juce::String cpu = juce::String(cpu_load_ * 100.0, 1) + " % of a core";

    struct Row {
        const char* key;
        juce::String value;
    };
    std::vector<Row> rows = {{"Kind", kind}, {"Rate", rate}, {"Size", size}, {"Training", info->training},
                             {"Latency", juce::String(latency) + (latency == 1 ? " sample" : " samples")}};
    if (info->keys.isNotEmpty()) rows.push_back({"Keys", info->keys});
    if (info->keys.isNotEmpty())
        rows.push_back({"Guidance", info->config.label_null
                                        ? juce::String("null label: a guided voice runs 2 streams (about 2x CPU)")
                                        : juce::String("no null label: the Guidance knob does nothing")});
    if (voices_ >= 0) rows.push_back({"Voices", juce::String(voices_) + " / " + juce::String(dsp::SynthEngine::kMaxVoices)});
    if (stats_.nonfinite_events > 0) rows.push_back({"NaN guard", juce::String(stats_.nonfinite_events) + " resets"});
    for (const Row& row : rows) {
        auto line = r.removeFromTop(20);
        g.setFont(Look::font(12.5f));
        g.setColour(colours::faint_text);
        g.drawText(row.key, line.removeFromLeft(70), juce::Justification::centredLeft);
        g.setColour(colours::text);
        g.drawFittedText(row.value, line, juce::Justification::centredLeft, 1, 0.85f);
    }

    // CPU load of the model, with a bar.
    r.removeFromTop(8);
    auto line = r.removeFromTop(21);
    g.setFont(Look::font(12.5f));
    g.setColour(colours::faint_text);
    g.drawText("CPU", line.removeFromLeft(70), juce::Justification::centredLeft);
    g.setColour(colours::text);
    g.drawText(cpu, line, juce::Justification::centredLeft);
    auto bar = r.removeFromTop(6).withTrimmedLeft(70).toFloat();
    g.setColour(colours::well);
    g.fillRoundedRectangle(bar, 3.0f);
    const float load = static_cast<float>(std::clamp(cpu_load_, 0.0, 1.0));
    g.setColour(load > 0.7f ? colours::error : load > 0.4f ? colours::warning : look_.accent());
    g.fillRoundedRectangle(bar.withWidth(std::max(3.0f, bar.getWidth() * load)), 3.0f);

    // Its hash at the bottom; the file's own description in what is left between.
    const auto hash_line = info_.reduced(14, 10).removeFromBottom(14);
    g.setColour(colours::faint_text);
    g.setFont(Look::font(11.0f));
    g.drawText("hash " + info->hash.substring(0, 16), hash_line, juce::Justification::centredLeft);
    r.removeFromTop(8);
    r.setBottom(hash_line.getY() - 2);
    const int lines = r.getHeight() / 15;
    if (!c.description.empty() && lines > 0) {
        g.setColour(colours::dim_text);
        g.setFont(Look::font(12.0f));
        g.drawFittedText(juce::String::fromUTF8(c.description.c_str()), r.removeFromTop(lines * 15),
                         juce::Justification::topLeft, lines, 0.9f);
    }
}

void Editor::paint_voices(juce::Graphics& g) {
    paint_section(g, control_section_, "VOICES");
    auto r = control_section_.reduced(16, 10).withTrimmedTop(30);
    const int n = dsp::SynthEngine::kMaxVoices;
    const int d = 18, gap = 10;
    auto dots = r.removeFromTop(d + 4).withWidth(n * (d + gap));
    for (int i = 0; i < n; ++i) {
        const auto dot = dots.removeFromLeft(d + gap).withWidth(d).withSizeKeepingCentre(d, d).toFloat();
        const bool on = i < voices_;
        g.setColour(on ? look_.accent() : colours::well);
        g.fillEllipse(dot);
        g.setColour(on ? look_.accent().brighter(0.3f) : colours::panel_edge);
        g.drawEllipse(dot.reduced(0.5f), 1.0f);
    }
    r.removeFromTop(12);
    g.setColour(colours::text);
    g.setFont(Look::font(13.0f, true));
    g.drawText(juce::String(std::max(0, voices_)) + " of " + juce::String(n) + " sounding", r.removeFromTop(20),
               juce::Justification::centredLeft);
    g.setColour(colours::dim_text);
    g.setFont(Look::font(12.5f));
    const juce::String keys = status_.info ? status_.info->keys : juce::String();
    const juce::String text =
        keys.isEmpty() ? "A MIDI note starts a voice of the generator, seeded by Seed + the note number, so a note "
                         "replays the same way. Note-off fades it out; more than " + juce::String(n) +
                             " notes take over the oldest voice."
                       // a labelled generator (docs/DIGITS.md): the key says which label it makes
                       : "The key chooses what the model says: " + keys + ". A voice is seeded by Seed + the "
                         "note number, so a note replays the same way; note-off fades it out." +
                             (status_.info->config.label_null
                                  ? juce::String(" Guidance makes the words clearer, at about twice the CPU a voice.")
                                  : juce::String());
    g.drawFittedText(text, r.removeFromTop(72), juce::Justification::topLeft, 4, 0.9f);
}

void Editor::paint(juce::Graphics& g) {
    g.fillAll(colours::background);
    paint_header(g);
    paint_status(g);
    paint_info(g);
    paint_section(g, main_section_, is_fx_ ? "LEVELS" : "GENERATION");
    if (is_fx_) {
        paint_section(g, control_section_, "MODEL CONTROLS");
        if (shown_controls_ == 0) {
            g.setColour(colours::faint_text);
            g.setFont(Look::font(13.0f));
            g.drawText("This model has no controls.", control_section_, juce::Justification::centred);
        }
    } else {
        paint_voices(g);
    }
    // Meter captions and readouts.
    g.setFont(Look::font(11.0f, true));
    auto caption = [&](const Meter& m, const juce::String& name) {
        const auto b = m.getBounds();
        g.setColour(colours::dim_text);
        g.drawText(name, b.withY(b.getBottom() + 4).withHeight(14).expanded(10, 0), juce::Justification::centred);
        const float db = m.level_db();
        g.setColour(db > 0.0f ? colours::error : colours::text);
        g.drawText(db > -99.0f ? juce::String(db, 1) : juce::String("-inf"), b.withY(b.getY() - 18).withHeight(14).expanded(12, 0),
                   juce::Justification::centred);
    };
    if (is_fx_) caption(meter_in_, "IN");
    caption(meter_out_, "OUT");
}

void Editor::paintOverChildren(juce::Graphics& g) {
    if (!drag_over_) return;
    g.setColour(colours::background.withAlpha(0.75f));
    g.fillAll();
    const auto r = getLocalBounds().reduced(24).toFloat();
    juce::Path outline;
    outline.addRoundedRectangle(r, 12.0f);
    const float dashes[] = {8.0f, 6.0f};
    juce::Path dashed;
    juce::PathStrokeType(2.0f).createDashedStroke(dashed, outline, dashes, 2);
    g.setColour(look_.accent());
    g.fillPath(dashed);
    g.setFont(Look::font(20.0f, true));
    g.drawText("Drop a .safetensors model to load it", r, juce::Justification::centred);
}

} // namespace mw::plugin
