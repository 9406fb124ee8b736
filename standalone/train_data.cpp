#include "standalone/train_data.h"

#include "standalone/cli_common.h"

#include "dsp/align.h"
#include "dsp/audio_file.h"
#include "dsp/mulaw.h"
#include "kernels/thread_pool.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace mw::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string fmt(double v, int digits = 1) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(digits);
    s << v;
    return s.str();
}

// One mono channel at rate_hz.
std::vector<float> read_mono(const std::string& path, double rate_hz, const std::string& role,
                             double* file_rate_hz = nullptr) {
    dsp::AudioData a = dsp::read_audio(path);
    if (file_rate_hz) *file_rate_hz = a.sample_rate_hz;
    if (a.channels.size() != 1)
        throw UsageError(path + ": the " + role + " must be mono, found " + std::to_string(a.channels.size()) +
                         " channels (convert with: sox " + path + " mono.wav remix 1)");
    if (a.sample_rate_hz != rate_hz) {
        note(path + ": resampling " + fmt(a.sample_rate_hz, 0) + " Hz to the model's " + fmt(rate_hz, 0) + " Hz");
        return dsp::resample(a.channels[0], a.sample_rate_hz, rate_hz);
    }
    return std::move(a.channels[0]);
}

} // namespace

EffectPair load_effect_pair(const std::string& input_path, const std::string& target_path,
                            double rate_hz, double max_latency_ms, bool fix_latency, int64_t known_lag) {
    EffectPair p;
    p.name = fs::path(target_path).filename().string();
    p.input = read_mono(input_path, rate_hz, "input");
    double target_rate_hz = rate_hz;
    p.target = read_mono(target_path, rate_hz, "target", &target_rate_hz);
    if (known_lag >= 0) known_lag = std::llround(double(known_lag) * rate_hz / target_rate_hz);
    // Lengths: a recording a little longer or shorter than the input is normal (the recorder
    // ran on); more than a second off means the wrong pair.
    const int64_t ni = int64_t(p.input.size()), nt = int64_t(p.target.size());
    if (std::abs(ni - nt) > int64_t(rate_hz))
        throw UsageError(target_path + ": " + fmt(double(nt) / rate_hz, 2) + " s long but the input " + input_path +
                         " is " + fmt(double(ni) / rate_hz, 2) + " s: is this the recording of that input?");
    const size_t n = size_t(std::min(ni, nt));
    p.input.resize(n);
    p.target.resize(n);

    // Levels: a silent target cannot be learnt; a clipped one teaches the clipping.
    const double in_peak = dsp::peak_dbfs(p.input), out_peak = dsp::peak_dbfs(p.target);
    if (!(out_peak > -90)) throw UsageError(target_path + ": the target is silent (peak " + fmt(out_peak) + " dBFS)");
    if (!(in_peak > -90)) throw UsageError(input_path + ": the input is silent (peak " + fmt(in_peak) + " dBFS)");
    if (dsp::clipped_fraction(p.target) > 1e-4)
        note(target_path + ": " + fmt(100 * dsp::clipped_fraction(p.target), 3) +
             "% of samples are at full scale: the recording clipped; the model will learn the clipping "
             "(record with less gain)");
    if (in_peak < -30)
        note(input_path + ": the input peaks at " + fmt(in_peak) + " dBFS, quiet for a reamp signal (-12..-1 dBFS is usual)");

    const int64_t max_lag = int64_t(std::llround(max_latency_ms * 1e-3 * rate_hz));
    // A manifest that measured the latency vouches for its pairs: no cross-correlation (it costs
    // about 0.3 s a pair at +-50 ms, which made a manifest of hundreds of pairs load for minutes).
    dsp::AlignResult a;
    if (known_lag < 0) a = dsp::find_lag(p.input, p.target, max_lag, int64_t(rate_hz));
    p.correlation = a.correlation;
    // Unrelated audio correlates at about 1/sqrt(window) (0.005 for a second at 48 kHz); a pedal's
    // filters can bring a real pair as low as 0.1 (a mid-hump on a drum kit).
    if (known_lag < 0 && a.correlation < 0.05)
        throw UsageError(target_path + ": does not follow " + input_path + " (best normalised cross-correlation " +
                         fmt(a.correlation, 3) + " within +-" + fmt(max_latency_ms, 0) +
                         " ms; expected > 0.05): is it the recording of this input, or is the latency larger "
                         "(--max-latency-ms)?");
    if (known_lag < 0 && a.correlation < 0.2)
        note(target_path + ": follows the input only loosely (cross-correlation " + fmt(a.correlation, 3) +
             "): heavy filtering, or not the recording of this input?");
    // The latency: given (a manifest that measured it), or the onset of the target's response to
    // the capture signal's sync clicks (its sidecar JSON) or to the input's first transient after
    // quiet; the cross-correlation peak only as a last resort (a pedal's filters move that peak
    // by tens of samples without any latency).
    int64_t lag = known_lag;
    std::string how = "given";
    if (lag < 0) {
        std::vector<int64_t> start_clicks, end_clicks;
        const std::string sidecar = input_path + ".json";
        if (fs::exists(sidecar)) {
            try {
                std::ifstream f(sidecar);
                const json j = json::parse(f);
                const double scale = rate_hz / j.at("sample_rate_hz").get<double>();
                for (const json& v : j.at("sync").at("start_frames")) start_clicks.push_back(std::llround(v.get<double>() * scale));
                for (const json& v : j.at("sync").at("end_frames")) end_clicks.push_back(std::llround(v.get<double>() * scale));
            } catch (const std::exception& e) {
                note(sidecar + ": not a capture-signal sidecar (" + std::string(e.what()) + "); timing by transients");
                start_clicks.clear();
                end_clicks.clear();
            }
        }
        if (!start_clicks.empty()) {
            const int64_t at_start = dsp::onset_lag(p.input, p.target, start_clicks, max_lag);
            const int64_t at_end = dsp::onset_lag(p.input, p.target, end_clicks, max_lag);
            if (at_start >= 0 && at_end >= 0 && std::abs(at_end - at_start) > 2)
                throw UsageError(target_path + ": the latency drifts from " + std::to_string(at_start) + " samples at the "
                                 "start to " + std::to_string(at_end) + " at the end: the recorder and the player ran on "
                                 "different clocks; record with one audio interface for both");
            lag = at_start;
            how = "onset at the sync clicks";
        }
        if (lag < 0) {
            const int64_t t0 = dsp::first_transient(p.input);
            if (t0 >= 0) {
                lag = dsp::onset_lag(p.input, p.target, {t0}, max_lag);
                how = "onset at the first transient";
                // Swapped files: the "target" is already sounding at the input's transient and
                // the "input" responds later.
                const int64_t t1 = dsp::first_transient(p.target);
                if (lag == 0 && t1 >= 0 && dsp::onset_lag(p.target, p.input, {t1}, max_lag) > 0)
                    throw UsageError(target_path + ": the target leads the input: a causal model cannot learn "
                                     "that; check that input and target are not swapped");
            }
        }
        if (lag < 0) {
            if (a.lag < 0)
                throw UsageError(target_path + ": the target leads the input by " + std::to_string(-a.lag) +
                                 " samples (cross-correlation): a causal model cannot learn that; check that input "
                                 "and target are not swapped");
            lag = a.lag;
            how = "cross-correlation peak (no click or transient after quiet to time)";
        }
    }
    if (lag != 0) {
        const std::string what = std::to_string(lag) + " samples (" + fmt(1e3 * double(lag) / rate_hz, 2) + " ms, " + how + ")";
        if (!fix_latency)
            throw UsageError(target_path + ": the target lags the input by " + what +
                             "; drop --no-fix-latency to shift it into line, or fix the recording");
        if (known_lag < 0) note(target_path + ": the target lags the input by " + what + "; shifted it into line");
        dsp::apply_lag(p.target, lag);
        p.input.resize(n - size_t(lag));
        p.target.resize(n - size_t(lag));
        p.lag = lag;
    }
    return p;
}

