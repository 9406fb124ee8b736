// The editor, headless (ctest runs these under Xvfb): made, fed audio, painted into an image and
// saved as PNG (plugin/tests/*.png in the build tree; docs/PLUGIN.md shows one).
#include "plugin_test_util.h"

#include "plugin/editor.h"

#include <set>

using namespace mw;
using namespace mw::plugin;
using namespace mw::plugin::test;

namespace {

juce::File snapshot_path(const juce::String& name) {
    const juce::File dir(juce::String(MW_TEST_OUTPUT_DIR));
    dir.createDirectory();
    return dir.getChildFile(name);
}

void save_png(const juce::Image& image, const juce::File& file) {
    file.deleteFile();
    juce::FileOutputStream out(file);
    REQUIRE(out.openedOk());
    juce::PNGImageFormat png;
    REQUIRE(png.writeImageToStream(image, out));
}

// How much of the picture is the accent colour, and how many distinct colours it has (a blank
// or black image has almost none; text and anti-aliased curves make thousands).
struct Census {
    int accent_pixels = 0;
    size_t colours = 0;
};
Census census(const juce::Image& image, juce::Colour accent) {
    Census c;
    std::set<juce::uint32> seen;
    const juce::Image::BitmapData data(image, juce::Image::BitmapData::readOnly);
    for (int y = 0; y < image.getHeight(); ++y)
        for (int x = 0; x < image.getWidth(); ++x) {
            const juce::Colour px = data.getPixelColour(x, y);
            seen.insert(px.getARGB());
            if (std::abs(px.getRed() - accent.getRed()) < 24 && std::abs(px.getGreen() - accent.getGreen()) < 24 &&
                std::abs(px.getBlue() - accent.getBlue()) < 24)
                ++c.accent_pixels;
        }
    c.colours = seen.size();
    return c;
}

// Makes the editor, runs `seconds` of audio through the processor with it open, and paints it.
juce::Image paint(ProcessorBase& p, const std::function<void()>& audio, int width, int height) {
    std::unique_ptr<juce::AudioProcessorEditor> editor(p.createEditorIfNeeded());
    REQUIRE(editor != nullptr);
    auto* e = dynamic_cast<Editor*>(editor.get());
    REQUIRE(e != nullptr);
    e->setSize(width, height);
    audio();
    e->refresh();
    audio();
    e->refresh();
    return e->createComponentSnapshot(e->getLocalBounds(), true, 1.0f);
}

} // namespace

TEST_CASE("editor: MambaWave FX renders headless and is saved as PNG", "[editor]") {
    FxProcessor p;
    p.prepareToPlay(48000.0, 512);
    set_parameter(p, pid::input_gain, 6.0f);
    const std::vector<float> clip = guitar(0.3);
    auto audio = [&] { run(p, std::vector<float>(clip.begin() + 9000, clip.end()), {512}); };

    const juce::Image image = paint(p, audio, Editor::kDefaultWidth, Editor::kDefaultHeight);
    CHECK(image.getWidth() == Editor::kDefaultWidth);
    CHECK(image.getHeight() == Editor::kDefaultHeight);
    const Census c = census(image, colours::fx_accent);
    INFO(c.accent_pixels << " accent pixels, " << c.colours << " colours");
    CHECK(c.accent_pixels > 2000);   // the waveform, the knob arcs, the title
    CHECK(c.colours > 500);
    save_png(image, snapshot_path("mambawave-fx-editor.png"));

    // The smallest and the largest sizes paint too.
    for (const auto& [w, h] : {std::pair{760, 500}, std::pair{1600, 1000}}) {
        const juce::Image other = paint(p, audio, w, h);
        CHECK(other.getWidth() == w);
        CHECK(census(other, colours::fx_accent).accent_pixels > 1000);
    }
}

TEST_CASE("editor: a model with other controls and a missing session file, saved as PNG", "[editor]") {
    TempDir tmp;
    FxProcessor p;
    p.load_model_file(write_effect_model(tmp.dir, "three-knob-model"));
    REQUIRE(wait_idle(p));
    juce::XmlElement root("MambaWave");
    root.createNewChildElement("Model")->setAttribute("path", "/home/someone/models/lost-amp.safetensors");
    juce::MemoryBlock state;
    juce::AudioProcessor::copyXmlToBinary(root, state);
    p.setStateInformation(state.getData(), int(state.getSize()));
    REQUIRE(wait_idle(p));
    p.prepareToPlay(44100.0, 256);
    const std::vector<float> clip = guitar(0.2);
    const juce::Image image = paint(p, [&] { run(p, clip, {256}); }, Editor::kDefaultWidth, Editor::kDefaultHeight);
    CHECK(census(image, colours::error).accent_pixels > 50);   // the red status line
    save_png(image, snapshot_path("mambawave-fx-editor-missing-model.png"));
}

TEST_CASE("editor: MambaWave Synth renders headless and is saved as PNG", "[editor]") {
    SynthProcessor p;
    TempDir tmp;   // a generator that is loud from the first sample (digits may start in a pause)
    p.load_model_file(write_generator_model(tmp.dir, "noise-test-generator"));
    REQUIRE(wait_idle(p));
    p.prepareToPlay(48000.0, 480);
    juce::AudioBuffer<float> buffer(2, 480);
    int block = 0;
    auto audio = [&] {
        for (int b = 0; b < 20; ++b, ++block) {
            juce::MidiBuffer midi;
            if (block == 0) {
                midi.addEvent(juce::MidiMessage::noteOn(1, 57, 0.9f), 0);
                midi.addEvent(juce::MidiMessage::noteOn(1, 64, 0.7f), 100);
                midi.addEvent(juce::MidiMessage::noteOn(1, 69, 0.5f), 200);
            }
            p.processBlock(buffer, midi);
        }
    };
    const juce::Image image = paint(p, audio, Editor::kDefaultWidth, Editor::kDefaultHeight);
    const Census c = census(image, colours::synth_accent);
    INFO(c.accent_pixels << " accent pixels, " << c.colours << " colours");
    CHECK(c.accent_pixels > 2000);
    CHECK(c.colours > 500);
    save_png(image, snapshot_path("mambawave-synth-editor.png"));
}
