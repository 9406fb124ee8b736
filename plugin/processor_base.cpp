#include "plugin/processor_base.h"

#include "plugin/editor.h"

namespace mw::plugin {

namespace {

constexpr int kStateFormat = 1;   // the <MambaWave format="..."> of saved sessions
constexpr int kTimerHz = 20;

// The default preset, loaded before the parameters are made (its control defaults become the
// parameters' defaults). A missing or broken default leaves the plugin without a model; the
// editor says so and the user loads one.
dsp::RealtimeModelPtr preload(const juce::File& file) {
    if (file == juce::File()) return nullptr;
    try {
        return dsp::load_realtime_model(file.getFullPathName().toStdString());
    } catch (const std::exception&) {
        return nullptr;   // load_now() below tries again and reports the error
    }
}

} // namespace

ProcessorBase::ProcessorBase(Setup setup)
    : juce::AudioProcessor(setup.buses),
      name_(setup.name),
      io_kind_(setup.io_kind),
      presets_(find_presets(setup.io_kind)),
      initial_file_(default_preset(setup.io_kind, presets_).file),
      initial_model_(preload(initial_file_)),
      parameters_(*this, nullptr, "PARAMETERS",
                  setup.make_parameters(controls_, initial_model_ && initial_model_->model.config().kind == io_kind_
                                                       ? &initial_model_->model.config()
                                                       : nullptr)),
      bypass_(parameters_.getParameter(pid::bypass)),
      slot_(setup.io_kind, [this](dsp::RealtimeModelPtr m, const ModelSlot::Request& r) { install(std::move(m), r); }) {}

ProcessorBase::~ProcessorBase() { shut_down(); }

void ProcessorBase::start() {
    if (initial_file_ != juce::File()) {
        slot_.load_now({initial_file_, {}, false, false}, std::move(initial_model_));
    }
    initial_model_.reset();
    startTimerHz(kTimerHz);
}

void ProcessorBase::shut_down() {
    stopTimer();
    slot_.stop();   // a running load finishes (and installs) before the engine goes
}

void ProcessorBase::install(dsp::RealtimeModelPtr model, const ModelSlot::Request& request) {
    const float guidance = model->model.config().guidance;
    {
        const std::lock_guard<std::mutex> lock(engine_mutex_);
        const std::vector<ControlSpec> specs = model->model.config().controls;
        install_model(std::move(model));   // throws when the engine refuses it (ModelSlot reports)
        controls_.set(specs);
    }
    for (size_t i = 0; i < presets_.size(); ++i)
        if (presets_[i].file == request.file) current_program_.store(static_cast<int>(i));
    if (request.reset_controls) reset_controls_to_model_defaults(guidance);
    update_latency();   // the new model's rate may differ: the host hears of it at once
}

void ProcessorBase::reset_controls_to_model_defaults(float model_guidance) {
    if (io_kind_ != IoKind::continuous) {
        auto* p = parameters_.getParameter(pid::guidance);
        if (p && model_guidance > 0.0f) p->setValueNotifyingHost(p->convertTo0to1(model_guidance));
        return;
    }
    for (int i = 0; i < controls_.count(); ++i)
        if (auto* p = parameters_.getParameter(pid::control(i))) p->setValueNotifyingHost(controls_.default_normalised(i));
}

void ProcessorBase::update_latency() {
    // Loader thread, timer and prepareToPlay may all get here: one at a time.
    const std::lock_guard<std::mutex> lock(latency_mutex_);
    const int latency = engine_latency_samples();
    if (latency != getLatencySamples()) setLatencySamples(latency);
}

void ProcessorBase::collect_garbage() {
    const std::lock_guard<std::mutex> lock(engine_mutex_);
    collect_engine_garbage();
}

void ProcessorBase::timerCallback() {
    collect_garbage();
    update_latency();
}

void ProcessorBase::load_model_file(const juce::File& file) { slot_.request({file, {}, false, true}); }

juce::AudioProcessorEditor* ProcessorBase::createEditor() { return new Editor(*this); }

// --- Programs: the shipped presets of this plugin's kind ------------------------------------

int ProcessorBase::getNumPrograms() { return std::max(1, static_cast<int>(presets_.size())); }

int ProcessorBase::getCurrentProgram() { return current_program_.load(); }

void ProcessorBase::setCurrentProgram(int index) {
    if (index < 0 || index >= static_cast<int>(presets_.size())) return;
    current_program_.store(index);
    // Hosts re-send the current program (e.g. after restoring a session): that must not reload
    // the model or reset its controls.
    if (presets_[size_t(index)].file.getFullPathName() == slot_.session_model().path) return;
    slot_.request({presets_[size_t(index)].file, {}, false, true});
}

const juce::String ProcessorBase::getProgramName(int index) {
    if (index >= 0 && index < static_cast<int>(presets_.size())) return presets_[size_t(index)].name;
    return "(no presets found)";
}

// --- State: the model (path and content hash) and every parameter ---------------------------

void ProcessorBase::getStateInformation(juce::MemoryBlock& dest) {
    juce::XmlElement root("MambaWave");
    root.setAttribute("format", kStateFormat);
    root.setAttribute("plugin", name_);
    const ModelRef ref = slot_.session_model();
    juce::XmlElement* model = root.createNewChildElement("Model");
    model->setAttribute("path", ref.path);
    model->setAttribute("hash", ref.hash);
    if (std::unique_ptr<juce::XmlElement> params = parameters_.copyState().createXml())
        root.addChildElement(params.release());
    copyXmlToBinary(root, dest);
}

void ProcessorBase::setStateInformation(const void* data, int size_bytes) {
    const std::unique_ptr<juce::XmlElement> root = getXmlFromBinary(data, size_bytes);
    if (!root || !root->hasTagName("MambaWave")) return;   // not ours: keep the current state
    if (root->getIntAttribute("format", 0) > kStateFormat) return;   // from a newer version
    if (const juce::XmlElement* params = root->getChildByName(parameters_.state.getType()))
        parameters_.replaceState(juce::ValueTree::fromXml(*params));
    if (const juce::XmlElement* model = root->getChildByName("Model")) {
        const ModelRef saved{model->getStringAttribute("path"), model->getStringAttribute("hash")};
        if (saved.path.isEmpty() || saved == slot_.session_model()) return;   // nothing to load
        const juce::File file = juce::File::isAbsolutePath(saved.path)
                                    ? juce::File(saved.path)
                                    : juce::File::getCurrentWorkingDirectory().getChildFile(saved.path);
        slot_.request({file, saved.hash, true, false});
    }
}

} // namespace mw::plugin
