// `mambawave devices`: the audio APIs this build has, each API's devices (id, name, channels,
// rates, default marks) and the MIDI input ports, as text or JSON. What `live` takes for
// --api, --input, --output and --midi.
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "standalone/live_audio.h"

#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

namespace mw::cli {

namespace {

struct DevicesOptions {
    std::string api;
    bool json = false;
};

void run_devices(const DevicesOptions& o) {
    std::vector<RtAudio::Api> apis = live::compiled_apis();
    if (!o.api.empty()) apis = {live::parse_api(o.api)};
    nlohmann::json doc;
    doc["apis"] = nlohmann::json::array();
    RtAudio::Api midi_api = RtAudio::LINUX_ALSA;
    for (RtAudio::Api api : apis) {
        nlohmann::json entry;
        entry["name"] = live::api_name(api);
        entry["display_name"] = RtAudio::getApiDisplayName(api);
        entry["devices"] = nlohmann::json::array();
        std::vector<live::Device> devices;
        try {
            auto audio = live::open_api(api);
            devices = live::list_devices(*audio);
        } catch (const RtAudioError& e) {
            entry["error"] = e.getMessage();
        }
        if (devices.empty() && !entry.contains("error")) entry["note"] = live::no_devices_message(api);
        for (const live::Device& d : devices) {
            nlohmann::json j;
            j["id"] = d.id;
            j["name"] = d.info.name;
            j["input_channels"] = d.info.inputChannels;
            j["output_channels"] = d.info.outputChannels;
            j["duplex_channels"] = d.info.duplexChannels;
            j["sample_rates"] = d.info.sampleRates;
            j["preferred_sample_rate"] = d.info.preferredSampleRate;
            j["default_input"] = d.info.isDefaultInput;
            j["default_output"] = d.info.isDefaultOutput;
            entry["devices"].push_back(j);
        }
        if (api == RtAudio::UNIX_JACK && !devices.empty()) midi_api = RtAudio::UNIX_JACK;
        doc["apis"].push_back(entry);
    }
    std::string why;
    const std::vector<std::string> ports = live::midi_ports(midi_api, &why);
    doc["midi_inputs"] = {{"api", midi_api == RtAudio::UNIX_JACK ? "jack" : "alsa"}, {"ports", ports}};
    if (!why.empty()) doc["midi_inputs"]["error"] = why;

    if (o.json) {
        std::cout << doc.dump(2) << "\n";
        return;
    }
    std::cout << "audio APIs compiled in: " << live::api_names() << "\n";
    for (const auto& entry : doc["apis"]) {
        std::cout << "\n" << entry["name"].get<std::string>() << " (" << entry["display_name"].get<std::string>() << ")";
        if (entry.contains("error")) std::cout << ": error: " << entry["error"].get<std::string>();
        else if (entry.contains("note")) std::cout << ": " << entry["note"].get<std::string>();
        std::cout << "\n";
        for (const auto& d : entry["devices"]) {
            std::string rates;
            for (unsigned r : d["sample_rates"]) {
                if (!rates.empty()) rates += ' ';
                rates += std::to_string(r);
            }
            std::cout << "  " << d["id"].get<unsigned>() << "  " << d["name"].get<std::string>() << "\n"
                      << "     in " << d["input_channels"].get<unsigned>() << ", out "
                      << d["output_channels"].get<unsigned>() << ", rates " << (rates.empty() ? "?" : rates) << " Hz";
            if (d["preferred_sample_rate"].get<unsigned>())
                std::cout << " (preferred " << d["preferred_sample_rate"].get<unsigned>() << ")";
            if (d["default_input"].get<bool>()) std::cout << ", default input";
            if (d["default_output"].get<bool>()) std::cout << ", default output";
            std::cout << "\n";
        }
    }
    std::cout << "\nMIDI inputs (" << doc["midi_inputs"]["api"].get<std::string>() << "):";
    if (ports.empty()) std::cout << " none" << (why.empty() ? "" : " (" + why + ")");
    std::cout << "\n";
    for (size_t i = 0; i < ports.size(); ++i) std::cout << "  " << i << "  " << ports[i] << "\n";
}

} // namespace

void add_devices_command(CLI::App& app) {
    auto o = std::make_shared<DevicesOptions>();
    CLI::App* sub = app.add_subcommand("devices", "List the audio APIs, audio devices and MIDI inputs that "
                                                  "`mambawave live` can use");
    sub->add_option("--api", o->api, "Only this audio API (" + live::api_names() + ")");
    sub->add_flag("--json", o->json, "Print JSON instead of text (ids, names, channels, rates, defaults)");
    sub->footer(
        "A device is named to `live` by its id or by part of its name:\n"
        "  mambawave live -m amp.safetensors --api alsa --input 'USB' --output 'USB'\n"
        "Ids are per API and can change when devices come and go; names are steadier.\n"
        "JACK shows its clients (usually one device, 'system') only while a JACK server runs; the\n"
        "rates of a JACK device are the server's one rate. MIDI inputs are listed for the ALSA\n"
        "sequencer, or for JACK MIDI when a JACK server runs.\n\n"
        "Examples:\n"
        "  mambawave devices\n"
        "  mambawave devices --api jack --json");
    sub->callback([o] { run_devices(*o); });
}

} // namespace mw::cli
