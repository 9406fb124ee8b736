#include "standalone/live_audio.h"

#include "standalone/cli_common.h"

#include <rtmidi/RtMidi.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

namespace mw::cli::live {

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

std::string rates_text(const std::vector<unsigned>& rates) {
    std::string s;
    for (unsigned r : rates) {
        if (!s.empty()) s += ", ";
        s += std::to_string(r);
    }
    return s.empty() ? "(not reported)" : s + " Hz";
}

bool has_rate(const RtAudio::DeviceInfo& info, unsigned rate) {
    return info.sampleRates.empty() ||
           std::find(info.sampleRates.begin(), info.sampleRates.end(), rate) != info.sampleRates.end();
}

} // namespace

std::vector<RtAudio::Api> compiled_apis() {
    std::vector<RtAudio::Api> apis;
    RtAudio::getCompiledApi(apis);
    apis.erase(std::remove(apis.begin(), apis.end(), RtAudio::RTAUDIO_DUMMY), apis.end());
    return apis;
}

std::string api_name(RtAudio::Api api) { return RtAudio::getApiName(api); }

std::string api_names() {
    std::string s;
    for (RtAudio::Api a : compiled_apis()) {
        if (!s.empty()) s += ", ";
        s += api_name(a);
    }
    return s;
}

RtAudio::Api parse_api(const std::string& name) {
    if (name.empty()) {
        for (RtAudio::Api a : compiled_apis())
            if (open_api(a)->getDeviceCount() > 0) return a;
        return RtAudio::UNSPECIFIED;
    }
    for (RtAudio::Api a : compiled_apis())
        if (api_name(a) == lower(name)) return a;
    throw UsageError("--api '" + name + "' is not an audio API of this build; compiled: " + api_names());
}

std::unique_ptr<RtAudio> open_api(RtAudio::Api api) {
    auto audio = std::make_unique<RtAudio>(api);
    audio->showWarnings(false);
    return audio;
}

std::vector<Device> list_devices(RtAudio& audio) {
    std::vector<Device> out;
    const unsigned n = audio.getDeviceCount();
    for (unsigned i = 0; i < n; ++i) {
        Device d;
        d.id = i;
        try {
            d.info = audio.getDeviceInfo(i);
        } catch (const RtAudioError&) {
            d.info.probed = false;
        }
        if (d.info.probed) out.push_back(d);
    }
    return out;
}

std::string describe(const Device& d) {
    const RtAudio::DeviceInfo& i = d.info;
    std::string s = std::to_string(d.id) + " '" + i.name + "' (" + std::to_string(i.inputChannels) + " in, " +
                    std::to_string(i.outputChannels) + " out, " + rates_text(i.sampleRates);
    if (i.isDefaultInput) s += ", default in";
    if (i.isDefaultOutput) s += ", default out";
    return s + ")";
}

std::string describe_all(const std::vector<Device>& devices) {
    std::string s;
    for (const Device& d : devices) s += "\n  " + describe(d);
    return s.empty() ? " (none)" : s;
}

std::string no_devices_message(RtAudio::Api api) {
    if (api == RtAudio::UNIX_JACK)
        return "no JACK server is running (start one first: e.g. `jackd -d alsa -r 48000 -p 128`, "
               "qjackctl, or `jackd -d dummy` to try without a sound card), or choose another --api "
               "(compiled: " + api_names() + ")";
    if (api == RtAudio::UNSPECIFIED)
        return "no audio device found with any API (compiled: " + api_names() +
               "); is a sound card present, or a JACK/PulseAudio server running?";
    return "the " + api_name(api) + " API sees no audio devices; try another --api (compiled: " +
           api_names() + ") or check that the sound card is present";
}

Device resolve_device(RtAudio& audio, RtAudio::Api api, const std::string& spec, bool input) {
    const std::vector<Device> devices = list_devices(audio);
    if (devices.empty()) throw std::runtime_error(no_devices_message(api));
    const char* dir = input ? "input" : "output";
    auto channels = [&](const Device& d) { return input ? d.info.inputChannels : d.info.outputChannels; };
    auto fail = [&](const std::string& what) -> Device {
        throw UsageError(what + "; " + api_name(api) + " devices:" + describe_all(devices) +
                         "\n(see `mambawave devices`)");
    };
    if (spec.empty()) {
        const unsigned id = input ? audio.getDefaultInputDevice() : audio.getDefaultOutputDevice();
        for (const Device& d : devices)
            if (d.id == id && channels(d) > 0) return d;
        for (const Device& d : devices)
            if (channels(d) > 0) return d;
        return fail(std::string("no device with ") + dir + " channels");
    }
    if (all_digits(spec)) {
        const unsigned id = unsigned(std::stoul(spec));
        for (const Device& d : devices)
            if (d.id == id) {
                if (channels(d) == 0) return fail("device " + spec + " '" + d.info.name + "' has no " + dir + " channels");
                return d;
            }
        return fail(std::string("no ") + dir + " device with id " + spec);
    }
    for (const Device& d : devices)
        if (channels(d) > 0 && lower(d.info.name).find(lower(spec)) != std::string::npos) return d;
    return fail(std::string("no ") + dir + " device matches '" + spec + "'");
}

unsigned choose_rate(const Device& out, const Device* in, double requested, double model_rate_hz,
                     RtAudio::Api api) {
    auto ok = [&](unsigned r) { return has_rate(out.info, r) && (!in || has_rate(in->info, r)); };
    if (requested > 0) {
        const unsigned r = unsigned(std::lround(requested));
        if (!ok(r)) {
            const Device& bad = has_rate(out.info, r) ? *in : out;
            std::string msg = "device '" + bad.info.name + "' does not run at " + std::to_string(r) +
                              " Hz; it supports " + rates_text(bad.info.sampleRates);
            if (api == RtAudio::UNIX_JACK)
                msg += " (JACK runs at its server's rate: restart jackd with -r " + std::to_string(r) +
                       ", or leave --rate out)";
            throw UsageError(msg);
        }
        return r;
    }
    const unsigned model_rate = unsigned(std::lround(model_rate_hz));
    if (!out.info.sampleRates.empty() && ok(model_rate)) return model_rate;
    if (out.info.preferredSampleRate && ok(out.info.preferredSampleRate)) return out.info.preferredSampleRate;
    for (unsigned r : {48000u, 44100u, 96000u, 88200u})
        if (ok(r) && (!out.info.sampleRates.empty() || r == 48000u)) return r;
    for (unsigned r : out.info.sampleRates)
        if (ok(r)) return r;
    throw UsageError("the input and output devices share no sample rate (output: " +
                     rates_text(out.info.sampleRates) + ", input: " +
                     (in ? rates_text(in->info.sampleRates) : std::string("-")) + ")");
}

std::vector<std::string> midi_ports(RtAudio::Api audio_api, std::string* why) {
    std::vector<std::string> ports;
    try {
        RtMidiIn midi(audio_api == RtAudio::UNIX_JACK ? RtMidi::UNIX_JACK : RtMidi::LINUX_ALSA, "mambawave");
        const unsigned n = midi.getPortCount();
        for (unsigned i = 0; i < n; ++i) ports.push_back(midi.getPortName(i));
    } catch (const RtMidiError& e) {
        if (why) *why = e.getMessage();
    }
    return ports;
}

} // namespace mw::cli::live
