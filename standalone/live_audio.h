// What `mambawave devices` and `mambawave live` share: RtAudio APIs and devices by name, the
// choice of a device from "--output 3" or "--output USB", MIDI input ports, and error messages
// that list what there is to choose from.
#pragma once

#include <rtaudio/RtAudio.h>

#include <memory>
#include <string>
#include <vector>

namespace mw::cli::live {

// Compiled audio APIs, in RtAudio's order of preference (jack, pulse, alsa on Debian).
std::vector<RtAudio::Api> compiled_apis();
std::string api_name(RtAudio::Api api);   // "jack", "alsa", ...
std::string api_names();                  // "jack, pulse, alsa"
// "--api NAME": a compiled API, or a UsageError listing them. "" = the first compiled API
// that has at least one device (UNSPECIFIED when none has).
RtAudio::Api parse_api(const std::string& name);

// An RtAudio for one API with its warnings off (we report errors ourselves).
std::unique_ptr<RtAudio> open_api(RtAudio::Api api);

struct Device {
    unsigned id = 0;
    RtAudio::DeviceInfo info;
};
std::vector<Device> list_devices(RtAudio& audio);

// "0 'system' (2 in, 2 out, 48000 Hz, default out)"
std::string describe(const Device& d);
// Every device of the API, one per line, for error messages.
std::string describe_all(const std::vector<Device>& devices);

// The device a "--input"/"--output" argument names: "" = the API's default for that direction,
// a number = that id, anything else = the first device whose name contains it (case-insensitive).
// It must have channels in that direction. Errors (runtime_error) list the devices.
Device resolve_device(RtAudio& audio, RtAudio::Api api, const std::string& spec, bool input);

// The message for an API that sees no devices at all (JACK: the server is not running).
std::string no_devices_message(RtAudio::Api api);

// The rate to open a device at: `requested` (0 = choose) checked against what the device lists;
// by default the model's rate when the device has it (no resampling), else the device's
// preferred rate. Errors name the rates the device supports.
unsigned choose_rate(const Device& out, const Device* in, double requested, double model_rate_hz,
                     RtAudio::Api api);

// MIDI input ports of the RtMidi API that goes with the audio API (JACK MIDI with jack, ALSA
// sequencer otherwise). Empty (and *why set) when no MIDI system is reachable.
std::vector<std::string> midi_ports(RtAudio::Api audio_api, std::string* why = nullptr);

} // namespace mw::cli::live
