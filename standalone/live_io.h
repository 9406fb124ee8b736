// The live app's helpers around the audio thread: a recorder (the audio thread pushes into a
// lock-free FIFO, a writer thread writes the file) and a MIDI input (RtMidi's thread pushes note
// events into a lock-free FIFO that the audio thread drains, or hands controller changes to a
// handler that sets the engine's parameters, which any thread may). Neither end on the audio
// thread allocates, locks or waits.
#pragma once

#include "dsp/audio_file.h"
#include "dsp/spsc_queue.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

class RtMidiIn;

namespace mw::cli::live {

class Recorder {
public:
    // Opens the output (a temporary name until commit) and starts the writer thread; the FIFO
    // holds fifo_seconds of audio. max_block: the most frames one push() carries at once
    // (longer pushes are split).
    Recorder(const std::string& path, double rate_hz, int channels, int max_block, double fifo_seconds = 4.0);
    ~Recorder();  // stops the writer; without commit() the temporary file is removed

    // Audio thread: planar [channels][n]. When the FIFO is full the frames are dropped and counted.
    void push(const float* const* planar, int n) noexcept;
    // Message thread: drains the FIFO, writes the rest, renames the file into place.
    void commit();

    int64_t frames_written() const { return written_.load(); }
    // The writer thread's error ("" while all is well); commit() throws it.
    bool failed() const { return failed_.load(); }
    int64_t frames_dropped() const { return dropped_.load(); }
    const std::string& path() const { return path_; }

private:
    void writer_loop();
    void drain();

    std::string path_;
    int channels_;
    int max_block_;
    dsp::AudioWriter writer_;
    dsp::SpscQueue<float> fifo_;          // interleaved frames
    std::vector<float> interleave_;       // [max_block][channels], audio thread
    std::vector<float> chunk_;            // [frames][channels], writer thread
    std::vector<std::vector<float>> planar_;  // [channels][frames], writer thread
    std::atomic<bool> stop_{false};
    std::atomic<bool> failed_{false};
    std::string error_;  // written by the writer thread before failed_ is set
    std::atomic<int64_t> written_{0}, dropped_{0};
    std::thread thread_;
    bool committed_ = false;
};

struct MidiNote {
    enum Kind : uint8_t { on, off, all_off } kind;
    uint8_t note;
    float velocity;  // 0..1
};

class MidiInput {
public:
    // A controller change (CC 0..119, value 0..127), on RtMidi's thread.
    using CcHandler = std::function<void(unsigned cc, unsigned value)>;
    // port: a number or a (case-insensitive) part of a port name; jack: JACK MIDI instead of the
    // ALSA sequencer. Throws runtime_error listing the ports when none matches. Controller changes
    // (any channel) go to on_cc where given; notes (and all-notes-off, CC 120 and 123) to the
    // FIFO where notes is true (a generator's voices; an effect has none).
    MidiInput(const std::string& port, bool jack, CcHandler on_cc = {}, bool notes = true);
    ~MidiInput();
    const std::string& port_name() const { return name_; }
    // Audio thread.
    bool pop(MidiNote& note) { return fifo_.pop(note); }
    int64_t dropped() const { return dropped_.load(); }

private:
    static void on_message(double, std::vector<unsigned char>* message, void* user);
    std::unique_ptr<RtMidiIn> in_;
    std::string name_;
    CcHandler on_cc_;
    bool notes_ = true;
    dsp::SpscQueue<MidiNote> fifo_{1024};
    std::atomic<int64_t> dropped_{0};
};

} // namespace mw::cli::live
