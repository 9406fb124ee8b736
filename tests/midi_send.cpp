// A MIDI controller for tests/live_test.sh: a JACK MIDI output port, CLIENT:out, that sends one
// controller's value every 20 ms: FIRST until the process gets SIGUSR1, then SECOND, for at most
// TOTAL seconds (or until SIGTERM). With NOTE, SIGUSR2 sends that note's note-on (velocity 100)
// once. The test moves the "pedal" (and plays the note) when it has seen `live` running, so
// nothing depends on how long `live` took to start. (jackd2's example clients send notes, not
// controllers.)
//   mw_midi_send CLIENT CC FIRST SECOND TOTAL_SECONDS [NOTE]
#include <rtmidi/RtMidi.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {
volatile std::sig_atomic_t g_moved = 0, g_note = 0;
extern "C" void on_move(int) { g_moved = 1; }
extern "C" void on_note(int) { g_note = 1; }
} // namespace

int main(int argc, char** argv) {
    if (argc != 6 && argc != 7) {
        std::fprintf(stderr, "usage: mw_midi_send CLIENT CC FIRST SECOND TOTAL_SECONDS [NOTE]  (SIGUSR1: FIRST -> "
                             "SECOND; SIGUSR2: NOTE on)\n");
        return 2;
    }
    const std::string client = argv[1];
    const int cc = std::atoi(argv[2]), first = std::atoi(argv[3]), second = std::atoi(argv[4]);
    const double total_s = std::atof(argv[5]);
    const int note = argc == 7 ? std::atoi(argv[6]) : -1;
    if (cc < 0 || cc > 119 || first < 0 || first > 127 || second < 0 || second > 127 || !(total_s > 0) ||
        (argc == 7 && (note < 0 || note > 127))) {
        std::fprintf(stderr, "mw_midi_send: CC 0..119, values and NOTE 0..127, TOTAL_SECONDS > 0\n");
        return 2;
    }
    std::signal(SIGUSR1, on_move);
    std::signal(SIGUSR2, on_note);
    try {
        RtMidiOut out(RtMidi::UNIX_JACK, client);
        out.openVirtualPort("out");
        std::printf("mw_midi_send: %s:out sends CC %d = %d, then %d after SIGUSR1\n", client.c_str(), cc, first,
                    second);
        std::fflush(stdout);
        const auto start = std::chrono::steady_clock::now();
        bool announced = false, played = false;
        while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < total_s) {
            if (g_note && note >= 0 && !played) {
                std::vector<unsigned char> on{0x90, static_cast<unsigned char>(note), 100};
                out.sendMessage(&on);
                std::printf("mw_midi_send: note %d on\n", note);
                std::fflush(stdout);
                played = true;
            }
            const bool moved = g_moved != 0;
            if (moved && !announced) {
                std::printf("mw_midi_send: moved to %d\n", second);
                std::fflush(stdout);
                announced = true;
            }
            std::vector<unsigned char> message{0xB0, static_cast<unsigned char>(cc),
                                               static_cast<unsigned char>(moved ? second : first)};
            out.sendMessage(&message);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    } catch (const RtMidiError& e) {
        std::fprintf(stderr, "mw_midi_send: %s\n", e.getMessage().c_str());
        return 1;
    }
    return 0;
}
