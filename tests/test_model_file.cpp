// Model files: MambaWave .safetensors round trips, HF checkpoint directories, F16/BF16
// conversion, and one refusal per class of bad file (each message checked for the file, the
// tensor or field, and expected vs found).
#include "model/model_file.h"
#include "kernels/fixed_dt.h"
#include "model/safetensors.h"
#include "tests/temp_dir.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

namespace fs = std::filesystem;
namespace st = mw::safetensors;
using Catch::Contains;
using mw::IoKind;
using mw::Model;
using mw::ModelConfig;

// The load is refused with a ModelError whose message matches.
#define REQUIRE_MODEL_ERROR(expr, matcher)      \
    do {                                        \
        REQUIRE_THROWS_AS(expr, mw::ModelError); \
        REQUIRE_THROWS_WITH(expr, matcher);     \
    } while (false)

namespace {

const std::string kName = "test.safetensors";   // the name load_bytes gives in messages
const std::string kDataDir = MW_TEST_DATA_DIR;

ModelConfig generator_config(bool tie) {
    ModelConfig c = mw::make_config(IoKind::mulaw8, 8, 2, 4);
    c.tie_embeddings = tie;
    c.description = "tiny test generator";
    return c;
}

ModelConfig effect_config() {
    ModelConfig c = mw::make_config(IoKind::continuous, 8, 2, 4);
    c.sample_rate_hz = 44100.0;
    c.skip = true;
    c.norm_eps = 1e-6f;
    c.controls.push_back({"drive", "", 0.0f, 10.0f, 2.5f, false});
    c.controls.push_back({"cutoff", "Hz", 20.0f, 20000.0f, 1000.0f, true});
    c.untrained = true;
    c.description = "a drive pedal, \"quoted\" and ünïcode";
    c.training_json = R"({"data":"pedal.wav","loss":[0.5,0.25],"steps":1200})";
    return c;
}

Model random_model(const ModelConfig& c, uint64_t seed) {
    Model m(c);
    m.init_random(seed, 0.3f);
    return m;
}

// ---- building files by hand ----------------------------------------------------------------

struct Part {
    std::string name;
    st::DType dtype = st::DType::F32;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

// A file's contents before writing, for tests that break one thing.
struct Parts {
    std::map<std::string, std::string> metadata;
    std::vector<Part> tensors;

    Part& at(const std::string& name) {
        auto it = std::find_if(tensors.begin(), tensors.end(), [&](const Part& p) { return p.name == name; });
        REQUIRE(it != tensors.end());
        return *it;
    }
    void erase(const std::string& name) {
        std::erase_if(tensors, [&](const Part& p) { return p.name == name; });
    }
};

std::vector<uint8_t> f32_bytes(const float* values, int64_t n) {
    std::vector<uint8_t> b(size_t(n) * 4);
    std::memcpy(b.data(), values, b.size());
    return b;
}

// What save_model would write, as editable parts.
Parts parts_of(const Model& m) {
    Parts p;
    p.metadata = {{"format", "pt"}, {"mambawave", mw::config_to_json(m.config())}};
    for (const mw::TensorSpec& s : m.tensors())
        p.tensors.push_back({s.name, st::DType::F32, s.shape, f32_bytes(m.tensor(s.name), s.numel())});
    return p;
}

std::vector<uint8_t> bytes_of(const Parts& p) {
    std::vector<st::TensorToWrite> t;
    for (const Part& part : p.tensors) t.push_back({part.name, part.dtype, part.shape, part.bytes.data()});
    return st::to_bytes(p.metadata, t);
}

// A file from a header written out by hand, followed by `data_bytes` zero bytes.
std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes) {
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i) file[size_t(i)] = char(uint8_t(uint64_t(header.size()) >> (8 * i)));
    file += header;
    file.append(data_bytes, '\0');
    return std::vector<uint8_t>(file.begin(), file.end());
}

Model load_bytes(const std::vector<uint8_t>& b) {
    return mw::load_model_from_bytes(kName, b.data(), b.size());
}

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

std::string read_text(const std::string& path) {
    const std::vector<uint8_t> b = read_bytes(path);
    return std::string(b.begin(), b.end());
}

// `text` with `from` replaced by `to` once (which must be there).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

// A valid generator file whose config JSON has been edited.
std::vector<uint8_t> with_config_edit(const std::string& from, const std::string& to) {
    Parts p = parts_of(random_model(generator_config(true), 7));
    p.metadata["mambawave"] = replaced(p.metadata["mambawave"], from, to);
    return bytes_of(p);
}

void require_same_config(const ModelConfig& a, const ModelConfig& b) {
    CHECK(a.d_model == b.d_model);
    CHECK(a.n_layers == b.n_layers);
    CHECK(a.d_inner == b.d_inner);
    CHECK(a.d_state == b.d_state);
    CHECK(a.d_conv == b.d_conv);
    CHECK(a.dt_rank == b.dt_rank);
    CHECK(a.norm_eps == b.norm_eps);
    CHECK(a.conv_bias == b.conv_bias);
    CHECK(a.tie_embeddings == b.tie_embeddings);
    CHECK(a.kind == b.kind);
    CHECK(a.vocab == b.vocab);
    CHECK(a.sample_rate_hz == b.sample_rate_hz);
    CHECK(a.skip == b.skip);
    CHECK(a.labels == b.labels);
    CHECK(a.label_prefix == b.label_prefix);
    CHECK(a.label_null == b.label_null);
    CHECK(a.untrained == b.untrained);
    CHECK(a.description == b.description);
    CHECK(a.training_json == b.training_json);
    REQUIRE(a.controls.size() == b.controls.size());
    for (size_t i = 0; i < a.controls.size(); ++i) {
        CHECK(a.controls[i].name == b.controls[i].name);
        CHECK(a.controls[i].unit == b.controls[i].unit);
        CHECK(a.controls[i].min_value == b.controls[i].min_value);
        CHECK(a.controls[i].max_value == b.controls[i].max_value);
        CHECK(a.controls[i].default_value == b.controls[i].default_value);
        CHECK(a.controls[i].log_scale == b.controls[i].log_scale);
    }
}

