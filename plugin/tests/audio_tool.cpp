// Helper of plugin/tests/lv2_host_test.sh:
//
//   mw_plugin_audio_tool compare A B TOLERANCE [FROM_SECONDS]
//       Max |A - B| over every channel and every sample from FROM_SECONDS on (the files must
//       have the same rate, channel count and length); exit 0 when within TOLERANCE and A is
//       not silent there, 1 otherwise.
//
//   mw_plugin_audio_tool jack-play-record IN OUT TARGET [SECONDS_TIMEOUT]
//       Plays IN into the audio inputs of the JACK client TARGET (e.g. jalv running the plugin)
//       and records TARGET's audio outputs into OUT (32-bit float WAV), sample-aligned with IN:
//       two clients of this process, a player before TARGET and a recorder after it in the
//       graph, start on the same JACK cycle (same frame time). The plugin reports no latency at
//       the model's rate, so OUT[t] is the plugin's response to IN[t]. Exit status 3: an xrun
//       (a late JACK cycle) happened while recording, so OUT is not usable; try again.
#include "dsp/audio_file.h"

#include <jack/jack.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

int compare(const std::string& a_path, const std::string& b_path, double tolerance, double from_s) {
    const mw::dsp::AudioData a = mw::dsp::read_audio(a_path);
    const mw::dsp::AudioData b = mw::dsp::read_audio(b_path);
    if (a.sample_rate_hz != b.sample_rate_hz || a.channels.size() != b.channels.size() || a.frames() != b.frames()) {
        std::fprintf(stderr, "compare: %s is %g Hz x %zu ch x %lld frames, %s is %g Hz x %zu ch x %lld frames\n",
                     a_path.c_str(), a.sample_rate_hz, a.channels.size(), (long long)a.frames(), b_path.c_str(),
                     b.sample_rate_hz, b.channels.size(), (long long)b.frames());
        return 1;
    }
    double diff = 0.0, peak = 0.0;
    const auto from = size_t(std::max(0.0, from_s * a.sample_rate_hz));
    for (size_t c = 0; c < a.channels.size(); ++c)
        for (size_t t = from; t < a.channels[c].size(); ++t) {
            const double x = a.channels[c][t], y = b.channels[c][t];
            if (!std::isfinite(x)) diff = INFINITY;
            diff = std::max(diff, std::abs(x - y));
            peak = std::max(peak, std::abs(x));
        }
    std::printf("compare: max |%s - %s| = %.3g over frames %zu..%lld x %zu channels (peak %.3f, tolerance %g)\n",
                a_path.c_str(), b_path.c_str(), diff, from, (long long)a.frames(), a.channels.size(), peak, tolerance);
    return diff <= tolerance && peak > 1e-3 ? 0 : 1;
}

// --- JACK ---------------------------------------------------------------------------------------

struct Shared {
    const mw::dsp::AudioData* input = nullptr;
    std::vector<std::vector<float>> recorded;   // [channels][frames]
    std::atomic<bool> armed{false};
    std::atomic<int64_t> start_frame{-1};       // frame time of the first played cycle
    std::atomic<bool> done{false};
    std::atomic<int> xruns{0};                  // JACK's xrun reports, and cycles the recorder missed
    int64_t last_frame = -1;                    // recorder thread only
    int64_t frames = 0;
};

int on_xrun(void* arg) {
    static_cast<Shared*>(arg)->xruns.fetch_add(1);
    return 0;
}

struct Client {
    jack_client_t* client = nullptr;
    std::vector<jack_port_t*> ports;
    Shared* shared = nullptr;
};

int play(jack_nframes_t n, void* arg) {
    auto* c = static_cast<Client*>(arg);
    Shared& s = *c->shared;
    const int64_t now = jack_last_frame_time(c->client);
    if (s.armed.load() && s.start_frame.load() < 0) s.start_frame.store(now);
    const int64_t start = s.start_frame.load();
    for (size_t p = 0; p < c->ports.size(); ++p) {
        auto* out = static_cast<float*>(jack_port_get_buffer(c->ports[p], n));
        const std::vector<float>& x = s.input->channels[std::min(p, s.input->channels.size() - 1)];
        for (jack_nframes_t i = 0; i < n; ++i) {
            const int64_t t = start < 0 ? -1 : now - start + int64_t(i);
            out[i] = t >= 0 && t < int64_t(x.size()) ? x[size_t(t)] : 0.0f;
        }
    }
    return 0;
}

int record(jack_nframes_t n, void* arg) {
    auto* c = static_cast<Client*>(arg);
    Shared& s = *c->shared;
    const int64_t start = s.start_frame.load();
    if (start < 0 || s.done.load()) return 0;
    const int64_t now = jack_last_frame_time(c->client);
    if (s.last_frame >= 0 && now != s.last_frame + int64_t(n)) s.xruns.fetch_add(1);   // a cycle lost
    s.last_frame = now;
    for (size_t p = 0; p < c->ports.size(); ++p) {
        const auto* in = static_cast<const float*>(jack_port_get_buffer(c->ports[p], n));
        for (jack_nframes_t i = 0; i < n; ++i) {
            const int64_t t = now - start + int64_t(i);
            if (t >= 0 && t < s.frames) s.recorded[p][size_t(t)] = in[i];
        }
    }
    if (now - start + int64_t(n) >= s.frames) s.done.store(true);
    return 0;
}

