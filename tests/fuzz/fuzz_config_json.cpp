// libFuzzer target: config_from_json (a MambaWave file's config) and hf_config_from_json (an HF
// checkpoint's config.json) on arbitrary text each return a valid config or throw ModelError;
// an accepted config must survive config_to_json -> config_from_json unchanged.
#include "model/model_file.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace {

// Either parser: a config, or false after a clear refusal; anything else is a finding.
bool parse(const std::string& text, bool hf, mw::ModelConfig& config) {
    try {
        config = hf ? mw::hf_config_from_json(text, "config.json") : mw::config_from_json(text, "fuzz.json");
        return true;
    } catch (const mw::ModelError&) {
        return false;  // a clear refusal
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: an exception other than ModelError: %s\n", hf ? "hf_config_from_json" : "config_from_json",
                     e.what());
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    mw::ModelConfig config, from_hf;
    parse(text, true, from_hf);  // an HF config only has to parse or be refused
    if (!parse(text, false, config)) return 0;
    const std::string json = mw::config_to_json(config);
    std::string again;
    try {
        again = mw::config_to_json(mw::config_from_json(json, "round trip"));
    } catch (const mw::ModelError& e) {
        std::fprintf(stderr, "an accepted config does not load back: %s\n%s\n", e.what(), json.c_str());
        std::abort();
    }
    if (again != json) {
        std::fprintf(stderr, "config changed in a round trip:\n%s\n---\n%s\n", json.c_str(), again.c_str());
        std::abort();
    }
    return 0;
}