// Every tensor bit-identical.
void require_same_weights(const Model& a, const Model& b) {
    REQUIRE(a.tensors().size() == b.tensors().size());
    for (const mw::TensorSpec& s : a.tensors()) {
        INFO("tensor " << s.name);
        CHECK(std::memcmp(a.tensor(s.name), b.tensor(s.name), size_t(s.numel()) * 4) == 0);
    }
}

} // namespace

// ---- round trips ---------------------------------------------------------------------------

TEST_CASE("save then load is bit-exact for generators and effects", "[model_file]") {
    mw::test::TempDir dir;
    const std::vector<std::pair<std::string, ModelConfig>> cases = {
        {"tied generator", generator_config(true)},
        {"untied generator", generator_config(false)},
        {"effect with controls", effect_config()},
        {"no conv bias", [] { ModelConfig c = generator_config(true); c.conv_bias = false; return c; }()},
    };
    for (const auto& [label, config] : cases) {
        INFO(label);
        const Model saved = random_model(config, 42);
        const std::string path = dir.file("m.safetensors");
        mw::save_model(saved, path);
        const Model loaded = mw::load_model(path);
        require_same_config(loaded.config(), saved.config());
        require_same_weights(loaded, saved);
        if (config.kind == IoKind::mulaw8)
            CHECK((loaded.view().lm_head_w == loaded.view().embed_w) == config.tie_embeddings);
    }
    CHECK(dir.entries() == 1);  // no temporary file left behind
}

TEST_CASE("the saved file is plain safetensors that HF tooling accepts", "[model_file]") {
    mw::test::TempDir dir;
    const Model m = random_model(generator_config(false), 3);
    mw::save_model(m, dir.file("g.safetensors"));
    const std::vector<uint8_t> b = read_bytes(dir.file("g.safetensors"));
    const st::File f = st::parse("g", b.data(), b.size());
    CHECK(f.metadata.at("format") == "pt");
    CHECK(f.metadata.count("mambawave") == 1);
    CHECK((b.size() - f.data_bytes) % 8 == 0);  // data section 8-byte aligned
    REQUIRE(f.tensors.size() == m.tensors().size());
    for (const mw::TensorSpec& s : m.tensors()) {
        const st::TensorInfo* t = f.find(s.name);
        REQUIRE(t);
        CHECK(t->dtype == st::DType::F32);
        CHECK(t->shape == s.shape);
    }
    // The config names the HF architecture and fields that transformers reads.
    const std::string& json = f.metadata.at("mambawave");
    CHECK_THAT(json, Contains("\"model_type\": \"mamba\"") && Contains("MambaForCausalLM") &&
                         Contains("\"vocab_size\": 256") && Contains("\"format_version\": 1") &&
                         Contains("\"layer_norm_epsilon\": 1e-05"));
}

TEST_CASE("LTI layers: B and C instead of x_proj and dt_proj.weight, saved as format 2, bit-exact", "[model_file]") {
    mw::test::TempDir dir;
    ModelConfig mixed = effect_config();
    mixed.lti_layers = {1};
    ModelConfig all = generator_config(false);
    all.lti_layers = {0, 1};
    for (const ModelConfig& config : {mixed, all}) {
        const Model saved = random_model(config, 5);
        std::vector<std::string> names;
        for (const mw::TensorSpec& s : saved.tensors()) names.push_back(s.name);
        auto has = [&](const std::string& n) { return std::count(names.begin(), names.end(), n) == 1; };
        for (int l = 0; l < config.n_layers; ++l) {
            const std::string p = "backbone.layers." + std::to_string(l) + ".mixer.";
            const bool lti = config.is_lti(l);
            INFO("layer " << l << (lti ? " (LTI)" : " (selective)"));
            CHECK(has(p + "B") == lti);
            CHECK(has(p + "C") == lti);
            CHECK(has(p + "x_proj.weight") == !lti);
            CHECK(has(p + "dt_proj.weight") == !lti);
            CHECK(has(p + "dt_proj.bias"));
            CHECK(mw::kernels::is_lti(saved.view().layers[l]) == lti);
        }
        const std::string path = dir.file("lti.safetensors");
        mw::save_model(saved, path);
        const Model loaded = mw::load_model(path);
        CHECK(loaded.config().lti_layers == config.lti_layers);
        require_same_config(loaded.config(), saved.config());
        require_same_weights(loaded, saved);
        const std::vector<uint8_t> b = read_bytes(path);
        const st::File f = st::parse("lti", b.data(), b.size());
        CHECK_THAT(f.metadata.at("mambawave"), Contains("\"format_version\": 2") && Contains("\"lti_layers\": ["));
    }
    // Without LTI layers a file stays format 1, which every earlier build reads.
    CHECK_THAT(mw::config_to_json(effect_config()), Contains("\"format_version\": 1") && !Contains("lti_layers"));
}

