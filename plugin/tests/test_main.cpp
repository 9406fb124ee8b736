// The in-process plugin tests (Catch2): JUCE's message manager exists for the whole run (the
// processors and the editor need one; no message loop runs, so the tests call what the timers
// would). The shipped presets come from the source tree unless MW_PRESETS_DIR says otherwise.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <juce_events/juce_events.h>

#include <cstdlib>

int main(int argc, char* argv[]) {
    const char* presets = std::getenv("MW_PRESETS_DIR");
    if (presets == nullptr || *presets == '\0') setenv("MW_PRESETS_DIR", MW_SOURCE_DIR "/presets", 1);
    Catch::Session session;
    if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    juce::ScopedJuceInitialiser_GUI juce_runtime;
    return session.run();
}
