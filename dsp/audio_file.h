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

// Whole file into memory. Refuses empty files and non-finite samples (naming the frame).
AudioData read_audio(const std::string& path);

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
