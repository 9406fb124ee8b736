// Writes the fuzzers' seed corpora: small valid MambaWave files of every kind (generator tied
// and untied, effect with and without controls, no conv bias, F16 and BF16 tensors) into
// DIR/fuzz_model_loader/, their config JSON and the test HF checkpoints' config.json into
// DIR/fuzz_config_json/, and small valid .npy
// files (every dtype the reader takes, format versions 1 to 3) into DIR/fuzz_npy/.
//   make_fuzz_seeds DIR
#include "model/model_file.h"
#include "model/npy.h"
#include "model/safetensors.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace st = mw::safetensors;

namespace {

mw::Model small_model(mw::ModelConfig c, uint64_t seed) {
    mw::Model m(c);
    m.init_random(seed, 0.3f);
    return m;
}

std::vector<mw::Model> seed_models() {
    std::vector<mw::Model> models;
    mw::ModelConfig tied = mw::make_config(mw::IoKind::mulaw8, 4, 1, 2);
    tied.d_conv = 2;
    models.push_back(small_model(tied, 1));

    mw::ModelConfig untied = mw::make_config(mw::IoKind::mulaw8, 2, 2, 2);
    untied.tie_embeddings = false;
    untied.conv_bias = false;
    untied.untrained = true;
    models.push_back(small_model(untied, 2));

    mw::ModelConfig effect = mw::make_config(mw::IoKind::continuous, 4, 1, 2);
    effect.skip = true;
    effect.controls.push_back({"drive", "", 0.0f, 10.0f, 5.0f, false});
    effect.controls.push_back({"tone", "Hz", 100.0f, 8000.0f, 1000.0f, true});
    effect.description = "seed effect";
    effect.training_json = R"({"data":"seed.wav","steps":10,"metric":{"esr":0.1}})";
    models.push_back(small_model(effect, 3));

    mw::ModelConfig plain = mw::make_config(mw::IoKind::continuous, 3, 2, 1, 1);
    plain.d_conv = 1;
    models.push_back(small_model(plain, 4));

    mw::ModelConfig pooled = mw::make_config(mw::IoKind::mulaw8, 2, 3, 2);  // a pooled generator
    pooled.pool = {2};
    pooled.d_conv = 2;
    models.push_back(small_model(pooled, 5));
    return models;
}

// The same model with every tensor stored as F16 or BF16.
std::vector<uint8_t> half_precision_file(const mw::Model& m, st::DType dtype) {
    std::vector<std::vector<uint16_t>> storage;
    std::vector<st::TensorToWrite> tensors;
    for (const mw::TensorSpec& spec : m.tensors()) {
        const float* w = m.tensor(spec.name);
        std::vector<uint16_t> bits(size_t(spec.numel()));
        for (size_t i = 0; i < bits.size(); ++i)
            bits[i] = dtype == st::DType::F16 ? st::float_to_f16(w[i]) : st::float_to_bf16(w[i]);
        storage.push_back(std::move(bits));
        tensors.push_back({spec.name, dtype, spec.shape, storage.back().data()});
    }
    return st::to_bytes({{"format", "pt"}, {"mambawave", mw::config_to_json(m.config())}}, tensors);
}

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

// A .npy image written by hand, for the dtypes and versions write_npy_* do not make.
std::vector<uint8_t> npy_image(const std::string& descr, const std::string& shape, const std::vector<uint8_t>& body,
                               int major) {
    const std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }\n";
    std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
    for (int i = 0; i < (major == 1 ? 2 : 4); ++i) b.push_back(uint8_t(header.size() >> (8 * i)));
    b.insert(b.end(), header.begin(), header.end());
    b.insert(b.end(), body.begin(), body.end());
    return b;
}

void write_npy_seeds(const fs::path& dir) {
    fs::create_directories(dir);
    const float f[6] = {0.5f, -1.0f, 2.0f, 0.0f, 1e-3f, -7.25f};
    const int32_t i[4] = {0, -3, 255, 1 << 20};
    mw::write_npy_f32((dir / "f4_2x3.npy").string(), {2, 3}, f);
    mw::write_npy_f32((dir / "f4_scalar.npy").string(), {}, f);
    mw::write_npy_i32((dir / "i4_4.npy").string(), {4}, i);
    const std::vector<uint8_t> eight = {1, 2, 3, 4, 5, 6, 7, 8};
    write_file(dir / "u1_v2.npy", npy_image("|u1", "(8,)", eight, 2));
    write_file(dir / "b1_v3.npy", npy_image("|b1", "(2, 4)", eight, 3));
    write_file(dir / "i2.npy", npy_image("<i2", "(4,)", eight, 1));
    write_file(dir / "f2.npy", npy_image("<f2", "(2, 2)", eight, 1));
    write_file(dir / "f8.npy", npy_image("<f8", "(1,)", eight, 1));
    write_file(dir / "i8_empty.npy", npy_image("<i8", "(0, 3)", {}, 1));
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_fuzz_seeds DIR\n");
        return 2;
    }
    const fs::path files = fs::path(argv[1]) / "fuzz_model_loader";
    const fs::path configs = fs::path(argv[1]) / "fuzz_config_json";
    fs::create_directories(files);
    fs::create_directories(configs);
    const std::vector<mw::Model> models = seed_models();
    for (size_t i = 0; i < models.size(); ++i) {
        const std::string n = std::to_string(i);
        write_file(files / ("model" + n + ".safetensors"), mw::save_model_to_bytes(models[i]));
        const std::string json = mw::config_to_json(models[i].config());
        write_file(configs / ("config" + n + ".json"), std::vector<uint8_t>(json.begin(), json.end()));
    }
    write_file(files / "model_f16.safetensors", half_precision_file(models[2], st::DType::F16));
    write_file(files / "model_bf16.safetensors", half_precision_file(models[0], st::DType::BF16));
    // HF checkpoints' config.json too (the config fuzzer tries both parsers on every input)
    const fs::path hf_data = fs::path(MW_TEST_DATA_DIR);
    for (const char* hf : {"hf_tiny_tied", "hf_small_untied"}) {
        std::ifstream in(hf_data / hf / "config.json", std::ios::binary);
        const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!bytes.empty()) write_file(configs / (std::string(hf) + "_config.json"), bytes);
    }
    write_npy_seeds(fs::path(argv[1]) / "fuzz_npy");
    std::printf("make_fuzz_seeds: %zu model files, %zu configs (and the HF checkpoints' config.json), 9 npy files in %s\n",
                models.size() + 2, models.size(), argv[1]);
    return 0;
}
