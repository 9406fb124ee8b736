// The shipped presets (presets/*.safetensors): where the plugin finds them and which of them a
// plugin offers (effects for the FX, generators for the Synth).
//
// Search order (the first directory that holds a file of a given name wins):
//   1. $MW_PRESETS_DIR (one directory)
//   2. next to the plugin binary, inside its bundle:
//        VST3        <name>.vst3/Contents/Resources/presets   (binary in Contents/<arch>-linux/)
//        LV2         <name>.lv2/presets
//        Standalone  presets/ beside the executable
//      (the build copies presets/*.safetensors there)
//   3. the install path: <prefix>/share/mambawave/presets, then ~/.local/share/mambawave/presets
#pragma once

#include "model/model.h"

#include <juce_core/juce_core.h>

#include <vector>

namespace mw::plugin {

struct Preset {
    juce::File file;
    juce::String name;   // the file name without extension: "ts9"
};

// The directories above that exist, in search order.
std::vector<juce::File> preset_directories();

// The presets of one kind, sorted by name. Each file's header is read once per process (the
// result is cached); files that do not load are left out.
std::vector<Preset> find_presets(IoKind kind);

// The presets the plugins start with (file names without extension): the Tube Screamer and the
// spoken-digit generator told which digit to say (the Synth's keys C4..A4 play 0..9); when the
// named one is missing, the first of its kind.
inline constexpr const char* kDefaultEffectPreset = "ts9";
inline constexpr const char* kDefaultGeneratorPreset = "digits_labelled";

// The preset to start with (above). Empty file when there is none.
Preset default_preset(IoKind kind, const std::vector<Preset>& presets);

// A preset file with this file name in the preset directories (a session whose model file has
// moved: the same file shipped with another install). Empty file when there is none.
juce::File find_in_preset_directories(const juce::String& file_name);

// The file this code was loaded from (the plugin's .so, or the test executable).
juce::File this_binary();

} // namespace mw::plugin
