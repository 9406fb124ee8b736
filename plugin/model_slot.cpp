#include "plugin/model_slot.h"

#include "plugin/presets.h"

#include <chrono>

namespace mw::plugin {

namespace {

juce::String kind_text(IoKind kind) {
    return kind == IoKind::continuous ? "an effect (continuous)" : "a generator (mulaw8)";
}

juce::String short_hash(const juce::String& hash) { return hash.substring(0, 8); }

std::shared_ptr<const ModelInfo> make_info(const dsp::RealtimeModel& m, const juce::File& file) {
    auto info = std::make_shared<ModelInfo>();
    info->name = file.isDirectory() ? file.getFileName() : file.getFileNameWithoutExtension();
    info->path = file.getFullPathName();
    info->hash = juce::String(m.content_hash);
    info->config = m.model.config();
    info->parameters = m.model.parameter_count();
    info->file_bytes = file.isDirectory() ? file.getChildFile("model.safetensors").getSize() : file.getSize();
    info->training = ModelSlot::training_summary(info->config);
    info->keys = juce::String::fromUTF8(dsp::label_keys_text(info->config).c_str());
    return info;
}

} // namespace

ModelSlot::ModelSlot(IoKind kind, InstallFunction install)
    : kind_(kind), install_(std::move(install)), thread_([this] { run(); }) {}

ModelSlot::~ModelSlot() { stop(); }

void ModelSlot::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        quit_ = true;
        pending_.reset();
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void ModelSlot::request(Request r) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (quit_) return;
        pending_ = std::move(r);
    }
    wake_.notify_all();
}

bool ModelSlot::load_now(const Request& r, dsp::RealtimeModelPtr preloaded) {
    load(r, std::move(preloaded));
    const ModelStatus s = status();
    return s.level == ModelStatus::Level::ok || s.level == ModelStatus::Level::warning;
}

bool ModelSlot::wait_until_idle(int timeout_ms) const {
    std::unique_lock<std::mutex> lock(mutex_);
    return wake_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                          [this] { return !busy_ && !pending_; });
}

ModelStatus ModelSlot::status() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return status_;
}

void ModelSlot::report(ModelStatus::Level level, const juce::String& message) {
    set_status(level, message, status().info, std::nullopt);
}

ModelRef ModelSlot::session_model() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return session_;
}

void ModelSlot::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return quit_ || pending_.has_value(); });
        if (quit_) return;
        const Request r = std::move(*pending_);
        pending_.reset();
        busy_ = true;
        lock.unlock();
        load(r);
        lock.lock();
        busy_ = false;
        wake_.notify_all();
    }
}

void ModelSlot::set_status(ModelStatus::Level level, const juce::String& message,
                           std::shared_ptr<const ModelInfo> info, std::optional<ModelRef> session) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        status_.level = level;
        status_.message = message;
        status_.info = std::move(info);
        if (session) session_ = *session;
    }
    version_.fetch_add(1, std::memory_order_acq_rel);
}