TEST_CASE("bad file: LTI layers that do not fit the config are named", "[model_file]") {
    ModelConfig c = generator_config(true);
    c.lti_layers = {1};
    Parts p = parts_of(random_model(c, 2));
    auto edit = [&](const std::string& from, const std::string& to) {
        Parts q = p;
        q.metadata["mambawave"] = replaced(q.metadata["mambawave"], from, to);
        return bytes_of(q);
    };
    const std::string lti = "\"lti_layers\": [\n    1\n  ]";
    REQUIRE_THAT(p.metadata["mambawave"], Contains(lti));
    REQUIRE_MODEL_ERROR(load_bytes(edit(lti, "\"lti_layers\": [2]")),
                        Contains(kName) && Contains("'lti_layers' holds layer 2, expected a layer index 0..1"));
    REQUIRE_MODEL_ERROR(load_bytes(edit(lti, "\"lti_layers\": [1, 0]")),
                        Contains("'lti_layers' is not in ascending order"));
    REQUIRE_MODEL_ERROR(load_bytes(edit(lti, "\"lti_layers\": 1")),
                        Contains("'lti_layers' is 1, expected an array of layer indices"));
    REQUIRE_MODEL_ERROR(load_bytes(edit(lti, "\"lti_layers\": [\"one\"]")),
                        Contains("'lti_layers[0]' is \"one\", expected a layer index"));
    // The config says layer 0 is LTI too, but the file holds a selective layer 0.
    REQUIRE_MODEL_ERROR(load_bytes(edit(lti, "\"lti_layers\": [0, 1]")),
                        Contains(kName) && Contains("'backbone.layers.0.mixer.B'") &&
                            Contains("'backbone.layers.0.mixer.C'") && Contains("lti_layers=[0,1]"));
    Parts q = p;
    q.erase("backbone.layers.1.mixer.C");
    REQUIRE_MODEL_ERROR(load_bytes(bytes_of(q)), Contains("1 tensor is missing: 'backbone.layers.1.mixer.C'"));
    Part& b = p.at("backbone.layers.1.mixer.B");
    b.shape = {4, 16};
    REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                        Contains("'backbone.layers.1.mixer.B' has shape [4, 16], expected [16, 4]"));
}

TEST_CASE("config JSON round trip keeps controls, io and the training record", "[model_file]") {
    const ModelConfig c = effect_config();
    const std::string json = mw::config_to_json(c);
    require_same_config(mw::config_from_json(json, "cfg"), c);
    CHECK_THAT(json, Contains("\"kind\": \"continuous\"") && Contains("\"n_cond\": 2") &&
                         Contains("\"scale\": \"log\"") && Contains("\"sample_rate\": 44100"));

    const ModelConfig g = generator_config(false);
    require_same_config(mw::config_from_json(mw::config_to_json(g), "cfg"), g);
}

// A generator told which label to make (io.labels, io.label_prefix: docs/DIGITS.md).
TEST_CASE("config JSON: a labelled generator's labels round-trip, and bad ones are named", "[model_file]") {
    ModelConfig g = generator_config(false);
    g.labels = {"0", "1", "seven"};
    g.label_prefix = 32;
    const std::string json = mw::config_to_json(g);
    CHECK_THAT(json, Contains("\"labels\": [") && Contains("\"label_prefix\": 32"));
    require_same_config(mw::config_from_json(json, "cfg"), g);
    CHECK(g.label_index("seven") == 2);
    CHECK(g.label_index("7") == -1);
    CHECK(g.label_tokens(2) == std::vector<int32_t>(32, 2));
    CHECK_THAT(mw::config_to_json(generator_config(false)), !Contains("label"));  // (none: nothing written)
    auto refused = [&](ModelConfig c, const std::string& words) {
        REQUIRE_MODEL_ERROR(c.validate("cfg"), Contains("cfg") && Contains(words));
    };
    ModelConfig c = g;
    c.labels = {"0"};
    refused(c, "'io.labels (their number)' is 1, expected 2..64");
    c = g;
    c.labels = {"0", "0"};
    refused(c, "names '0' twice");
    c = g;
    c.label_prefix = 0;
    refused(c, "'io.label_prefix' is 0, expected 1..4096");
    c = g;
    c.labels[1] = "";
    refused(c, "'io.labels[1]' is '', expected a name of 1..64 characters");
    c = effect_config();
    c.labels = {"a", "b"};
    c.label_prefix = 4;
    refused(c, "labels are for generators");
    // a null label (trained with label dropout): written only when set, and only with labels
    CHECK_THAT(json, !Contains("label_null"));
    c = g;
    c.label_null = true;
    CHECK(c.null_label() == 3);
    CHECK_THAT(mw::config_to_json(c), Contains("\"label_null\": true"));
    CHECK(mw::config_from_json(mw::config_to_json(c), "cfg").label_null);
    c = generator_config(false);
    c.label_null = true;
    refused(c, "'io.label_null' is true on a model without labels");
    // the model's own guidance weight: written only when set, only with labels, 0..20
    CHECK_THAT(json, !Contains("\"guidance\""));
    c = g;
    c.guidance = 2.5f;
    CHECK(mw::config_from_json(mw::config_to_json(c), "cfg").guidance == 2.5f);
    c.guidance = 21.0f;
    refused(c, "'io.guidance' is 21.000000, expected 0..20");
    c = generator_config(false);
    c.guidance = 2.0f;
    refused(c, "'io.guidance' is 2.000000 on a model without labels");
    REQUIRE_MODEL_ERROR(mw::config_from_json(std::string(json).replace(json.find("\"seven\""), 7, "7"), "cfg"),
                        Contains("'io.labels[2]' is 7, expected a label name (a string)"));
}

