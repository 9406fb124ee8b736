#include "plugin/synth_processor.h"

#include <algorithm>
#include <array>

namespace mw::plugin {

namespace {
constexpr float kMutedDb = -120.0f;   // bypass: the engine ramps the level here

juce::AudioProcessorValueTreeState::ParameterLayout synth_parameters(const ControlMap&, const ModelConfig*) {
    return make_synth_parameters();
}
} // namespace

juce::AudioProcessor::BusesProperties SynthProcessor::buses() {
    return BusesProperties().withOutput("Output", juce::AudioChannelSet::stereo(), true);
}

SynthProcessor::SynthProcessor()
    : EngineProcessor({"MambaWave Synth", IoKind::mulaw8, buses(), &synth_parameters},
                      "The synth stays silent."),
      temperature_(raw(pid::temperature)),
      top_p_(raw(pid::top_p)),
      guidance_(raw(pid::guidance)),
      level_db_(raw(pid::level)),
      seed_(raw(pid::seed)),
      bypass_on_(raw(pid::bypass)) {
    start();
}

SynthProcessor::~SynthProcessor() { shut_down(); }

bool SynthProcessor::isBusesLayoutSupported(const BusesLayout& layouts) const {
    const juce::AudioChannelSet out = layouts.getMainOutputChannelSet();
    return layouts.getMainInputChannelSet().isDisabled() &&
           (out == juce::AudioChannelSet::mono() || out == juce::AudioChannelSet::stereo());
}

void SynthProcessor::apply_parameters() noexcept {
    engine_.set_temperature(temperature_->load(std::memory_order_relaxed));
    engine_.set_top_p(top_p_->load(std::memory_order_relaxed));
    engine_.set_guidance(guidance_->load(std::memory_order_relaxed));
    const bool bypassed = bypass_on_->load(std::memory_order_relaxed) >= 0.5f;
    engine_.set_level_db(bypassed ? kMutedDb : level_db_->load(std::memory_order_relaxed));
    engine_.set_seed(static_cast<uint32_t>(std::max(0.0f, seed_->load(std::memory_order_relaxed)) + 0.5f));
}

void SynthProcessor::handle(const juce::uint8* bytes, int size, int offset) noexcept {
    // Raw bytes, not juce::MidiMessage (which allocates for long messages such as SysEx).
    if (size < 3) return;
    const int status = bytes[0] & 0xf0;
    const int note = bytes[1] & 0x7f, value = bytes[2] & 0x7f;
    if (status == 0x90 && value > 0) {
        engine_.note_on(note, static_cast<float>(value) / 127.0f, offset);
    } else if (status == 0x80 || status == 0x90) {   // note-on with velocity 0 is a note-off
        engine_.note_off(note, offset);
    } else if (status == 0xb0 && (note == 120 || note == 123)) {   // all sound off, all notes off
        engine_.all_notes_off();
    }
}

void SynthProcessor::processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi) {
    juce::ScopedNoDenormals no_denormals;
    const int n = buffer.getNumSamples();
    const int channels = std::min(channels_, buffer.getNumChannels());
    buffer.clear();
    if (!prepared_ || n <= 0 || channels <= 0) return;

    apply_parameters();
    float* const* data = buffer.getArrayOfWritePointers();
    std::array<float*, kMaxChannels> at{};
    auto event = midi.cbegin();
    for (int start = 0; start < n; start += max_block_samples_) {
        const int len = std::min(max_block_samples_, n - start);
        const bool last = start + len >= n;
        // This chunk's events, at their offsets within it (events past the block's end, which
        // a careless host may send, go at the last sample).
        for (; event != midi.cend(); ++event) {
            const juce::MidiMessageMetadata meta = *event;
            const int position = std::clamp(meta.samplePosition, 0, n - 1);
            if (position >= start + len && !last) break;
            handle(meta.data, meta.numBytes, std::min(position - start, len - 1));
        }
        for (int c = 0; c < channels; ++c) at[size_t(c)] = data[c] + start;
        engine_.process(at.data(), channels, len);
    }
    scope_output().push(data, channels, n);
}

} // namespace mw::plugin
