// Audio files: WAV/FLAC round trips, refusals, the writer's temporary file, resampling.
#include "dsp/audio_file.h"
#include "temp_dir.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

using mw::dsp::AudioData;
using mw::dsp::AudioFileError;
using mw::dsp::AudioWriter;

namespace {

constexpr double kPi = 3.14159265358979323846;

std::vector<float> sine(double freq_hz, double sample_rate_hz, int64_t frames, float amplitude) {
    std::vector<float> x(static_cast<size_t>(frames));
    for (int64_t i = 0; i < frames; ++i)
        x[size_t(i)] = amplitude * float(std::sin(2.0 * kPi * freq_hz * double(i) / sample_rate_hz));
    return x;
}

// Two channels of sines (440 Hz at 0.5, 97 Hz at 0.25), frames long at rate_hz.
AudioData two_sines(double rate_hz, int64_t frames) {
    AudioData a;
    a.sample_rate_hz = rate_hz;
    a.channels = {sine(440, rate_hz, frames, 0.5f), sine(97, rate_hz, frames, 0.25f)};
    return a;
}

void write_file(const std::string& path, const AudioData& audio) {
    AudioWriter w(path, audio.sample_rate_hz, int(audio.channels.size()));
    std::vector<const float*> planar;
    for (const auto& ch : audio.channels) planar.push_back(ch.data());
    w.write(planar.data(), audio.frames());
    w.commit();
}

// A 32-bit float WAV written byte by byte (the writer refuses NaN, so tests make their own).
// data_bytes_field: the data chunk's size as the header states it (default: the true size),
// for headers that say more or less than the file holds.
void write_raw_float_wav(const std::string& path, const std::vector<float>& interleaved,
                         int channels, int sample_rate_hz, int64_t data_bytes_field = -1) {
    auto u32 = [](std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); };
    auto u16 = [](std::string& s, uint16_t v) { s.append(reinterpret_cast<const char*>(&v), 2); };
    const uint32_t data_bytes = uint32_t(interleaved.size() * 4);
    std::string b = "RIFF";
    u32(b, 36 + data_bytes);
    b += "WAVEfmt ";
    u32(b, 16);
    u16(b, 3);  // WAVE_FORMAT_IEEE_FLOAT
    u16(b, uint16_t(channels));
    u32(b, uint32_t(sample_rate_hz));
    u32(b, uint32_t(sample_rate_hz * channels * 4));
    u16(b, uint16_t(channels * 4));
    u16(b, 32);
    b += "data";
    u32(b, data_bytes_field < 0 ? data_bytes : uint32_t(data_bytes_field));
    b.append(reinterpret_cast<const char*>(interleaved.data()), data_bytes);
    std::ofstream(path, std::ios::binary) << b;
}

// Frequency from upward zero crossings between frames [begin, end).
double zero_crossing_freq_hz(const std::vector<float>& x, double sample_rate_hz, size_t begin,
                             size_t end) {
    size_t first = 0, last = 0, count = 0;
    for (size_t i = begin + 1; i < end; ++i)
        if (x[i - 1] < 0.0f && x[i] >= 0.0f) {
            if (count == 0) first = i;
            last = i;
            ++count;
        }
    return double(count - 1) * sample_rate_hz / double(last - first);
}

} // namespace

