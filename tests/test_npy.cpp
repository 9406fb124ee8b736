// .npy files: round trips, every dtype, every refusal.
#include "model/npy.h"
#include "temp_dir.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>

using mw::NpyError;

namespace {

// A .npy image: magic, version, header length, the header dict (newline-terminated), body.
std::vector<uint8_t> npy_bytes(const std::string& dict, const std::vector<uint8_t>& body,
                               int major = 1) {
    const std::string header = dict + "\n";
    std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
    const int length_bytes = major == 1 ? 2 : 4;
    for (int i = 0; i < length_bytes; ++i) b.push_back(uint8_t(header.size() >> (8 * i)));
    b.insert(b.end(), header.begin(), header.end());
    b.insert(b.end(), body.begin(), body.end());
    return b;
}

std::string dict_for(const std::string& descr, const std::string& shape,
                     const std::string& fortran = "False") {
    return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

// "(n,)", a 1-D shape tuple.
std::string tuple_1d(size_t n) {
    std::string s = "(";
    s += std::to_string(n);
    return s + ",)";
}

template <class T>
std::vector<uint8_t> body_of(std::initializer_list<T> values) {
    std::vector<uint8_t> b(values.size() * sizeof(T));
    std::memcpy(b.data(), values.begin(), b.size());
    return b;
}

mw::NpyArray parse(const std::vector<uint8_t>& bytes) {
    return mw::parse_npy("test.npy", bytes.data(), bytes.size());
}

void require_refused(const std::vector<uint8_t>& bytes, const std::string& words) {
    try {
        parse(bytes);
        FAIL("parse_npy accepted a bad file; expected an error containing '" << words << "'");
    } catch (const NpyError& e) {
        INFO(e.what());
        CHECK(std::string(e.what()).find("test.npy") != std::string::npos);
        CHECK(std::string(e.what()).find(words) != std::string::npos);
    }
}

} // namespace

TEST_CASE("npy float32 and int32 round trip through files", "[npy]") {
    mw::test::TempDir dir;
    const std::vector<float> f = {0.5f, -1.25f, 3e-8f, 1e30f, 0.0f, -7.0f};
    mw::write_npy_f32(dir.file("f.npy"), {2, 3}, f.data());
    const mw::NpyArray a = mw::read_npy(dir.file("f.npy"));
    CHECK(a.dtype == "<f4");
    CHECK(a.shape == std::vector<int64_t>{2, 3});
    CHECK_FALSE(a.is_integer());
    REQUIRE(a.numel() == 6);
    for (size_t i = 0; i < f.size(); ++i) CHECK(a.values[i] == double(f[i]));

    const std::vector<int32_t> t = {0, 255, -2147483647 - 1, 2147483647};
    mw::write_npy_i32(dir.file("t.npy"), {4}, t.data());
    const mw::NpyArray b = mw::read_npy(dir.file("t.npy"));
    CHECK(b.dtype == "<i4");
    CHECK(b.shape == std::vector<int64_t>{4});
    CHECK(b.is_integer());
    for (size_t i = 0; i < t.size(); ++i) CHECK(b.values[i] == double(t[i]));

    CHECK(dir.entries() == 2);  // no temporary file left behind
}

TEST_CASE("npy writer's header is 64-byte aligned and scalar shapes work", "[npy]") {
    mw::test::TempDir dir;
    const float x = 2.5f;
    mw::write_npy_f32(dir.file("s.npy"), {}, &x);
    std::ifstream in(dir.file("s.npy"), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK((bytes.size() - sizeof(float)) % 64 == 0);
    const mw::NpyArray a = mw::read_npy(dir.file("s.npy"));
    CHECK(a.shape.empty());
    REQUIRE(a.values.size() == 1);
    CHECK(a.values[0] == 2.5);
}

TEST_CASE("npy reads every integer, bool and float dtype", "[npy]") {
    struct Case {
        std::string descr;
        std::vector<uint8_t> body;
        std::vector<double> expected;
    };
    const std::vector<Case> cases = {
        {"|b1", {1, 0}, {1, 0}},
        {"|i1", body_of<int8_t>({-128, 127}), {-128, 127}},
        {"|u1", body_of<uint8_t>({0, 255}), {0, 255}},
        {"<i2", body_of<int16_t>({-32768, 300}), {-32768, 300}},
        {"<u2", body_of<uint16_t>({65535, 7}), {65535, 7}},
        {"<i4", body_of<int32_t>({-5, 100000}), {-5, 100000}},
        {"<u4", body_of<uint32_t>({4294967295u, 1}), {4294967295.0, 1}},
        {"<i8", body_of<int64_t>({-(int64_t(1) << 40), 42}), {-double(int64_t(1) << 40), 42}},
        {"<u8", body_of<uint64_t>({uint64_t(1) << 63, 3}), {9223372036854775808.0, 3}},
        // float16: 1.0, -2.0, the smallest subnormal 2^-24, 65504 (the largest finite)
        {"<f2", body_of<uint16_t>({0x3c00, 0xc000, 0x0001, 0x7bff}), {1.0, -2.0, 0x1p-24, 65504.0}},
        {"<f4", body_of<float>({0.1f, -3.5f}), {double(0.1f), -3.5}},
        {"<f8", body_of<double>({0.1, -1e300}), {0.1, -1e300}},
    };
    for (const Case& c : cases) {
        INFO("dtype " << c.descr);
        const mw::NpyArray a = parse(npy_bytes(dict_for(c.descr, tuple_1d(c.expected.size())), c.body));
        CHECK(a.dtype == c.descr);
        CHECK(a.is_integer() == (c.descr[1] != 'f'));
        CHECK(a.values == c.expected);
    }
}

TEST_CASE("npy reads format versions 2 and 3 and double-quoted keys", "[npy]") {
    for (int major : {2, 3}) {
        const mw::NpyArray a = parse(npy_bytes(dict_for("<f4", "(2, 1)"), body_of<float>({1, 2}), major));
        CHECK(a.shape == std::vector<int64_t>{2, 1});
        CHECK(a.values == std::vector<double>{1, 2});
    }
    const mw::NpyArray b = parse(npy_bytes(
        "{\"descr\": \"<i2\", \"fortran_order\": False, \"shape\": (1,)}", body_of<int16_t>({-9})));
    CHECK(b.values == std::vector<double>{-9});
}

TEST_CASE("npy refuses bad files with a message naming the file and the problem", "[npy]") {
    const auto f4 = body_of<float>({1, 2});
    SECTION("bad magic") { require_refused({'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0}, "not a .npy"); }
    SECTION("too short") { require_refused({0x93, 'N'}, "not a .npy"); }
    SECTION("unknown version") { require_refused(npy_bytes(dict_for("<f4", "(2,)"), f4, 9), "version"); }
    SECTION("big-endian") { require_refused(npy_bytes(dict_for(">f4", "(2,)"), f4), "big-endian"); }
    SECTION("Fortran order") {
        require_refused(npy_bytes(dict_for("<f4", "(2,)", "True"), f4), "Fortran");
    }
    SECTION("object dtype") { require_refused(npy_bytes(dict_for("|O", "(2,)"), f4), "objects"); }
    SECTION("complex dtype") { require_refused(npy_bytes(dict_for("<c8", "(1,)"), f4), "unsupported dtype"); }
    SECTION("structured dtype") {
        require_refused(npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f4),
                        "structured");
    }
    SECTION("truncated data") { require_refused(npy_bytes(dict_for("<f4", "(3,)"), f4), "truncated"); }
    SECTION("trailing data") { require_refused(npy_bytes(dict_for("<f4", "(1,)"), f4), "trailing"); }
    SECTION("truncated header") {
        auto bytes = npy_bytes(dict_for("<f4", "(2,)"), {});
        bytes.resize(20);
        require_refused(bytes, "truncated");
    }
    SECTION("missing shape") {
        require_refused(npy_bytes("{'descr': '<f4', 'fortran_order': False}", f4), "'shape'");
    }
    SECTION("malformed shape") { require_refused(npy_bytes(dict_for("<f4", "(2L,)"), f4), "malformed"); }
    SECTION("item size past any dtype (found by fuzz_npy: it overflowed stoi)") {
        require_refused(npy_bytes(dict_for("|b999999999999999999991", "(2,)"), f4), "unsupported dtype");
    }
    SECTION("a size past 64 bits") {
        require_refused(npy_bytes(dict_for("<f4", "(99999999999999999999,)"), f4), "too large");
    }
    SECTION("huge shape") {
        require_refused(npy_bytes(dict_for("<f4", "(4611686018427387904, 4)"), f4), "too large");
    }
}

TEST_CASE("npy file errors name the path", "[npy]") {
    mw::test::TempDir dir;
    CHECK_THROWS_WITH(mw::read_npy(dir.file("missing.npy")),
                      Catch::Contains("missing.npy") && Catch::Contains("cannot open"));
    const float x = 1.0f;
    CHECK_THROWS_AS(mw::write_npy_f32(dir.file("no/such/dir/x.npy"), {1}, &x), NpyError);
    CHECK(dir.entries() == 0);
}