TEST_CASE("config JSON: unknown extra fields are ignored, defaults fill optional ones", "[model_file]") {
    const std::string json = R"({
        "format_version": 1, "hidden_size": 16, "num_hidden_layers": 2, "vocab_size": 256,
        "time_step_rank": "auto", "some_future_field": {"x": [1, 2]},
        "io": {"kind": "mulaw8", "sample_rate": 16000, "later": true}
    })";
    const ModelConfig c = mw::config_from_json(json, "cfg");
    CHECK(c.d_model == 16);
    CHECK(c.d_inner == 32);    // expand 2
    CHECK(c.dt_rank == 1);     // ceil(16 / 16)
    CHECK(c.d_state == 16);
    CHECK(c.d_conv == 4);
    CHECK(c.norm_eps == 1e-5f);
    CHECK(c.sample_rate_hz == 16000.0);
    CHECK(c.tie_embeddings);
    CHECK(c.training_json == "{}");
}

// ---- F16 and BF16 --------------------------------------------------------------------------

TEST_CASE("F16 and BF16 bit patterns convert exactly", "[model_file]") {
    CHECK(st::f16_to_float(0x3c00) == 1.0f);
    CHECK(st::f16_to_float(0xc000) == -2.0f);
    CHECK(st::f16_to_float(0x7bff) == 65504.0f);
    CHECK(st::f16_to_float(0x0001) == std::ldexp(1.0f, -24));   // smallest subnormal
    CHECK(st::f16_to_float(0x03ff) == std::ldexp(1023.0f, -24)); // largest subnormal
    CHECK(st::f16_to_float(0x0400) == std::ldexp(1.0f, -14));    // smallest normal
    CHECK(std::signbit(st::f16_to_float(0x8000)));
    CHECK(std::isinf(st::f16_to_float(0x7c00)));
    CHECK(std::isnan(st::f16_to_float(0x7e00)));
    CHECK(st::bf16_to_float(0x3f80) == 1.0f);
    CHECK(st::bf16_to_float(0xc2f7) == -123.5f);

    // Every finite half survives float -> half; rounding is to nearest even.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float f = st::f16_to_float(uint16_t(h));
        if (std::isnan(f)) continue;
        if (st::float_to_f16(f) != h) FAIL("half 0x" << std::hex << h << " did not round-trip");
    }
    CHECK(st::float_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie: down to even
    CHECK(st::float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie: up to even
    CHECK(st::float_to_f16(65520.0f) == 0x7c00);   // rounds past the largest finite
    CHECK(st::float_to_bf16(1.0f) == 0x3f80);
    CHECK(st::float_to_bf16(std::bit_cast<float>(0x3f808000u)) == 0x3f80);  // tie: to even
    CHECK(st::float_to_bf16(std::bit_cast<float>(0x3f818000u)) == 0x3f82);
}

TEST_CASE("F16 and BF16 tensors load as the floats they encode", "[model_file]") {
    for (const st::DType dtype : {st::DType::F16, st::DType::BF16}) {
        INFO("dtype " << st::to_string(dtype));
        const Model original = random_model(generator_config(false), 11);
        Model expected = original;  // what the half-precision values decode to
        Parts p = parts_of(original);
        for (Part& part : p.tensors) {
            const float* src = original.tensor(part.name);
            float* want = expected.tensor(part.name);
            const int64_t n = int64_t(part.bytes.size() / 4);
            part.dtype = dtype;
            part.bytes.assign(size_t(n) * 2, 0);
            for (int64_t i = 0; i < n; ++i) {
                const uint16_t bits = dtype == st::DType::F16 ? st::float_to_f16(src[i])
                                                              : st::float_to_bf16(src[i]);
                part.bytes[size_t(2 * i)] = uint8_t(bits & 0xff);
                part.bytes[size_t(2 * i + 1)] = uint8_t(bits >> 8);
                want[i] = dtype == st::DType::F16 ? st::f16_to_float(bits) : st::bf16_to_float(bits);
                REQUIRE(std::fabs(want[i] - src[i]) <= std::fabs(src[i]) * (1.0f / 64) + 1e-4f);
            }
        }
        const Model loaded = load_bytes(bytes_of(p));
        require_same_weights(loaded, expected);
    }
}

// ---- HF checkpoint directories -------------------------------------------------------------

TEST_CASE("HF checkpoint directories load: tied and untied", "[model_file]") {
    SECTION("tied: lm_head is the embedding matrix") {
        const Model m = mw::load_model(kDataDir + "/hf_tiny_tied");
        const ModelConfig& c = m.config();
        CHECK(c.kind == IoKind::mulaw8);
        CHECK(c.sample_rate_hz == 8000.0);
        CHECK(c.d_model == 16);
        CHECK(c.n_layers == 2);
        CHECK(c.d_inner == 32);
        CHECK(c.d_state == 16);
        CHECK(c.dt_rank == 1);
        CHECK(c.d_conv == 4);
        CHECK(c.tie_embeddings);
        CHECK(m.view().lm_head_w == m.view().embed_w);
        // A value read straight from the file matches.
        const std::vector<uint8_t> b = read_bytes(kDataDir + "/hf_tiny_tied/model.safetensors");
        const st::File f = st::parse("tied", b.data(), b.size());
        const st::TensorInfo& a_log = *f.find("backbone.layers.1.mixer.A_log");
        CHECK(a_log.shape == std::vector<int64_t>{32, 16});
        std::vector<float> direct(size_t(a_log.numel));
        f.read_floats(a_log, direct.data());
        CHECK(std::memcmp(direct.data(), m.tensor("backbone.layers.1.mixer.A_log"), direct.size() * 4) == 0);
    }
    SECTION("untied: its own lm_head") {
        const Model m = mw::load_model(kDataDir + "/hf_small_untied");
        const ModelConfig& c = m.config();
        CHECK(c.d_model == 32);
        CHECK(c.n_layers == 3);
        CHECK(c.d_inner == 64);
        CHECK(c.d_state == 8);
        CHECK(c.dt_rank == 2);
        CHECK_FALSE(c.tie_embeddings);
        CHECK(m.view().lm_head_w != m.view().embed_w);
        CHECK(m.view().lm_head_w == m.tensor("lm_head.weight"));
        CHECK(std::memcmp(m.view().lm_head_w, m.view().embed_w, 256 * 32 * 4) != 0);
    }
}

namespace {
// A copy of an HF test checkpoint in `dir`, with its config.json edited.
std::string copy_hf(const mw::test::TempDir& dir, const std::string& name, const std::string& from = "",
                    const std::string& to = "") {
    const std::string out = dir.file(name);
    fs::create_directories(out);
    fs::copy_file(kDataDir + "/" + name + "/model.safetensors", out + "/model.safetensors");
    std::string config = read_text(kDataDir + "/" + name + "/config.json");
    if (!from.empty()) config = replaced(config, from, to);
    write_text(out + "/config.json", config);
    return out;
}
} // namespace

TEST_CASE("HF checkpoint: a tied checkpoint that also stores lm_head.weight loads", "[model_file]") {
    mw::test::TempDir dir;
    const std::string hf = copy_hf(dir, "hf_tiny_tied");
    const std::vector<uint8_t> b = read_bytes(hf + "/model.safetensors");
    const st::File f = st::parse("tied", b.data(), b.size());
    Parts p;
    p.metadata = f.metadata;
    for (const auto& [name, info] : f.tensors)
        p.tensors.push_back({name, info.dtype, info.shape,
                             std::vector<uint8_t>(f.data + info.begin_byte, f.data + info.end_byte)});
    Part lm_head = p.at("backbone.embeddings.weight");
    lm_head.name = "lm_head.weight";
    p.tensors.push_back(lm_head);
    write_bytes(hf + "/model.safetensors", bytes_of(p));
    const Model m = mw::load_model(hf);
    CHECK(m.view().lm_head_w == m.view().embed_w);
}

TEST_CASE("HF checkpoint: time_step_rank \"auto\" and an absent intermediate_size", "[model_file]") {
    mw::test::TempDir dir;
    std::string hf = copy_hf(dir, "hf_small_untied", "\"time_step_rank\": 2", "\"time_step_rank\": \"auto\"");
    write_text(hf + "/config.json",
               replaced(read_text(hf + "/config.json"), "\"intermediate_size\": 64,", ""));
    const Model m = mw::load_model(hf);
    CHECK(m.config().dt_rank == 2);   // ceil(32 / 16)
    CHECK(m.config().d_inner == 64);  // expand 2 x hidden_size 32
}

TEST_CASE("HF checkpoint: refusals name the file and the field", "[model_file]") {
    mw::test::TempDir dir;
    SECTION("missing model.safetensors") {
        const std::string hf = copy_hf(dir, "hf_tiny_tied");
        fs::remove(hf + "/model.safetensors");
        REQUIRE_MODEL_ERROR(mw::load_model(hf), Contains(hf) && Contains("no model.safetensors"));
    }
    SECTION("missing config.json") {
        const std::string hf = copy_hf(dir, "hf_tiny_tied");
        fs::remove(hf + "/config.json");
        REQUIRE_MODEL_ERROR(mw::load_model(hf), Contains(hf) && Contains("no config.json"));
    }
    SECTION("vocab_size other than 256") {
        const std::string hf = copy_hf(dir, "hf_tiny_tied", "\"vocab_size\": 256", "\"vocab_size\": 50280");
        REQUIRE_MODEL_ERROR(mw::load_model(hf), Contains("config.json") && Contains("'vocab_size' is 50280") &&
                                                    Contains("expected 256") && Contains("mu-law"));
    }
    SECTION("use_bias true") {
        const std::string hf = copy_hf(dir, "hf_tiny_tied", "\"use_bias\": false", "\"use_bias\": true");
        REQUIRE_MODEL_ERROR(mw::load_model(hf), Contains("config.json") && Contains("'use_bias' is true") &&
                                                    Contains("not support"));
    }
    SECTION("a Mamba-2 config") {
        const std::string hf = copy_hf(dir, "hf_tiny_tied", "\"model_type\": \"mamba\"", "\"model_type\": \"mamba2\"");
        REQUIRE_MODEL_ERROR(mw::load_model(hf), Contains("'model_type' is 'mamba2', expected 'mamba'"));
    }
    SECTION("config and weights disagree: the shape error says which fields") {
        const std::string hf = copy_hf(dir, "hf_tiny_tied", "\"state_size\": 16", "\"state_size\": 8");
        REQUIRE_MODEL_ERROR(mw::load_model(hf),
                            Contains("model.safetensors: tensor 'backbone.layers.0.mixer.x_proj.weight' has "
                                     "shape [33, 32], expected [17, 32] (from time_step_rank=1 + 2 x "
                                     "state_size=8, intermediate_size=32)"));
    }
    SECTION("config.json is not JSON") {
        const std::string hf = copy_hf(dir, "hf_tiny_tied");
        write_text(hf + "/config.json", "{ \"hidden_size\": 16,, }");
        REQUIRE_MODEL_ERROR(mw::load_model(hf), Contains("config.json") && Contains("not valid JSON") &&
                                                    Contains("parse error"));
    }
    SECTION("a MambaWave-only loader call on an HF weights file says what to do") {
        REQUIRE_MODEL_ERROR(mw::load_model(kDataDir + "/hf_tiny_tied/model.safetensors"),
                            Contains("'mambawave' is missing") && Contains("load its directory"));
    }
}

// ---- bad files: one refusal per class ------------------------------------------------------

TEST_CASE("bad file: a missing tensor is named", "[model_file]") {
    Parts p = parts_of(random_model(generator_config(true), 1));
    p.erase("backbone.layers.1.mixer.D");
    p.erase("backbone.norm_f.weight");
    REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                        Contains(kName) && Contains("2 tensors are missing") &&
                            Contains("'backbone.layers.1.mixer.D'") && Contains("'backbone.norm_f.weight'"));
}