std::vector<std::string> ports_of(jack_client_t* client, const std::string& target, unsigned long flags) {
    std::vector<std::string> names;
    const std::string pattern = "^" + target + ":";
    if (const char** found = jack_get_ports(client, pattern.c_str(), JACK_DEFAULT_AUDIO_TYPE, flags)) {
        for (const char** p = found; *p; ++p) names.emplace_back(*p);
        jack_free(found);
    }
    return names;
}

int jack_play_record(const std::string& in_path, const std::string& out_path, const std::string& target, double timeout_s) {
    const mw::dsp::AudioData input = mw::dsp::read_audio(in_path);
    Shared shared;
    shared.input = &input;
    shared.frames = input.frames();

    Client player, recorder;
    player.shared = recorder.shared = &shared;
    jack_status_t status{};
    player.client = jack_client_open("mw_play", JackNoStartServer, &status);
    recorder.client = jack_client_open("mw_record", JackNoStartServer, &status);
    if (!player.client || !recorder.client) {
        std::fprintf(stderr, "jack-play-record: no JACK server (status 0x%x)\n", unsigned(status));
        return 1;
    }
    const double rate = jack_get_sample_rate(player.client);
    if (rate != input.sample_rate_hz) {
        std::fprintf(stderr, "jack-play-record: JACK runs at %g Hz, %s is %g Hz\n", rate, in_path.c_str(), input.sample_rate_hz);
        return 1;
    }
    const std::vector<std::string> target_in = ports_of(player.client, target, JackPortIsInput);
    const std::vector<std::string> target_out = ports_of(player.client, target, JackPortIsOutput);
    if (target_in.empty() || target_out.empty()) {
        std::fprintf(stderr, "jack-play-record: %s has %zu audio inputs and %zu outputs\n", target.c_str(),
                     target_in.size(), target_out.size());
        return 1;
    }
    for (size_t i = 0; i < target_in.size(); ++i)
        player.ports.push_back(jack_port_register(player.client, ("out_" + std::to_string(i + 1)).c_str(),
                                                  JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0));
    for (size_t i = 0; i < target_out.size(); ++i)
        recorder.ports.push_back(jack_port_register(recorder.client, ("in_" + std::to_string(i + 1)).c_str(),
                                                    JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0));
    shared.recorded.assign(target_out.size(), std::vector<float>(size_t(shared.frames), 0.0f));
    jack_set_process_callback(player.client, play, &player);
    jack_set_process_callback(recorder.client, record, &recorder);
    jack_set_xrun_callback(recorder.client, on_xrun, &shared);
    if (jack_activate(player.client) || jack_activate(recorder.client)) {
        std::fprintf(stderr, "jack-play-record: cannot activate the clients\n");
        return 1;
    }
    for (size_t i = 0; i < target_in.size(); ++i)
        jack_connect(player.client, jack_port_name(player.ports[i]), target_in[i].c_str());
    for (size_t i = 0; i < target_out.size(); ++i)
        jack_connect(recorder.client, target_out[i].c_str(), jack_port_name(recorder.ports[i]));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));   // connections settle
    shared.armed.store(true);

    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (!shared.done.load() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const bool done = shared.done.load();
    const double period_ms = 1000.0 * jack_get_buffer_size(recorder.client) / rate;
    jack_client_close(player.client);
    jack_client_close(recorder.client);
    if (!done) {
        std::fprintf(stderr, "jack-play-record: timed out after %g s\n", timeout_s);
        return 1;
    }
    if (const int xruns = shared.xruns.load(); xruns > 0) {
        // A late cycle loses or shifts audio: the recording cannot be compared sample by sample.
        std::fprintf(stderr, "jack-play-record: %d xrun(s) while recording (the machine is too busy for a %g ms period)\n",
                     xruns, period_ms);
        return 3;
    }
    mw::dsp::AudioWriter writer(out_path, input.sample_rate_hz, int(shared.recorded.size()));
    std::vector<const float*> planar;
    for (const auto& ch : shared.recorded) planar.push_back(ch.data());
    writer.write(planar.data(), shared.frames);
    writer.commit();
    std::printf("jack-play-record: %lld frames through %s (%zu in, %zu out) -> %s\n", (long long)shared.frames,
                target.c_str(), target_in.size(), target_out.size(), out_path.c_str());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        const std::string cmd = argc > 1 ? argv[1] : "";
        if (cmd == "compare" && (argc == 5 || argc == 6))
            return compare(argv[2], argv[3], std::atof(argv[4]), argc == 6 ? std::atof(argv[5]) : 0.0);
        if (cmd == "jack-play-record" && (argc == 5 || argc == 6))
            return jack_play_record(argv[2], argv[3], argv[4], argc == 6 ? std::atof(argv[5]) : 30.0);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: %s compare A B TOLERANCE [FROM_S] | jack-play-record IN OUT TARGET [TIMEOUT_S]\n", argv[0]);
    return 2;
}
