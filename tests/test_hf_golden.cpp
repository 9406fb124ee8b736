// Golden test: HF transformers' own MambaForCausalLM output (tests/data/hf_*, made by
// scripts/make_hf_golden.py in float64) is reproduced by every CPU path after loading the
// checkpoint directory exactly as HF saved it.
#include "model/engine.h"
#include "model/model_file.h"
#include "model/npy.h"
#include "test_util.h"

#include <catch2/catch.hpp>

using namespace mw;

TEST_CASE("HF transformers checkpoints load as they are and match HF's logits", "[golden]") {
    for (const char* name : {"hf_tiny_tied", "hf_small_untied"}) {
        const std::string dir = std::string(MW_TEST_DATA_DIR) + "/" + name;
        INFO(dir);
        const Model model = load_model(dir);
        const NpyArray tokens_npy = read_npy(dir + "/tokens.npy");
        const NpyArray logits_npy = read_npy(dir + "/logits.npy");
        REQUIRE(tokens_npy.shape.size() == 1);
        const int64_t L = tokens_npy.shape[0];
        REQUIRE(logits_npy.shape == std::vector<int64_t>{L, 256});
        std::vector<int32_t> tokens(tokens_npy.values.begin(), tokens_npy.values.end());
        std::vector<float> want(logits_npy.values.begin(), logits_npy.values.end());

        for (Path path : {Path::reference, Path::step, Path::scan}) {
            std::vector<float> got(static_cast<size_t>(L * 256));
            forward_tokens(model, path, tokens.data(), L, got.data(), 2);
            const double err = test::rel_error(got, want);
            UNSCOPED_INFO(name << " path " << to_string(path) << ": rel error " << err
                          << ", max |diff| " << test::max_abs_diff(got, want));
            CHECK(err <= 1e-4);
        }
    }
}