TEST_CASE("bad file: an unexpected tensor is named", "[model_file]") {
    Parts p = parts_of(random_model(generator_config(true), 1));
    p.tensors.push_back({"backbone.layers.7.mixer.D", st::DType::F32, {2}, std::vector<uint8_t>(8, 0)});
    REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                        Contains(kName) && Contains("unexpected tensor 'backbone.layers.7.mixer.D'"));
}

TEST_CASE("bad file: a wrong shape gives found, expected and the config fields", "[model_file]") {
    Parts p = parts_of(random_model(generator_config(true), 1));
    Part& a_log = p.at("backbone.layers.1.mixer.A_log");  // [16, 4] for d_inner 16, d_state 4
    a_log.shape = {16, 2};
    a_log.bytes.resize(16 * 2 * 4);
    REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                        Contains(kName + ": tensor 'backbone.layers.1.mixer.A_log' has shape [16, 2], "
                                         "expected [16, 4] (from intermediate_size=16, state_size=4)"));
}

TEST_CASE("bad file: an unsupported dtype is named", "[model_file]") {
    const std::string header = R"({"__metadata__":{"format":"pt"},)"
                               R"("backbone.norm_f.weight":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})";
    REQUIRE_MODEL_ERROR(load_bytes(raw_file(header, 16)),
                        Contains(kName) && Contains("'backbone.norm_f.weight'") && Contains("dtype 'I64'") &&
                            Contains("supported: F32, F16, BF16"));
}