TrainData effect_data_from_pair(const EffectPair& pair, double val_fraction) {
    if (!(val_fraction > 0 && val_fraction < 0.5))
        throw UsageError("--val-fraction must be in (0, 0.5), found " + fmt(val_fraction, 3));
    const size_t n = pair.input.size();
    const size_t split = size_t(double(n) * (1.0 - val_fraction));
    TrainData d;
    EffectSequence train{pair.name + " [0, " + std::to_string(split) + ")",
                         {pair.input.begin(), pair.input.begin() + ptrdiff_t(split)},
                         {pair.target.begin(), pair.target.begin() + ptrdiff_t(split)},
                         {}};
    EffectSequence val{pair.name + " [" + std::to_string(split) + ", " + std::to_string(n) + ")",
                       {pair.input.begin() + ptrdiff_t(split), pair.input.end()},
                       {pair.target.begin() + ptrdiff_t(split), pair.target.end()},
                       {}};
    d.effect_train.push_back(std::move(train));
    d.effect_val.push_back(std::move(val));
    d.description = pair.name + ": the last " + fmt(100 * val_fraction, 0) + "% held out for validation" +
                    (pair.lag ? ", target shifted by " + std::to_string(pair.lag) + " samples" : "");
    return d;
}

namespace {

json parse_manifest(const std::string& manifest_path) {
    std::ifstream f(manifest_path);
    if (!f) throw UsageError("cannot open manifest " + manifest_path);
    try {
        return json::parse(f);
    } catch (const json::exception& e) {
        throw UsageError(manifest_path + ": not valid JSON (" + std::string(e.what()) + ")");
    }
}

std::vector<ManifestPair> manifest_pairs(const json& m, const std::string& manifest_path, const std::string& effect) {
    const json& pairs = m.is_array() ? m : m.value("pairs", json::array());
    if (!pairs.is_array() || pairs.empty()) throw UsageError(manifest_path + ": no \"pairs\" array");
    const fs::path base = fs::path(manifest_path).parent_path();
    std::set<std::string> effects;
    std::vector<ManifestPair> out;
    for (size_t i = 0; i < pairs.size(); ++i) {
        const json& p = pairs[i];
        const std::string where = manifest_path + ": pairs[" + std::to_string(i) + "]";
        if (!p.is_object() || !p.contains("input") || !p.contains("target"))
            throw UsageError(where + ": expected an object with \"input\" and \"target\"");
        try {
            const std::string eff = p.value("effect", "");
            effects.insert(eff);
            if (eff != effect) continue;
            ManifestPair q;
            q.split = p.value("split", "train");
            if (q.split != "train" && q.split != "val" && q.split != "test")
                throw UsageError(where + ": split \"" + q.split + "\", expected train, val or test");
            q.set = p.value("set", "");
            q.name = p["target"].get<std::string>();
            q.input = (base / p["input"].get<std::string>()).string();
            q.target = (base / q.name).string();
            // A manifest that measured the latency says so ("latency_samples", at the files' rate).
            q.latency = p.contains("latency_samples") ? p["latency_samples"].get<int64_t>() : -1;
            const json c = p.value("controls", json::object());
            for (auto it = c.begin(); it != c.end(); ++it) q.controls.emplace_back(it.key(), it.value().get<float>());
            out.push_back(std::move(q));
        } catch (const json::exception& e) {
            throw UsageError(where + ": " + e.what());
        }
    }
    if (out.empty()) {
        std::string names;
        for (const std::string& e : effects) names += (names.empty() ? "" : ", ") + e;
        throw UsageError(manifest_path + ": no pairs for effect \"" + effect + "\" (effects: " + names + ")");
    }
    return out;
}

// fn(0..n-1) on the pool's threads; every task runs, then the failure of the lowest index is
// rethrown (ThreadPool::run rethrows the first in time, which depends on the threads), so a bad
// file is reported the same way on any number of cores.
void run_reporting_in_order(kernels::ThreadPool& pool, size_t n, const std::function<void(size_t)>& fn) {
    std::vector<std::exception_ptr> errors(n);
    pool.run(int(n), [&](int i) {
        try {
            fn(size_t(i));
        } catch (...) {
            errors[size_t(i)] = std::current_exception();
        }
    });
    for (const std::exception_ptr& e : errors)
        if (e) std::rethrow_exception(e);
}

// Every pair of a manifest, read and checked on all cores (decoding and resampling dominate),
// in the manifest's order; the first failure (in that order) is the one reported.
std::vector<EffectPair> load_pairs_parallel(const std::vector<ManifestPair>& pairs, double rate_hz,
                                            double max_latency_ms, bool fix_latency) {
    std::vector<EffectPair> out(pairs.size());
    kernels::ThreadPool pool(0);
    run_reporting_in_order(pool, pairs.size(), [&](size_t i) {
        const ManifestPair& p = pairs[i];
        out[i] = load_effect_pair(p.input, p.target, rate_hz, max_latency_ms, fix_latency, p.latency);
    });
    return out;
}

} // namespace

