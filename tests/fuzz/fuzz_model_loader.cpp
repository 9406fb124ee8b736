// libFuzzer target: load_model_from_bytes on arbitrary bytes must either return a complete
// model or throw ModelError; anything else (a crash, a sanitizer report, another exception,
// an "internal error") is a bug. A model that loads must also save and load back identically.
#include "model/model_file.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr const char* kName = "fuzz.safetensors";
constexpr const char* kInternal = "fuzz.safetensors: internal error";

[[noreturn]] void bug(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_model_loader: %s: %s\n", what, detail.c_str());
    std::abort();
}

// save(load(x)) must load to the same config and bit-identical weights.
void check_round_trip(const mw::Model& model) {
    std::vector<uint8_t> bytes;
    mw::Model again;
    try {
        bytes = mw::save_model_to_bytes(model);
        again = mw::load_model_from_bytes("round trip", bytes.data(), bytes.size());
    } catch (const mw::ModelError& e) {
        bug("a loaded model does not save and load back", e.what());
    }
    if (mw::config_to_json(again.config()) != mw::config_to_json(model.config()))
        bug("config changed in a save/load round trip", mw::config_to_json(model.config()));
    for (const mw::TensorSpec& spec : model.tensors())
        if (std::memcmp(again.tensor(spec.name), model.tensor(spec.name),
                        size_t(spec.numel()) * sizeof(float)) != 0)
            bug("weights changed in a save/load round trip", spec.name);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const mw::Model model = mw::load_model_from_bytes(kName, data, size);
        check_round_trip(model);
    } catch (const mw::ModelError& e) {
        // The loader's own "internal error" (a JSON exception it failed to prevent) comes
        // right after the name; the fuzzed bytes may say "internal error" anywhere later.
        if (std::strncmp(e.what(), kInternal, std::strlen(kInternal)) == 0)
            bug("internal error", e.what());
        // A clear refusal: what we want.
    }
    return 0;
}
