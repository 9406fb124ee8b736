// The model a plugin runs: loading and preparing off the audio thread, what the session saves
// (path and content hash), and the status line the editor shows.
//
// Threads: request() may be called from any thread but the audio thread (editor, host's
// setStateInformation / setCurrentProgram); a background loader thread runs
// dsp::load_realtime_model and hands the prepared model to the processor's install function
// (which calls engine.set_model; the engine crossfades on the audio thread). load_now() does the
// same on the calling thread (the model a plugin starts with).
#pragma once

#include "dsp/realtime.h"

#include <juce_core/juce_core.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace mw::plugin {

// What the editor shows about a loaded model.
struct ModelInfo {
    juce::String name;           // file name without extension
    juce::String path;           // absolute path
    juce::String hash;           // RealtimeModel::content_hash
    ModelConfig config;
    int64_t parameters = 0;
    int64_t file_bytes = 0;
    juce::String training;       // one line from ModelConfig::training_json
    juce::String keys;           // a labelled generator's keys (dsp::label_keys_text), else empty
};

struct ModelStatus {
    enum class Level { none, loading, ok, warning, error };
    Level level = Level::none;
    juce::String message;                     // one line, says what happened and what to do
    std::shared_ptr<const ModelInfo> info;    // the model running now (null: none)
};

// The model a session refers to: what getStateInformation saves.
struct ModelRef {
    juce::String path;
    juce::String hash;
    bool operator==(const ModelRef&) const = default;
};

class ModelSlot {
public:
    struct Request {
        juce::File file;
        juce::String saved_hash;     // from a session: the hash it was saved with ("" otherwise)
        bool from_session = false;   // a missing file is looked for in the preset directories
        bool reset_controls = false; // the user picked it: the model's control defaults apply
    };
    // Called on the loading thread with a model of the right kind; installs it in the engine.
    using InstallFunction = std::function<void(dsp::RealtimeModelPtr, const Request&)>;

    ModelSlot(IoKind kind, InstallFunction install);
    ~ModelSlot();
    ModelSlot(const ModelSlot&) = delete;
    ModelSlot& operator=(const ModelSlot&) = delete;

    // Queues a load (the newest request replaces one not yet started). Never blocks on a load.
    void request(Request r);
    // Loads on the calling thread (not the audio thread); `preloaded` (if given) is r.file
    // already loaded. Returns true when the model runs.
    bool load_now(const Request& r, dsp::RealtimeModelPtr preloaded = nullptr);
    // Drops a queued load, waits for a running one and ends the thread; later requests are
    // ignored. Idempotent (the destructor calls it).
    void stop();
    // Blocks until no load is queued or running, or the timeout passes (tests, hosts' offline
    // rendering). Returns true when idle.
    bool wait_until_idle(int timeout_ms) const;

    ModelStatus status() const;
    // A message about the running model from elsewhere (e.g. a host rate the engine cannot
    // resample to); the next load replaces it.
    void report(ModelStatus::Level level, const juce::String& message);
    // Bumped at every status change (the editor polls it).
    int status_version() const { return version_.load(std::memory_order_acquire); }
    // The model the session refers to (saved by getStateInformation). While a restored
    // session's file is missing this is that file, not the one running, so saving the session
    // again keeps the reference.
    ModelRef session_model() const;

    // One line about a model's training record (ModelConfig::training_json).
    static juce::String training_summary(const ModelConfig& config);

private:
    void run();
    void load(const Request& r, dsp::RealtimeModelPtr preloaded = nullptr);
    void set_status(ModelStatus::Level level, const juce::String& message,
                    std::shared_ptr<const ModelInfo> info, std::optional<ModelRef> session);

    const IoKind kind_;
    const InstallFunction install_;

    mutable std::mutex mutex_;               // everything below except the thread
    mutable std::condition_variable wake_;   // a request arrived / a load finished
    std::optional<Request> pending_;
    bool busy_ = false;
    bool quit_ = false;
    ModelStatus status_;
    ModelRef session_;
    std::atomic<int> version_{0};
    std::thread thread_;
};

} // namespace mw::plugin