void ModelSlot::load(const Request& r, dsp::RealtimeModelPtr preloaded) {
    const std::shared_ptr<const ModelInfo> running = status().info;
    const juce::String still = running ? "Still running " + running->name + "." : "No model is running.";
    const juce::String wanted_path = r.file.getFullPathName();
    // A failed load from a session keeps the session's reference (saving again must not lose
    // it); a failed pick by the user keeps the reference of the model still running.
    const std::optional<ModelRef> keep_ref =
        r.from_session ? std::optional<ModelRef>(ModelRef{wanted_path, r.saved_hash}) : std::nullopt;

    set_status(ModelStatus::Level::loading, "Loading " + r.file.getFileName() + " ...", running, std::nullopt);

    juce::File file = r.file;
    bool moved = false;
    if (!file.exists()) {
        const juce::File found = r.from_session ? find_in_preset_directories(file.getFileName()) : juce::File();
        if (found == juce::File()) {
            set_status(ModelStatus::Level::error,
                       "Model file not found: " + wanted_path +
                           (r.saved_hash.isNotEmpty() ? " (saved with hash " + short_hash(r.saved_hash) + ")" : "") +
                           ". " + still + " Load the file again (Load... or drop it here).",
                       running, keep_ref);
            return;
        }
        file = found;
        moved = true;
    }

    dsp::RealtimeModelPtr model = std::move(preloaded);
    try {
        if (!model) model = dsp::load_realtime_model(file.getFullPathName().toStdString());
    } catch (const std::exception& e) {
        set_status(ModelStatus::Level::error, juce::String::fromUTF8(e.what()) + " " + still, running, keep_ref);
        return;
    }
    const ModelConfig& config = model->model.config();
    if (config.kind != kind_) {
        set_status(ModelStatus::Level::error,
                   file.getFileName() + " is " + kind_text(config.kind) + " model; this plugin runs " +
                       kind_text(kind_) + " models. " + still,
                   running, keep_ref);
        return;
    }

    try {
        install_(model, r);   // the engine refuses rates it cannot resample between
    } catch (const std::exception& e) {
        set_status(ModelStatus::Level::error,
                   file.getFileName() + ": " + juce::String::fromUTF8(e.what()) + " " + still, running, keep_ref);
        return;
    }

    auto info = make_info(*model, file);
    const juce::String hash = info->hash;
    ModelStatus::Level level = ModelStatus::Level::ok;
    juce::String message = "Loaded " + info->name + ".";
    const bool hash_differs = r.from_session && r.saved_hash.isNotEmpty() && hash != r.saved_hash;
    if (moved && !hash_differs) {
        message = info->name + " was not at " + wanted_path + "; loaded the same model (hash " +
                  short_hash(hash) + ") from " + file.getFullPathName() + ".";
    } else if (moved) {
        level = ModelStatus::Level::warning;
        message = info->name + " was not at " + wanted_path + "; a file of that name in " +
                  file.getParentDirectory().getFullPathName() + " differs from the saved one (hash " +
                  short_hash(r.saved_hash) + ", found " + short_hash(hash) + "): running it.";
    } else if (hash_differs) {
        level = ModelStatus::Level::warning;
        message = info->name + " changed since the session was saved (hash " + short_hash(r.saved_hash) +
                  ", now " + short_hash(hash) + "): running the file as it is now.";
    }
    if (config.n_cond() > dsp::kMaxControls) {
        level = ModelStatus::Level::warning;
        message += " The model has " + juce::String(config.n_cond()) + " controls; the plugin exposes the first " +
                   juce::String(dsp::kMaxControls) + ".";
    }
    set_status(level, message, std::move(info), ModelRef{file.getFullPathName(), hash});
}

juce::String ModelSlot::training_summary(const ModelConfig& config) {
    if (config.untrained) return "untrained placeholder (random weights)";
    const juce::var record = juce::JSON::parse(juce::String::fromUTF8(config.training_json.c_str()));
    if (!record.isObject()) return "no training record";
    const juce::var steps = record.getProperty("steps", {});
    const juce::var metric = record.getProperty("metric", {});
    juce::String line;
    // A held-out test score (eval --record) says more than the validation metric training used.
    const juce::var test = record.getProperty("evaluation", {}).getProperty("test", {});
    if (test.isObject() && test.hasProperty("esr_mean")) {
        line = "ESR " + juce::String(static_cast<double>(test.getProperty("esr_mean", 0.0)), 4) + " (test, " +
               juce::String(static_cast<int>(test.getProperty("pairs", 0))) + " pairs)";
    } else if (metric.isObject()) {
        juce::String name = metric.getProperty("name", "metric").toString();
        if (name == "esr") name = "ESR";
        if (name == "nll_bits_per_sample") name = "bits/sample";
        line = name + " " + juce::String(static_cast<double>(metric.getProperty("value", 0.0)), 4);
        const juce::String split = metric.getProperty("split", "").toString();
        if (split.isNotEmpty()) line += " (" + split + ")";
    }
    if (!steps.isVoid()) line += (line.isEmpty() ? "" : ", ") + juce::String(static_cast<juce::int64>(steps)) + " steps";
    return line.isEmpty() ? "no training metric" : line;
}

} // namespace mw::plugin