std::vector<ManifestPair> read_manifest_pairs(const std::string& manifest_path, const std::string& effect) {
    return manifest_pairs(parse_manifest(manifest_path), manifest_path, effect);
}

TrainData effect_data_from_manifest(const std::string& manifest_path, const std::string& effect,
                                    double rate_hz, double max_latency_ms, bool fix_latency,
                                    std::vector<ControlSpec>& controls) {
    const json m = parse_manifest(manifest_path);
    std::map<std::string, std::pair<float, float>> ranges;  // control -> min, max seen
    TrainData d;
    int n_train = 0, n_val = 0;
    std::vector<ManifestPair> pairs = manifest_pairs(m, manifest_path, effect);
    std::erase_if(pairs, [](const ManifestPair& p) { return p.split == "test"; });  // never trained or tuned on
    std::vector<EffectPair> loaded = load_pairs_parallel(pairs, rate_hz, max_latency_ms, fix_latency);
    for (size_t i = 0; i < pairs.size(); ++i) {
        const ManifestPair& p = pairs[i];
        EffectSequence s;
        s.name = p.name;
        s.input = std::move(loaded[i].input);
        s.target = std::move(loaded[i].target);
        for (const auto& [name, v] : p.controls) {
            auto [r, fresh] = ranges.emplace(name, std::make_pair(v, v));
            if (!fresh) r->second = {std::min(r->second.first, v), std::max(r->second.second, v)};
            s.controls.push_back(v);
        }
        (p.split == "val" ? d.effect_val : d.effect_train).push_back(std::move(s));
        (p.split == "val" ? n_val : n_train) += 1;
    }
    if (n_train == 0) throw UsageError(manifest_path + ": no training pairs (split \"train\") for effect \"" + effect + "\"");
    if (n_val == 0) throw UsageError(manifest_path + ": no validation pairs (split \"val\") for effect \"" + effect + "\"");
    // Controls in name order (json objects iterate sorted), every pair must name all of them.
    // Their ranges are the values the pairs visit, unless the manifest declares the knob under
    // "effects": {EFFECT: {"controls": {NAME: {"min", "max", "default", "unit", "log_scale"}}}}
    // (a declared range must hold every value the pairs use).
    const json declared = m.is_object() && m.contains("effects") && m["effects"].contains(effect)
                              ? m["effects"][effect].value("controls", json::object())
                              : json::object();
    controls.clear();
    for (const auto& [name, r] : ranges) {
        ControlSpec spec;
        spec.name = name;
        spec.min_value = r.first;
        spec.max_value = r.second > r.first ? r.second : r.first + 1.0f;
        spec.default_value = 0.5f * (spec.min_value + spec.max_value);
        if (declared.contains(name) && declared[name].is_object()) {
            const json& k = declared[name];
            const std::string where = manifest_path + ": effects." + effect + ".controls." + name;
            try {
                spec.min_value = k.value("min", spec.min_value);
                spec.max_value = k.value("max", spec.max_value);
                spec.default_value = k.value("default", 0.5f * (spec.min_value + spec.max_value));
                spec.unit = k.value("unit", std::string());
                spec.log_scale = k.value("log_scale", false);
            } catch (const json::exception& e) {
                throw UsageError(where + ": " + e.what());
            }
            if (!(spec.min_value < spec.max_value) || r.first < spec.min_value || r.second > spec.max_value ||
                spec.default_value < spec.min_value || spec.default_value > spec.max_value ||
                (spec.log_scale && spec.min_value <= 0.0f))
                throw UsageError(where + ": declared range " + std::to_string(spec.min_value) + ".." +
                                 std::to_string(spec.max_value) + " (default " + std::to_string(spec.default_value) +
                                 ") does not hold the values the pairs use (" + std::to_string(r.first) + ".." +
                                 std::to_string(r.second) + ")");
        }
        controls.push_back(spec);
    }
    for (const auto* set : {&d.effect_train, &d.effect_val})
        for (const EffectSequence& s : *set)
            if (s.controls.size() != controls.size())
                throw UsageError(manifest_path + ": " + s.name + " sets " + std::to_string(s.controls.size()) +
                                 " controls, other pairs " + std::to_string(controls.size()) +
                                 ": every pair of an effect must give every control");
    d.description = manifest_path + " effect \"" + effect + "\": " + std::to_string(n_train) + " training and " +
                    std::to_string(n_val) + " validation pairs (the manifest's split; test pairs left out)";
    return d;
}

