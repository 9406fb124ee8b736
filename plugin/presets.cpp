#include "plugin/presets.h"

#include "model/model_file.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#ifndef MW_PRESETS_INSTALL_DIR
#define MW_PRESETS_INSTALL_DIR "/usr/local/share/mambawave/presets"
#endif

namespace mw::plugin {

juce::File this_binary() {
#if !defined(_WIN32)
    Dl_info info{};
    if (dladdr(reinterpret_cast<const void*>(&this_binary), &info) != 0 && info.dli_fname != nullptr)
        return juce::File(juce::String::fromUTF8(info.dli_fname));
#endif
    return juce::File::getSpecialLocation(juce::File::currentExecutableFile);
}

std::vector<juce::File> preset_directories() {
    std::vector<juce::File> candidates;
    const juce::String env = juce::SystemStats::getEnvironmentVariable("MW_PRESETS_DIR", {});
    if (env.isNotEmpty() && juce::File::isAbsolutePath(env)) candidates.emplace_back(env);

    const juce::File dir = this_binary().getParentDirectory();
    candidates.push_back(dir.getSiblingFile("Resources").getChildFile("presets"));  // VST3
    candidates.push_back(dir.getChildFile("presets"));                              // LV2, Standalone
    candidates.push_back(dir.getSiblingFile("presets"));
    candidates.emplace_back(juce::String(MW_PRESETS_INSTALL_DIR));
    candidates.push_back(juce::File::getSpecialLocation(juce::File::userHomeDirectory)
                             .getChildFile(".local/share/mambawave/presets"));

    std::vector<juce::File> dirs;
    for (const juce::File& d : candidates)
        if (d.isDirectory() && std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
    return dirs;
}

namespace {

// Each file's kind, read once per process (a file that changes on disk is read again).
std::optional<IoKind> kind_of(const juce::File& file) {
    struct Key {
        std::string path;
        int64_t bytes, modified_ms;
        bool operator<(const Key& o) const {
            return std::tie(path, bytes, modified_ms) < std::tie(o.path, o.bytes, o.modified_ms);
        }
    };
    static std::mutex mutex;
    static std::map<Key, std::optional<IoKind>> cache;
    const Key key{file.getFullPathName().toStdString(), file.getSize(),
                  file.getLastModificationTime().toMilliseconds()};
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    std::optional<IoKind> kind;
    try {
        kind = load_model(key.path).config().kind;
    } catch (const std::exception&) {
        // A damaged file is not offered as a preset (loading it by hand says what is wrong).
    }
    cache[key] = kind;
    return kind;
}

} // namespace

std::vector<Preset> find_presets(IoKind kind) {
    std::vector<Preset> presets;
    for (const juce::File& dir : preset_directories()) {
        for (const juce::File& f :
             dir.findChildFiles(juce::File::findFiles, false, "*.safetensors", juce::File::FollowSymlinks::no)) {
            const juce::String name = f.getFileNameWithoutExtension();
            const bool seen = std::any_of(presets.begin(), presets.end(),
                                          [&](const Preset& p) { return p.name == name; });
            if (!seen && kind_of(f) == kind) presets.push_back({f, name});
        }
    }
    std::sort(presets.begin(), presets.end(),
              [](const Preset& a, const Preset& b) { return a.name.compareNatural(b.name) < 0; });
    return presets;
}

Preset default_preset(IoKind kind, const std::vector<Preset>& presets) {
    const juce::String wanted = kind == IoKind::continuous ? kDefaultEffectPreset : kDefaultGeneratorPreset;
    for (const Preset& p : presets)
        if (p.name == wanted) return p;
    return presets.empty() ? Preset{} : presets.front();
}

juce::File find_in_preset_directories(const juce::String& file_name) {
    if (file_name.isEmpty()) return {};
    for (const juce::File& dir : preset_directories()) {
        const juce::File f = dir.getChildFile(file_name);
        if (f.existsAsFile()) return f;
    }
    return {};
}

} // namespace mw::plugin