TEST_CASE("bad file: NaN or Inf weights name the tensor and the first bad index", "[model_file]") {
    const Model m = random_model(generator_config(true), 1);
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
        Parts p = parts_of(m);
        Part& w = p.at("backbone.layers.0.mixer.in_proj.weight");  // [32, 8]
        std::memcpy(w.bytes.data() + 4 * (8 * 2 + 5), &bad, 4);     // element [2, 5]
        std::memcpy(w.bytes.data() + 4 * (8 * 3 + 1), &bad, 4);     // a later one, not reported
        REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                            Contains(kName) && Contains("'backbone.layers.0.mixer.in_proj.weight'") &&
                                Contains(std::isnan(bad) ? "(NaN)" : "(Inf)") &&
                                Contains("flat index 21 (element [2, 5])"));
    }
}

TEST_CASE("bad file: truncated anywhere", "[model_file]") {
    const std::vector<uint8_t> good = bytes_of(parts_of(random_model(generator_config(true), 1)));
    REQUIRE_NOTHROW(load_bytes(good));
    const auto cut = [&](size_t n) { return std::vector<uint8_t>(good.begin(), good.begin() + long(n)); };
    REQUIRE_MODEL_ERROR(load_bytes(cut(5)), Contains(kName) && Contains("5 bytes long") && Contains("truncated"));
    REQUIRE_MODEL_ERROR(load_bytes(cut(100)), Contains(kName) && Contains("only 92 bytes follow") &&
                                                  Contains("truncated"));
    REQUIRE_MODEL_ERROR(load_bytes(cut(good.size() - 1)),
                        Contains(kName) && Contains("outside the data section") && Contains("truncated"));
    // Every cut point is refused cleanly.
    for (size_t n = 0; n < good.size(); n += 97) REQUIRE_THROWS_AS(load_bytes(cut(n)), mw::ModelError);
}

TEST_CASE("bad file: header length out of bounds", "[model_file]") {
    std::vector<uint8_t> b = bytes_of(parts_of(random_model(generator_config(true), 1)));
    for (int i = 0; i < 8; ++i) b[size_t(i)] = 0xff;
    REQUIRE_MODEL_ERROR(load_bytes(b), Contains(kName) && Contains("header length is 18446744073709551615 bytes") &&
                                           Contains("expected 2..100000000"));
    const uint64_t big = 200'000'000;
    for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(big >> (8 * i));
    REQUIRE_MODEL_ERROR(load_bytes(b), Contains("header length is 200000000 bytes"));
    REQUIRE_MODEL_ERROR(load_bytes(raw_file("{", 0)), Contains("header length is 1 bytes"));
}

TEST_CASE("bad file: header not JSON, or not an object", "[model_file]") {
    REQUIRE_MODEL_ERROR(load_bytes(raw_file("{\"a\": [1, 2", 0)),
                        Contains(kName) && Contains("header is not valid JSON") && Contains("parse error"));
    REQUIRE_MODEL_ERROR(load_bytes(raw_file("[1, 2, 3]", 0)), Contains("expected a JSON object"));
    REQUIRE_MODEL_ERROR(load_bytes(raw_file(std::string(1000, '[') + std::string(1000, ']'), 0)),
                        Contains("nests deeper than 64 levels"));
}