std::vector<double> parse_speeds(const std::string& text) {
    std::vector<double> speeds;
    for (const std::string& item : list_items(text)) {
        double f = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), f);
        if (item.empty() || ec != std::errc() || end != item.data() + item.size() || !(f >= 0.5 && f <= 2.0) ||
            f == 1.0)
            throw UsageError("--speed-perturb '" + text + "': '" + item + "' is not a speed factor in 0.5..2 other "
                             "than 1 (give none, or factors such as 0.9,1.1)");
        if (std::find(speeds.begin(), speeds.end(), f) != speeds.end())
            throw UsageError("--speed-perturb '" + text + "': " + item + " is given twice");
        speeds.push_back(f);
    }
    return speeds;
}

std::string speed_copy_name(const std::string& name, double speed) { return name + "@" + fmt_g(speed, 6); }

std::vector<TokenSequence> load_token_files(const std::vector<std::string>& paths, double rate_hz,
                                            const std::vector<double>& speeds, int threads) {
    std::vector<std::string> files;
    for (const std::string& p : paths) {
        if (fs::is_directory(p)) {
            std::vector<std::string> found;
            for (const auto& e : fs::recursive_directory_iterator(p)) {
                const std::string ext = e.path().extension().string();
                if (e.is_regular_file() && (ext == ".wav" || ext == ".flac" || ext == ".WAV" || ext == ".FLAC"))
                    found.push_back(e.path().string());
            }
            if (found.empty()) throw UsageError(p + ": no .wav or .flac files in this directory");
            std::sort(found.begin(), found.end());
            files.insert(files.end(), found.begin(), found.end());
        } else if (fs::is_regular_file(p)) {
            files.push_back(p);
        } else {
            throw UsageError(p + ": no such file or directory");
        }
    }
    auto encode = [](std::string name, const std::vector<float>& x, double speed = 1) {
        TokenSequence s;
        s.name = std::move(name);
        s.speed = speed;
        s.tokens.resize(x.size());
        for (size_t t = 0; t < x.size(); ++t) s.tokens[t] = dsp::mulaw_encode(x[t]);
        return s;
    };
    // On every core (decoding and resampling dominate: 2400 clips with six speed copies took 36 s
    // on one), each file's clips in their own slot, so the order is the files' whatever the
    // threads; the first failure in that order is the one reported.
    kernels::ThreadPool pool(threads);
    if (files.size() > 100 || (!speeds.empty() && files.size() > 10))
        note("reading " + std::to_string(files.size()) + " files" +
             (speeds.empty() ? "" : " and making " + std::to_string(files.size() * speeds.size()) + " speed copies") +
             " on " + std::to_string(pool.size()) + " thread" + (pool.size() == 1 ? "" : "s"));
    std::vector<std::vector<TokenSequence>> per_file(files.size());
    run_reporting_in_order(pool, files.size(), [&](size_t i) {
        const std::string& f = files[i];
        std::vector<TokenSequence>& mine = per_file[i];
        const dsp::AudioData a = dsp::read_audio(f);
        const std::vector<float>& x0 = a.channels[0];
        const std::string name = fs::path(f).filename().string();
        mine.push_back(encode(name, a.sample_rate_hz == rate_hz ? x0 : dsp::resample(x0, a.sample_rate_hz, rate_hz)));
        if (mine.back().tokens.size() < 2) throw UsageError(f + ": fewer than 2 samples at " + fmt(rate_hz, 0) + " Hz");
        // f times as fast: the file's samples taken as if recorded at f times its rate
        for (double speed : speeds)
            mine.push_back(
                encode(speed_copy_name(name, speed), dsp::resample(x0, speed * a.sample_rate_hz, rate_hz), speed));
    });
    std::vector<TokenSequence> out;
    out.reserve(files.size() * (1 + speeds.size()));
    for (std::vector<TokenSequence>& mine : per_file)
        for (TokenSequence& s : mine) out.push_back(std::move(s));
    return out;
}

