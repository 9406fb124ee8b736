// Audio files through libsndfile: WAV, FLAC, OGG, AIFF in; WAV or FLAC out (chosen by the
// extension), float samples, planar buffers. Errors are AudioFileError naming the file.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mw::dsp {

struct AudioFileError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct AudioData {
    double sample_rate_hz = 0;
    std::vector<std::vector<float>> channels;  // [channels][frames]
    int64_t frames() const { return channels.empty() ? 0 : int64_t(channels[0].size()); }
};

// Streaming reader: a file of any length in blocks of planar frames, so memory stays bounded.
// Refuses unreadable files at construction, and non-finite samples as they are read (naming
// the frame and channel).
class AudioReader {
public:
    explicit AudioReader(const std::string& path);
    ~AudioReader();
    AudioReader(const AudioReader&) = delete;
    AudioReader& operator=(const AudioReader&) = delete;

    double sample_rate_hz() const { return rate_hz_; }
    int channels() const { return channels_; }
    // The length as the file's header declares it; 0 where it does not say (a FLAC encoded from
    // a stream), and then length_known() is false: read() still reads the file to its end.
    int64_t frames() const { return frames_; }
    bool length_known() const { return length_known_; }
    int64_t position() const { return position_; }  // frames read so far
    const std::string& path() const { return path_; }
    // Reads up to n frames into planar [channels][n]; returns the frames read, 0 at the end.
    int64_t read(float* const* planar, int64_t n);

private:
    std::string path_;
    void* file_ = nullptr;  // SNDFILE*
    double rate_hz_ = 0;
    int channels_ = 0;
    int64_t frames_ = 0, position_ = 0;
    bool length_known_ = true;
    std::vector<float> interleaved_;
};

// Whole file into memory. Refuses empty files and non-finite samples (naming the frame).
AudioData read_audio(const std::string& path);
// The rest of an open file into memory, with the same refusals.
AudioData read_all(AudioReader& reader);

// Streaming writer: writes to "<path>.tmp-XXXX" and renames to path in commit(); a writer
// destroyed without commit() removes its temporary file, so no truncated output is left.
class AudioWriter {
public:
    // format from the extension: .wav (32-bit float) or .flac (24-bit).
    AudioWriter(const std::string& path, double sample_rate_hz, int channels);
    ~AudioWriter();
    AudioWriter(const AudioWriter&) = delete;
    AudioWriter& operator=(const AudioWriter&) = delete;
    // planar [channels][n]
    void write(const float* const* planar, int64_t n);
    void commit();

private:
    std::string path_, tmp_path_;
    int channels_ = 0;
    void* file_ = nullptr;  // SNDFILE*
    std::vector<float> interleaved_;
    bool committed_ = false;
};

// Resample (libsamplerate, best sinc) one channel; used when a file's rate differs from
// the model's.
std::vector<float> resample(const std::vector<float>& in, double from_hz, double to_hz);

} // namespace mw::dsp