TEST_CASE("bad file: inconsistent tensor entries in the header", "[model_file]") {
    SECTION("data_offsets disagree with dtype x shape") {
        const std::string h = R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
        REQUIRE_MODEL_ERROR(load_bytes(raw_file(h, 8)),
                            Contains("tensor 'x' has 8 bytes of data, expected 12 (F32 [3])"));
    }
    SECTION("overlapping tensors") {
        const std::string h = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
        REQUIRE_MODEL_ERROR(load_bytes(raw_file(h, 12)), Contains("tensors 'x' and 'y' overlap"));
    }
    SECTION("negative dimension") {
        const std::string h = R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})";
        REQUIRE_MODEL_ERROR(load_bytes(raw_file(h, 8)), Contains("tensor 'x'") && Contains("non-negative integer"));
    }
    SECTION("element count overflows") {
        const std::string h = R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})";
        REQUIRE_MODEL_ERROR(load_bytes(raw_file(h, 8)), Contains("tensor 'x'") && Contains("overflows"));
    }
    SECTION("no data_offsets") {
        const std::string h = R"({"x":{"dtype":"F32","shape":[2]}})";
        REQUIRE_MODEL_ERROR(load_bytes(raw_file(h, 8)), Contains("tensor 'x' has no 'data_offsets'"));
    }
}

TEST_CASE("bad file: metadata missing or malformed", "[model_file]") {
    Parts p = parts_of(random_model(generator_config(true), 1));
    SECTION("no mambawave entry") {
        p.metadata.erase("mambawave");
        REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                            Contains(kName) && Contains("metadata entry 'mambawave' is missing"));
    }
    SECTION("no __metadata__ at all") {
        p.metadata.clear();
        REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)), Contains("'mambawave' is missing"));
    }
    SECTION("a metadata value that is not a string") {
        const std::string h = R"({"__metadata__":{"mambawave":{"hidden_size":8}}})";
        REQUIRE_MODEL_ERROR(load_bytes(raw_file(h, 0)),
                            Contains("metadata entry 'mambawave' is an object, expected a string"));
    }
    SECTION("config text that is not JSON") {
        p.metadata["mambawave"] = "{\"hidden_size\": 8";
        REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                            Contains(kName) && Contains("model config is not valid JSON") && Contains("parse error"));
    }
    SECTION("a number too large for a double, in the config and in the header") {
        p.metadata["mambawave"] = replaced(p.metadata["mambawave"], "\"state_size\": 4", "\"state_size\": 1e999");
        REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)), Contains("model config is not valid JSON") &&
                                                         Contains("number overflow"));
        const std::string h = R"({"x":{"dtype":"F32","shape":[1e999],"data_offsets":[0,8]}})";
        REQUIRE_MODEL_ERROR(load_bytes(raw_file(h, 8)), Contains("header is not valid JSON"));
    }
    SECTION("a required field absent") {
        p.metadata["mambawave"] = replaced(p.metadata["mambawave"], "\"hidden_size\"", "\"hidden_size_x\"");
        REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                            Contains(kName) && Contains("config field 'hidden_size' is missing"));
    }
    SECTION("a field of the wrong type") {
        p.metadata["mambawave"] = replaced(p.metadata["mambawave"], "\"state_size\": 4", "\"state_size\": \"4\"");
        REQUIRE_MODEL_ERROR(load_bytes(bytes_of(p)),
                            Contains("config field 'state_size' is \"4\", expected an integer"));
    }
}

TEST_CASE("bad file: unknown io.kind names the value and the allowed ones", "[model_file]") {
    REQUIRE_MODEL_ERROR(load_bytes(with_config_edit("\"kind\": \"mulaw8\"", "\"kind\": \"granular\"")),
                        Contains(kName) && Contains("'io.kind' is 'granular'") &&
                            Contains("expected one of: mulaw8, continuous"));
}

TEST_CASE("bad file: a newer format_version asks for a newer MambaWave", "[model_file]") {
    REQUIRE_MODEL_ERROR(load_bytes(with_config_edit("\"format_version\": 1", "\"format_version\": 4")),
                        Contains(kName) && Contains("this file needs a newer MambaWave (file format 4, "
                                                    "this build reads up to 3)"));
    REQUIRE_MODEL_ERROR(load_bytes(with_config_edit("\"format_version\": 1", "\"format_version\": 0")),
                        Contains("'format_version' is 0"));
}

TEST_CASE("bad file: config sizes and io fields out of range", "[model_file]") {
    REQUIRE_MODEL_ERROR(load_bytes(with_config_edit("\"hidden_size\": 8", "\"hidden_size\": 0")),
                        Contains(kName) && Contains("'hidden_size' is 0, expected 1..8192"));
    REQUIRE_MODEL_ERROR(load_bytes(with_config_edit("\"hidden_size\": 8", "\"hidden_size\": 99999999999")),
                        Contains("'hidden_size' is 99999999999"));
    REQUIRE_MODEL_ERROR(load_bytes(with_config_edit("\"sample_rate\": 8000", "\"sample_rate\": 10")),
                        Contains("'io.sample_rate' is 10"));
    REQUIRE_MODEL_ERROR(load_bytes(with_config_edit("\"n_cond\": 0", "\"n_cond\": 1")),
                        Contains("'io.n_cond' is 1 but 'io.controls' has 0 entries"));
    // A huge config with tiny weights is refused by the tensor checks, before any allocation.
    REQUIRE_MODEL_ERROR(load_bytes(with_config_edit("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 256")),
                        Contains("tensors are missing") && Contains("and "));
}

TEST_CASE("load_model: a path that is not there, or not a file", "[model_file]") {
    mw::test::TempDir dir;
    REQUIRE_MODEL_ERROR(mw::load_model(dir.file("nope.safetensors")),
                        Contains(dir.file("nope.safetensors")) && Contains("no such file"));
    write_bytes(dir.file("empty.safetensors"), {});
    REQUIRE_MODEL_ERROR(mw::load_model(dir.file("empty.safetensors")),
                        Contains("empty.safetensors") && Contains("0 bytes long"));
}

