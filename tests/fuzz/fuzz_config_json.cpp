// libFuzzer target: config_from_json on arbitrary text returns a valid config or throws
// ModelError; an accepted config must survive config_to_json -> config_from_json unchanged.
#include "model/model_file.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    mw::ModelConfig config;
    try {
        config = mw::config_from_json(text, "fuzz.json");
    } catch (const mw::ModelError&) {
        return 0;  // a clear refusal
    }
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