TEST_CASE("audio: WAV round trip keeps float samples exactly", "[audio]") {
    mw::test::TempDir dir;
    AudioData a;
    a.sample_rate_hz = 44100;
    a.channels = {sine(440, 44100, 1000, 0.5f), sine(100, 44100, 1000, 1.5f)};  // >1 kept in float
    write_file(dir.file("x.wav"), a);
    const AudioData b = mw::dsp::read_audio(dir.file("x.wav"));
    CHECK(b.sample_rate_hz == 44100);
    REQUIRE(b.channels.size() == 2);
    CHECK(b.frames() == 1000);
    CHECK(b.channels == a.channels);
    CHECK(dir.entries() == 1);
    // No PEAK chunk (it holds a timestamp): the same audio always gives the same bytes.
    std::ifstream in(dir.file("x.wav"), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(bytes.find("PEAK") == std::string::npos);
}

TEST_CASE("audio: FLAC round trip is 24-bit and clips to plus or minus one", "[audio]") {
    mw::test::TempDir dir;
    AudioData a;
    a.sample_rate_hz = 48000;
    a.channels = {sine(1000, 48000, 4800, 0.9f)};
    a.channels[0][10] = 1.7f;
    a.channels[0][11] = -3.0f;
    write_file(dir.file("x.FLAC"), a);
    const AudioData b = mw::dsp::read_audio(dir.file("x.FLAC"));
    CHECK(b.sample_rate_hz == 48000);
    REQUIRE(b.frames() == 4800);
    CHECK(b.channels[0][10] == Approx(1.0f).margin(1e-6));
    CHECK(b.channels[0][11] == Approx(-1.0f).margin(1e-6));
    double max_error = 0;
    for (size_t i = 12; i < 4800; ++i)
        max_error = std::max(max_error, double(std::fabs(b.channels[0][i] - a.channels[0][i])));
    CHECK(max_error < 2.0 / (1 << 23));
}

TEST_CASE("audio: the writer leaves no file without commit, and refuses unknown formats", "[audio]") {
    mw::test::TempDir dir;
    const std::vector<float> x(100, 0.25f);
    const float* planar[] = {x.data()};
    {
        AudioWriter w(dir.file("out.wav"), 48000, 1);
        w.write(planar, 100);
        CHECK(dir.entries() == 1);  // the temporary file, not out.wav
        CHECK_FALSE(std::filesystem::exists(dir.file("out.wav")));
    }
    CHECK(dir.entries() == 0);
    CHECK_THROWS_WITH(AudioWriter(dir.file("out.mp3"), 48000, 1), Catch::Contains(".wav or .flac"));
    CHECK_THROWS_AS(AudioWriter(dir.file("out"), 48000, 1), AudioFileError);
    CHECK_THROWS_AS(AudioWriter(dir.file("no/such/dir/out.wav"), 48000, 1), AudioFileError);
    CHECK(dir.entries() == 0);
}

TEST_CASE("audio: the writer refuses non-finite samples", "[audio]") {
    mw::test::TempDir dir;
    std::vector<float> x(10, 0.0f);
    x[3] = std::numeric_limits<float>::quiet_NaN();
    const float* planar[] = {x.data()};
    {
        AudioWriter w(dir.file("out.wav"), 48000, 1);
        CHECK_THROWS_WITH(w.write(planar, 10), Catch::Contains("non-finite"));
    }
    CHECK(dir.entries() == 0);
}

TEST_CASE("audio: read_audio refuses bad files naming the file and the problem", "[audio]") {
    mw::test::TempDir dir;
    SECTION("missing") {
        CHECK_THROWS_WITH(mw::dsp::read_audio(dir.file("none.wav")),
                          Catch::Contains("none.wav") && Catch::Contains("cannot read"));
    }
    SECTION("not audio") {
        std::ofstream(dir.file("text.wav")) << "this is not a wave file\n";
        CHECK_THROWS_WITH(mw::dsp::read_audio(dir.file("text.wav")), Catch::Contains("text.wav"));
    }
    SECTION("no frames") {
        AudioWriter w(dir.file("empty.wav"), 48000, 2);
        w.commit();
        CHECK_THROWS_WITH(mw::dsp::read_audio(dir.file("empty.wav")),
                          Catch::Contains("empty.wav") && Catch::Contains("no audio frames"));
    }
    SECTION("NaN and Inf samples, naming frame and channel") {
        std::vector<float> interleaved(20, 0.1f);  // 10 frames x 2 channels
        interleaved[2 * 7 + 1] = std::numeric_limits<float>::quiet_NaN();
        write_raw_float_wav(dir.file("nan.wav"), interleaved, 2, 8000);
        CHECK_THROWS_WITH(mw::dsp::read_audio(dir.file("nan.wav")),
                          Catch::Contains("nan.wav") && Catch::Contains("frame 7") &&
                              Catch::Contains("channel 1") && Catch::Contains("NaN"));
        interleaved[2 * 7 + 1] = 0.0f;
        interleaved[2 * 3] = -std::numeric_limits<float>::infinity();
        write_raw_float_wav(dir.file("inf.wav"), interleaved, 2, 8000);
        CHECK_THROWS_WITH(mw::dsp::read_audio(dir.file("inf.wav")),
                          Catch::Contains("frame 3") && Catch::Contains("infinite"));
    }
}

TEST_CASE("audio: resample keeps the length ratio and a sine's frequency", "[audio]") {
    struct Case { double from_hz, to_hz; };
    for (const Case c : {Case{44100, 48000}, Case{48000, 16000}, Case{8000, 48000}}) {
        INFO(c.from_hz << " Hz -> " << c.to_hz << " Hz");
        const int64_t frames = int64_t(c.from_hz / 2);  // half a second
        const std::vector<float> in = sine(1000, c.from_hz, frames, 0.5f);
        const std::vector<float> out = mw::dsp::resample(in, c.from_hz, c.to_hz);
        const double expected_frames = double(frames) * c.to_hz / c.from_hz;
        CHECK(std::fabs(double(out.size()) - expected_frames) <= 1.0);
        const size_t quarter = out.size() / 4;
        CHECK(zero_crossing_freq_hz(out, c.to_hz, quarter, 3 * quarter) == Approx(1000).epsilon(0.002));
        float peak = 0;
        for (size_t i = quarter; i < 3 * quarter; ++i) peak = std::max(peak, std::fabs(out[i]));
        CHECK(peak == Approx(0.5f).epsilon(0.01));
    }
    const std::vector<float> same = {1, 2, 3};
    CHECK(mw::dsp::resample(same, 48000, 48000) == same);
    CHECK_THROWS_AS(mw::dsp::resample(same, 1000, 1000000), AudioFileError);
}

TEST_CASE("audio: a file whose header misstates its length reads what it holds", "[audio]") {
    mw::test::TempDir dir;
    const int64_t frames = 70001;  // over one read block
    const AudioData two = two_sines(8000, frames);
    const std::vector<float>& left = two.channels[0];
    const std::vector<float>& right = two.channels[1];
    std::vector<float> interleaved;
    for (int64_t i = 0; i < frames; ++i) {
        interleaved.push_back(left[size_t(i)]);
        interleaved.push_back(right[size_t(i)]);
    }
    const int64_t bytes = frames * 2 * 4;
    // (a header from a streaming writer that never came back to fill in the sizes, and one that
    // claims more than was written, as a recording cut off does: libsndfile reads what is there)
    for (const int64_t field : {int64_t(0xFFFFFFFF), bytes + 4000 * 8, bytes}) {
        CAPTURE(field);
        write_raw_float_wav(dir.file("misstated.wav"), interleaved, 2, 8000, field);
        const AudioData a = mw::dsp::read_audio(dir.file("misstated.wav"));
        REQUIRE(a.channels.size() == 2);
        CHECK(a.channels[0] == left);
        CHECK(a.channels[1] == right);
    }
    // a header that claims less than the file holds: what the header claims, as libsndfile reads it
    write_raw_float_wav(dir.file("short.wav"), interleaved, 2, 8000, 1000 * 8);
    const AudioData a = mw::dsp::read_audio(dir.file("short.wav"));
    REQUIRE(a.channels.size() == 2);
    CHECK(a.channels[0] == std::vector<float>(left.begin(), left.begin() + 1000));
    // and a data size of 0 reads as no frames at all (libsndfile's reading), said so
    write_raw_float_wav(dir.file("zero.wav"), interleaved, 2, 8000, 0);
    CHECK_THROWS_WITH(mw::dsp::read_audio(dir.file("zero.wav")), Catch::Contains("has no audio frames"));
}

TEST_CASE("audio: a FLAC that does not say its length (encoded from a stream) reads whole", "[audio]") {
    mw::test::TempDir dir;
    write_file(dir.file("known.flac"), two_sines(8000, 150001));  // > 2 read blocks
    const AudioData want = mw::dsp::read_audio(dir.file("known.flac"));  // (FLAC is 16-bit: rounded)
    REQUIRE(want.frames() == 150001);
    // STREAMINFO's total samples (36 bits from byte 8 + 13) set to 0, "unknown", as an encoder
    // writing to a pipe leaves it; libsndfile then gives the length as SF_COUNT_MAX, which the
    // reader used to take as the size of its buffers (std::bad_alloc)
    std::ifstream in(dir.file("known.flac"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.substr(0, 4) == "fLaC");
    bytes[8 + 13] = char(uint8_t(bytes[8 + 13]) & 0xF0);
    for (int k = 14; k < 18; ++k) bytes[size_t(8 + k)] = 0;
    std::ofstream(dir.file("unknown.flac"), std::ios::binary) << bytes;
    {
        mw::dsp::AudioReader reader(dir.file("unknown.flac"));
        CHECK_FALSE(reader.length_known());
        CHECK(reader.frames() == 0);
    }
    CHECK(mw::dsp::AudioReader(dir.file("known.flac")).length_known());
    const AudioData got = mw::dsp::read_audio(dir.file("unknown.flac"));
    CHECK(got.channels == want.channels);
}

TEST_CASE("audio: AudioReader streams a file in any block size, exactly as read_audio", "[audio]") {
    mw::test::TempDir dir;
    const AudioData a = two_sines(48000, 150001);  // > 2 read blocks
    write_file(dir.file("long.wav"), a);
    CHECK(mw::dsp::read_audio(dir.file("long.wav")).channels == a.channels);
    for (int64_t block : {1, 999, 65536, 70000, 200000}) {
        CAPTURE(block);
        mw::dsp::AudioReader reader(dir.file("long.wav"));
        CHECK(reader.channels() == 2);
        CHECK(reader.frames() == 150001);
        std::vector<std::vector<float>> got(2);
        std::vector<float> b0(static_cast<size_t>(block)), b1(static_cast<size_t>(block));
        float* planar[2] = {b0.data(), b1.data()};
        int64_t n = 0, calls = 0;
        while ((n = reader.read(planar, block)) > 0) {
            CHECK((n == block || reader.position() == 150001));  // short reads only at the end
            got[0].insert(got[0].end(), b0.begin(), b0.begin() + n);
            got[1].insert(got[1].end(), b1.begin(), b1.begin() + n);
            ++calls;
        }
        CHECK(calls == (150001 + block - 1) / block);
        CHECK(reader.position() == 150001);
        CHECK(got == a.channels);
        CHECK(reader.read(planar, block) == 0);  // stays at the end
    }
}

TEST_CASE("audio: AudioReader names the frame of a non-finite sample far into the file", "[audio]") {
    mw::test::TempDir dir;
    std::vector<float> x(2 * 100000, 0.0f);  // [frames][2]
    x[2 * 77777 + 1] = -std::numeric_limits<float>::infinity();
    write_raw_float_wav(dir.file("late.wav"), x, 2, 48000);
    mw::dsp::AudioReader reader(dir.file("late.wav"));
    std::vector<float> b0(30000), b1(30000);
    float* planar[2] = {b0.data(), b1.data()};
    CHECK(reader.read(planar, 30000) == 30000);
    CHECK(reader.read(planar, 30000) == 30000);
    CHECK_THROWS_WITH(reader.read(planar, 30000),
                      Catch::Contains("late.wav") && Catch::Contains("frame 77777") &&
                          Catch::Contains("channel 1") && Catch::Contains("infinite"));
}