TrainData token_data_split(std::vector<TokenSequence> clips, std::string& rule) {
    static const std::regex fsdd(R"(^(\d+)_([A-Za-z]+)_(\d+)\.(wav|flac)$)");
    auto base = [](const TokenSequence& s) {  // the recording's name (a speed copy's: without its "@f")
        return s.speed == 1 ? s.name : s.name.substr(0, s.name.rfind('@'));
    };
    const bool all_fsdd = std::all_of(clips.begin(), clips.end(), [&](const TokenSequence& s) {
        const std::string b = base(s);
        return std::regex_match(b, fsdd);
    });
    TrainData d;
    int64_t copies = 0, dropped = 0;
    for (TokenSequence& s : clips) {
        const std::string name = base(s);
        const bool copy = s.speed != 1;
        bool val;
        if (all_fsdd) {
            std::smatch m;
            std::regex_match(name, m, fsdd);
            const int index = std::stoi(m[3].str());
            val = index >= 5 && index <= 9;
        } else {
            uint64_t h = 1469598103934665603ull;
            for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
            val = h % 10 == 0;
        }
        if (copy && val) {
            ++dropped;
            continue;
        }
        copies += copy;
        (val ? d.token_val : d.token_train).push_back(std::move(s));
    }
    rule = all_fsdd ? "Free Spoken Digit names: recordings with index 5..9 held out for validation"
                    : "one file in ten held out for validation (by a hash of the file name)";
    if (d.token_train.empty() || d.token_val.empty())
        throw UsageError("the validation split (" + rule + ") left " + std::to_string(d.token_train.size()) +
                         " training and " + std::to_string(d.token_val.size()) + " validation files: give more files");
    d.description = std::to_string(d.token_train.size() - size_t(copies)) + " training and " +
                    std::to_string(d.token_val.size()) + " validation clips; " + rule;
    if (copies + dropped > 0)
        d.description += "; the training clips also sped up or slowed down (" + std::to_string(copies) +
                         " resampled copies; the validation clips' " + std::to_string(dropped) + " left out)";
    return d;
}