// ---- saving --------------------------------------------------------------------------------

TEST_CASE("save to an unwritable place throws and leaves nothing behind", "[model_file]") {
    mw::test::TempDir dir;
    const Model m = random_model(generator_config(true), 5);
    SECTION("directory does not exist") {
        const std::string path = dir.file("no/such/dir/m.safetensors");
        REQUIRE_MODEL_ERROR(mw::save_model(m, path), Contains(path) && Contains("cannot create"));
        CHECK(dir.entries() == 0);
    }
    SECTION("parent is a regular file") {
        write_bytes(dir.file("plain"), {1, 2, 3});
        REQUIRE_MODEL_ERROR(mw::save_model(m, dir.file("plain/m.safetensors")), Contains("cannot create"));
        CHECK(dir.entries() == 1);
    }
    SECTION("the target is a directory: the temporary file is written, then removed") {
        fs::create_directories(dir.file("m.safetensors/inside"));
        REQUIRE_MODEL_ERROR(mw::save_model(m, dir.file("m.safetensors")),
                            Contains("m.safetensors") && Contains("cannot move the finished file into place"));
        CHECK(dir.entries() == 1);
    }
}

TEST_CASE("save over an existing file replaces it atomically", "[model_file]") {
    mw::test::TempDir dir;
    const std::string path = dir.file("m.safetensors");
    const Model a = random_model(generator_config(true), 1);
    const Model b = random_model(effect_config(), 2);
    mw::save_model(a, path);
    const std::vector<uint8_t> a_bytes = read_bytes(path);
    // A second name for the old file: if the save wrote into it in place, this would change.
    fs::create_hard_link(path, dir.file("old-link"));

    mw::save_model(b, path);
    require_same_weights(mw::load_model(path), b);
    CHECK(read_bytes(dir.file("old-link")) == a_bytes);  // a new file was renamed in
    CHECK(dir.entries() == 2);                             // no temporary file left

    // A save that fails leaves the existing file as it was.
    Model broken = b;
    broken.tensor("head.bias")[0] = std::numeric_limits<float>::quiet_NaN();
    const std::vector<uint8_t> b_bytes = read_bytes(path);
    REQUIRE_MODEL_ERROR(mw::save_model(broken, path), Contains("not saved") && Contains("'head.bias'"));
    CHECK(read_bytes(path) == b_bytes);
    CHECK(dir.entries() == 2);
}

TEST_CASE("every shipped preset loads", "[model_file]") {
    const fs::path presets = fs::path(MW_SOURCE_DIR) / "presets";
    int loaded = 0;
    for (const auto& entry : fs::directory_iterator(presets)) {
        if (entry.path().extension() != ".safetensors") continue;
        INFO(entry.path().string());
        const Model m = mw::load_model(entry.path().string());
        CHECK(m.parameter_count() > 0);
        ++loaded;
    }
    CHECK(loaded > 0);
}

TEST_CASE("the cheap presets keep their form: LTI layers in ts9 and a fixed step size in ds1_lite and a test record under 0.01",
          "[model_file]") {
    // Their CPU cost (docs/BENCHMARKS.md) holds only while every layer takes its decays from the
    // fast paths' table (an LTI layer's, or a fixed Δ's); a retrained file that lost the form
    // would silently cost twice as much.
    struct Preset { const char* name; bool lti; };
    for (const Preset& p : {Preset{"ts9.safetensors", true}, Preset{"ds1_lite.safetensors", false}}) {
        INFO(p.name);
        const Model m = mw::load_model((fs::path(MW_SOURCE_DIR) / "presets" / p.name).string());
        for (int l = 0; l < m.config().n_layers; ++l) {
            CHECK(mw::kernels::dt_fixed(m.view().layers[l], m.view().dims));
            CHECK(m.config().is_lti(l) == p.lti);
        }
        const auto record = nlohmann::json::parse(m.config().training_json);
        const double esr = record.at("evaluation").at("test").at("esr_mean").get<double>();
        CHECK(esr > 0.0);
        CHECK(esr < 0.01);
    }
}

TEST_CASE("a control's position on its range: linear, or equal ratios on a log axis, clamped", "[model_file]") {
    mw::ControlSpec drive{"drive", "", 0.0f, 1.0f, 0.5f, false};
    CHECK(drive.at(0.0f) == 0.0f);
    CHECK(drive.at(0.25f) == 0.25f);
    CHECK(drive.at(1.0f) == 1.0f);
    CHECK(drive.at(-1.0f) == 0.0f);  // a pedal's position past either end stays at that end
    CHECK(drive.at(2.0f) == 1.0f);
    mw::ControlSpec tone{"tone", "Hz", 100.0f, 1000.0f, 400.0f, true};
    CHECK(tone.at(0.0f) == Approx(100.0f));
    CHECK(tone.at(0.5f) == Approx(316.2278f).epsilon(1e-6));  // the geometric middle
    CHECK(tone.at(1.0f) == Approx(1000.0f));
    // every step of travel multiplies by the same ratio, and the network sees it evenly spaced
    for (float t = 0.0f; t < 0.95f; t += 0.1f) {
        CHECK(tone.at(t + 0.1f) / tone.at(t) == Approx(std::pow(10.0f, 0.1f)).epsilon(1e-5));
        CHECK(tone.normalise(tone.at(t)) == Approx(2.0f * t - 1.0f).margin(1e-5));
    }
    // a log axis needs a positive range; otherwise the control sweeps linearly
    mw::ControlSpec level{"level", "dB", -20.0f, 20.0f, 0.0f, true};
    CHECK(level.at(0.5f) == 0.0f);
}
