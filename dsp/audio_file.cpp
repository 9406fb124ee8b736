// Audio files through libsndfile, resampling through libsamplerate.
#include "dsp/audio_file.h"

#include <samplerate.h>
#include <sndfile.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>

namespace mw::dsp {

namespace {

constexpr sf_count_t kReadBlockFrames = 65536;

SNDFILE* as_sndfile(void* p) { return static_cast<SNDFILE*>(p); }

std::string lower_extension(const std::string& path) {
    const size_t dot = path.find_last_of('.');
    const size_t slash = path.find_last_of("/\\");
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
    std::string ext = path.substr(dot);
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    return ext;
}

// SF_FORMAT_* for an output path, from its extension.
int output_format(const std::string& path) {
    const std::string ext = lower_extension(path);
    if (ext == ".wav") return SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    if (ext == ".flac") return SF_FORMAT_FLAC | SF_FORMAT_PCM_24;
    throw AudioFileError(path + ": cannot write '" + (ext.empty() ? "(no extension)" : ext) +
                         "' files, expected an output name ending in .wav or .flac");
}

std::string temp_name_for(const std::string& path) {
    std::random_device random;
    std::ostringstream s;
    s << path << ".tmp-" << std::hex << random();
    return s.str();
}

} // namespace

AudioReader::AudioReader(const std::string& path) : path_(path) {
    SF_INFO info{};
    file_ = sf_open(path.c_str(), SFM_READ, &info);
    if (!file_) throw AudioFileError(path + ": cannot read audio file: " + sf_strerror(nullptr));
    rate_hz_ = info.samplerate;
    channels_ = info.channels;
    // (libsndfile says SF_COUNT_MAX where the header does not give the length)
    length_known_ = info.frames >= 0 && info.frames < (int64_t(1) << 40);
    frames_ = length_known_ ? info.frames : 0;
}

AudioReader::~AudioReader() {
    if (file_) sf_close(as_sndfile(file_));
}

int64_t AudioReader::read(float* const* planar, int64_t n) {
    interleaved_.resize(size_t(std::min<int64_t>(n, kReadBlockFrames) * channels_));
    int64_t done = 0;
    while (done < n) {
        const sf_count_t want = std::min<sf_count_t>(n - done, kReadBlockFrames);
        const sf_count_t got = sf_readf_float(as_sndfile(file_), interleaved_.data(), want);
        if (got <= 0) break;
        for (int c = 0; c < channels_; ++c) {
            float* out = planar[c] + done;
            for (sf_count_t i = 0; i < got; ++i) {
                const float x = interleaved_[size_t(i * channels_ + c)];
                if (!std::isfinite(x))
                    throw AudioFileError(path_ + ": sample at frame " + std::to_string(position_ + done + i) +
                                         ", channel " + std::to_string(c) + " is " +
                                         (std::isnan(x) ? "NaN" : "infinite") + ", expected finite samples");
                out[i] = x;
            }
        }
        done += got;
        if (got < want) break;
    }
    if (sf_error(as_sndfile(file_)))
        throw AudioFileError(path_ + ": read failed: " + sf_strerror(as_sndfile(file_)));
    position_ += done;
    return done;
}

AudioData read_audio(const std::string& path) {
    AudioReader reader(path);
    return read_all(reader);
}

AudioData read_all(AudioReader& reader) {
    AudioData audio;
    audio.sample_rate_hz = reader.sample_rate_hz();
    audio.channels.assign(size_t(reader.channels()), {});
    std::vector<float*> planar(audio.channels.size());
    auto read_into = [&](int64_t at, int64_t n) {
        for (size_t c = 0; c < planar.size(); ++c) planar[c] = audio.channels[c].data() + at;
        return reader.read(planar.data(), n);
    };
    // The header's length sizes the buffers exactly, so a file costs what it holds (sizing
    // them a read block up, at least 256 KiB a channel zeroed, made short files 10x slower).
    // A length the header does not give (frames() 0) is read on from nothing, as below.
    const int64_t expected = std::min<int64_t>(reader.frames(), int64_t(1) << 34);
    for (std::vector<float>& ch : audio.channels) ch.resize(size_t(expected));
    int64_t total = expected > 0 ? read_into(0, expected) : 0;
    // A file that holds more than its header says still reads whole: a one-frame probe past
    // the header's length (into a buffer of its own, so the common case copies nothing), and
    // if it finds more, on in blocks with the buffers doubling
    if (total == expected) {
        std::vector<float> extra(planar.size());
        std::vector<float*> probe(planar.size());
        for (size_t c = 0; c < planar.size(); ++c) probe[c] = &extra[c];
        if (reader.read(probe.data(), 1) == 1) {
            for (size_t c = 0; c < planar.size(); ++c) audio.channels[c].push_back(extra[c]);
            ++total;
            for (;;) {
                const int64_t size = int64_t(audio.channels[0].size());
                if (total == size)
                    for (std::vector<float>& ch : audio.channels) ch.resize(size_t(std::max(2 * size, size + kReadBlockFrames)));
                const int64_t got = read_into(total, std::min<int64_t>(int64_t(audio.channels[0].size()) - total, kReadBlockFrames));
                if (got == 0) break;
                total += got;
            }
        }
    }
    for (std::vector<float>& ch : audio.channels) ch.resize(size_t(total));
    if (total == 0) throw AudioFileError(reader.path() + ": has no audio frames (empty file)");
    return audio;
}

AudioWriter::AudioWriter(const std::string& path, double sample_rate_hz, int channels)
    : path_(path), tmp_path_(temp_name_for(path)), channels_(channels) {
    SF_INFO info{};
    info.samplerate = int(std::lround(sample_rate_hz));
    info.channels = channels;
    info.format = output_format(path);
    if (channels < 1 || !sf_format_check(&info))
        throw AudioFileError(path + ": cannot write " + std::to_string(channels) + " channels at " +
                             std::to_string(info.samplerate) + " Hz in this format");
    file_ = sf_open(tmp_path_.c_str(), SFM_WRITE, &info);
    if (!file_)
        throw AudioFileError(path + ": cannot create the output file: " + sf_strerror(nullptr));
    // FLAC holds integers: clip out-of-range floats rather than let them wrap around.
    if ((info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC)
        sf_command(as_sndfile(file_), SFC_SET_CLIPPING, nullptr, SF_TRUE);
    // No PEAK chunk: it holds a timestamp, and the same audio should give the same bytes.
    sf_command(as_sndfile(file_), SFC_SET_ADD_PEAK_CHUNK, nullptr, SF_FALSE);
}

AudioWriter::~AudioWriter() {
    if (file_) sf_close(as_sndfile(file_));
    if (!committed_) std::remove(tmp_path_.c_str());
}

void AudioWriter::write(const float* const* planar, int64_t n) {
    if (!file_) throw AudioFileError(path_ + ": write after commit");
    interleaved_.resize(size_t(n * channels_));  // [n][channels]
    for (int c = 0; c < channels_; ++c)
        for (int64_t i = 0; i < n; ++i) {
            const float x = planar[c][i];
            if (!std::isfinite(x))
                throw AudioFileError(path_ + ": refusing to write a non-finite sample (channel " +
                                     std::to_string(c) + ")");
            interleaved_[size_t(i * channels_ + c)] = x;
        }
    if (sf_writef_float(as_sndfile(file_), interleaved_.data(), n) != n)
        throw AudioFileError(path_ + ": write failed: " + sf_strerror(as_sndfile(file_)));
}

void AudioWriter::commit() {
    if (!file_) throw AudioFileError(path_ + ": committed twice");
    const int close_error = sf_close(as_sndfile(file_));
    file_ = nullptr;
    if (close_error != 0)
        throw AudioFileError(path_ + ": closing the output failed: " + sf_error_number(close_error));
    if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
        throw AudioFileError(path_ + ": cannot rename the finished file into place: " +
                             std::strerror(errno));
    committed_ = true;
}

std::vector<float> resample(const std::vector<float>& in, double from_hz, double to_hz) {
    if (from_hz == to_hz || in.empty()) return in;
    const double ratio = to_hz / from_hz;
    if (!src_is_valid_ratio(ratio))
        throw AudioFileError("cannot resample from " + std::to_string(from_hz) + " Hz to " +
                             std::to_string(to_hz) + " Hz: ratio out of range (1/256..256)");
    std::vector<float> out(size_t(std::ceil(double(in.size()) * ratio)) + 1);
    SRC_DATA data{};
    data.data_in = in.data();
    data.input_frames = long(in.size());
    data.data_out = out.data();
    data.output_frames = long(out.size());
    data.src_ratio = ratio;
    const int error = src_simple(&data, SRC_SINC_BEST_QUALITY, 1);
    if (error != 0) throw AudioFileError(std::string("resampling failed: ") + src_strerror(error));
    out.resize(size_t(data.output_frames_gen));
    return out;
}

} // namespace mw::dsp