std::string label_from_name(const TokenSequence& s, const std::string& option) {
    const size_t cut = s.name.find('_');
    if (cut == std::string::npos || cut == 0)
        throw UsageError(s.name + ": " + option + " takes each clip's label from its file name up to the first "
                         "'_' (as in 7_jackson_32.wav), and this name has none");
    return s.name.substr(0, cut);
}

void pad_training_ends(TrainData& d, int64_t samples) {
    if (samples < 1) throw UsageError("--pad-end is " + std::to_string(samples) + " samples, expected at least 1");
    for (TokenSequence& s : d.token_train) s.tokens.insert(s.tokens.end(), size_t(samples), kSilenceClass);
    d.description += "; each training clip followed by " + std::to_string(samples) + " samples of silence";
}

void lead_with_label(TokenSequence& s, const ModelConfig& c, const std::string& model_path) {
    const std::string label = label_from_name(s, "a model trained with --label-prefix");
    const int i = c.label_index(label);
    if (i < 0)
        throw UsageError(s.name + ": its label '" + label + "' (the file name up to the first '_') is not one of " +
                         model_path + "'s labels: " + describe_labels(c));
    const std::vector<int32_t> lead = c.label_tokens(i);
    s.tokens.insert(s.tokens.begin(), lead.begin(), lead.end());
    s.unscored = c.label_prefix - 1;  // (the prefix's last sample predicts the clip's first: scored)
}

std::vector<std::string> add_label_prefix(TrainData& d, int prefix) {
    if (prefix < 1 || prefix > 4096)
        throw UsageError("--label-prefix is " + std::to_string(prefix) + ", expected 1..4096 samples");
    auto label_of = [](const TokenSequence& s) { return label_from_name(s, "--label-prefix"); };
    std::vector<std::string> labels;
    for (const auto* set : {&d.token_train, &d.token_val})
        for (const TokenSequence& s : *set) labels.push_back(label_of(s));
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
    if (labels.size() < 2 || labels.size() > 64)
        throw UsageError("--label-prefix: the file names give " + std::to_string(labels.size()) +
                         " labels, expected 2..64");
    for (auto* set : {&d.token_train, &d.token_val})
        for (TokenSequence& s : *set) {
            const int i = int(std::lower_bound(labels.begin(), labels.end(), label_of(s)) - labels.begin());
            s.tokens.insert(s.tokens.begin(), size_t(prefix), ModelConfig::label_token(i));
            s.unscored = prefix - 1;  // (the prefix's last sample predicts the clip's first: scored)
        }
    d.description += "; each clip led by " + std::to_string(prefix) + " samples of its label's token (" +
                     std::to_string(labels.size()) + " labels from the file names)";
    return labels;
}

} // namespace mw::cli
