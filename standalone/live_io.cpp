#include "standalone/live_io.h"

#include <rtmidi/RtMidi.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>
#include <utility>

namespace mw::cli::live {

// ---- Recorder -------------------------------------------------------------------------------

Recorder::Recorder(const std::string& path, double rate_hz, int channels, int max_block, double fifo_seconds)
    : path_(path),
      channels_(channels),
      max_block_(max_block),
      writer_(path, rate_hz, channels),
      fifo_(size_t(std::max(1.0, fifo_seconds * rate_hz)) * size_t(channels)),
      interleave_(size_t(max_block) * size_t(channels)),
      chunk_(size_t(8192) * size_t(channels)),
      planar_(size_t(channels), std::vector<float>(8192)) {
    thread_ = std::thread([this] { writer_loop(); });
}

Recorder::~Recorder() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
}

void Recorder::push(const float* const* planar, int n) noexcept {
    for (int start = 0; start < n; start += max_block_) {
        const int m = std::min(max_block_, n - start);
        for (int t = 0; t < m; ++t)
            for (int c = 0; c < channels_; ++c)
                interleave_[size_t(t) * size_t(channels_) + size_t(c)] = planar[c][start + t];
        if (!fifo_.push(interleave_.data(), size_t(m) * size_t(channels_))) dropped_.fetch_add(m);
    }
}

void Recorder::drain() {
    for (;;) {
        const size_t got = fifo_.pop(chunk_.data(), chunk_.size());
        const int64_t frames = int64_t(got) / channels_;
        if (frames == 0) return;
        for (int64_t t = 0; t < frames; ++t)
            for (int c = 0; c < channels_; ++c)
                planar_[size_t(c)][size_t(t)] = chunk_[size_t(t) * size_t(channels_) + size_t(c)];
        std::vector<const float*> ptrs;
        for (auto& ch : planar_) ptrs.push_back(ch.data());
        writer_.write(ptrs.data(), frames);
        written_ += frames;
    }
}

void Recorder::writer_loop() {
    try {
        while (!stop_.load()) {
            drain();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    } catch (const std::exception& e) {
        error_ = e.what();
        failed_ = true;
    }
}

void Recorder::commit() {
    if (committed_) return;
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (failed_) throw std::runtime_error("recording " + path_ + " failed: " + error_);
    drain();  // what the audio thread pushed last
    writer_.commit();
    committed_ = true;
}

// ---- MidiInput ------------------------------------------------------------------------------

namespace {
std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}
} // namespace

MidiInput::MidiInput(const std::string& port, bool jack, CcHandler on_cc, bool notes)
    : on_cc_(std::move(on_cc)), notes_(notes) {
    in_ = std::make_unique<RtMidiIn>(jack ? RtMidi::UNIX_JACK : RtMidi::LINUX_ALSA, "mambawave");
    const unsigned n = in_->getPortCount();
    std::vector<std::string> names;
    for (unsigned i = 0; i < n; ++i) names.push_back(in_->getPortName(i));
    int pick = -1;
    if (!port.empty() && std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        const unsigned id = unsigned(std::stoul(port));
        if (id < n) pick = int(id);
    } else {
        for (unsigned i = 0; i < n && pick < 0; ++i)
            if (lower(names[i]).find(lower(port)) != std::string::npos) pick = int(i);
    }
    if (pick < 0) {
        std::string list;
        for (unsigned i = 0; i < n; ++i) list += "\n  " + std::to_string(i) + " '" + names[i] + "'";
        throw std::runtime_error("--midi '" + port + "': no " + (jack ? "JACK MIDI" : "ALSA MIDI") +
                                 " input port matches; ports:" + (list.empty() ? std::string(" (none)") : list));
    }
    name_ = names[size_t(pick)];
    in_->setCallback(&MidiInput::on_message, this);
    in_->ignoreTypes(true, true, true);
    in_->openPort(unsigned(pick), "mambawave in");
}

MidiInput::~MidiInput() {
    if (in_) {
        in_->cancelCallback();
        in_->closePort();
    }
}

// RtMidi's thread: controller changes to the handler where there is one; note-on/off (and "all
// notes off", CC 123, or "all sound off", CC 120) into the FIFO where notes are taken.
void MidiInput::on_message(double, std::vector<unsigned char>* message, void* user) {
    auto* self = static_cast<MidiInput*>(user);
    if (!message || message->size() < 3) return;
    const unsigned status = (*message)[0] & 0xF0u, d1 = (*message)[1] & 0x7Fu, d2 = (*message)[2] & 0x7Fu;
    if (status == 0xB0 && d1 < 120) {  // 120-127: channel mode messages
        if (self->on_cc_) self->on_cc_(d1, d2);
        return;
    }
    if (!self->notes_) return;
    MidiNote note{MidiNote::off, uint8_t(d1), 0.0f};
    if (status == 0x90 && d2 > 0) note = {MidiNote::on, uint8_t(d1), float(d2) / 127.0f};
    else if (status == 0x80 || status == 0x90) note = {MidiNote::off, uint8_t(d1), 0.0f};
    else if (status == 0xB0 && (d1 == 123 || d1 == 120)) note = {MidiNote::all_off, 0, 0.0f};
    else return;
    if (!self->fifo_.push(note)) self->dropped_.fetch_add(1);
}

} // namespace mw::cli::live
