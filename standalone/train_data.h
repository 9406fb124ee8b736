// Reading training and evaluation data from audio files into the trainer's in-memory form:
// resampling to the model's rate, mu-law for generators, and for effect pairs the alignment
// and level checks (a misaligned capture trains a smeared model, so it is fixed or refused,
// and the user is told which).
#pragma once

#include "model/model.h"
#include "model/trainer.h"

#include <string>
#include <utility>
#include <vector>

namespace mw::cli {

// An input/target pair at `rate_hz`, aligned: the latency (known_lag, in samples at the
// target file's rate, when >= 0; else found:
// see the comment in train_data.cpp) is shifted out of the target (fix_latency) or refused.
// Mono files only (a stereo capture is a UsageError naming the file).
struct EffectPair {
    std::string name;
    std::vector<float> input, target;
    int64_t lag = 0;          // samples the target was shifted by
    double correlation = 0;   // at that lag
};
EffectPair load_effect_pair(const std::string& input_path, const std::string& target_path,
                            double rate_hz, double max_latency_ms, bool fix_latency, int64_t known_lag = -1);

// One pair of files: the last `val_fraction` of it held out for validation.
TrainData effect_data_from_pair(const EffectPair& pair, double val_fraction);

// One pair of a capture manifest (docs/DATA.md), its paths resolved against the manifest's
// directory.
struct ManifestPair {
    std::string input, target;                // paths to open
    std::string name;                         // the target as the manifest writes it
    std::string split = "train", set;         // train | val | test; the set within the split
    std::vector<std::pair<std::string, float>> controls;  // knob settings, in name order
    int64_t latency = -1;                     // latency_samples when the manifest measured it
};
// The pairs of one effect (every split), in manifest order. Refuses a manifest that is not
// JSON, a pair without input or target, an unknown split, and an effect with no pairs
// (naming the effects the manifest has).
std::vector<ManifestPair> read_manifest_pairs(const std::string& manifest_path, const std::string& effect);

// A capture manifest (JSON: {"pairs": [{"input", "target", "effect", "controls": {NAME: VALUE},
// "split": "train"|"val"|"test"}]}, paths relative to the manifest) restricted to one effect.
// Returns the data (test pairs left out) and fills `controls` with one ControlSpec per control
// name found, its range spanning the values the pairs use.
TrainData effect_data_from_manifest(const std::string& manifest_path, const std::string& effect,
                                    double rate_hz, double max_latency_ms, bool fix_latency,
                                    std::vector<ControlSpec>& controls);

// Audio files for a generator, from files and directories (searched for .wav/.flac, sorted by
// name), resampled to rate_hz, first channel, mu-law encoded.
// `speeds` (speed perturbation, as speech recognisers train: Ko et al., Interspeech 2015): each
// file again at each factor f, played f times as fast (pitch and tempo together: the audio
// resampled from f·rate_hz to rate_hz, before the mu-law), named "NAME@f" right after it
// (TokenSequence::speed = f). Only
// training uses the copies: token_data_split drops those of validation files. The factors are
// parse_speeds' (checked there). The files are read on `threads` threads (0: every core); the
// clips are the same, in the same order, for any number.
std::vector<TokenSequence> load_token_files(const std::vector<std::string>& paths, double rate_hz,
                                            const std::vector<double>& speeds = {}, int threads = 0);
// The name a speed copy gets: "7_jackson_32.wav@0.9" (parse_speeds' factors print exactly).
std::string speed_copy_name(const std::string& name, double speed);
// --speed-perturb's text ("0.9,1.1"; "none" or empty: no copies) as factors: each in [0.5, 2],
// not 1, no two alike; UsageError naming the factor otherwise.
std::vector<double> parse_speeds(const std::string& text);

// The validation split of generator clips: Free Spoken Digit names "{digit}_{speaker}_{index}"
// with index 5..9 go to validation (the data README's suggestion), any other name by a hash
// of the name (one in ten). Says which rule it used in `rule`. A speed copy ("NAME@f") goes
// where NAME goes, except that copies of validation clips are dropped: validation is the
// recordings as they are.
TrainData token_data_split(std::vector<TokenSequence> clips, std::string& rule);

// A generator told which label to make (ModelConfig::labels, docs/DIGITS.md): each clip's label is
// its file name up to the first '_' (Free Spoken Digit names: the digit), and every clip, training
// and validation, gets `prefix` samples of its label's token in front (ModelConfig::label_tokens),
// whose own predictions go unscored. Returns the labels, sorted; UsageError for a name without
// '_', or fewer than 2 or more than 64 labels.
std::vector<std::string> add_label_prefix(TrainData& d, int prefix);
// Generator clips that end in quiet: `samples` of the silence class (mu-law of 0.0) after every
// training clip, speed copies included, so that the model learns what follows a word (a clip that
// simply ends teaches it nothing, and a generator run past the word's length babbles). Validation
// stays the recordings as they are. UsageError for samples < 1.
void pad_training_ends(TrainData& d, int64_t samples);
// A clip's label: its file name up to the first '_' (7_jackson_32.wav: "7"); a UsageError that
// names the file and `option` (what asked for labels) when it has none.
std::string label_from_name(const TokenSequence& s, const std::string& option);
// For a labelled model (eval): leads the clip with its label's prefix, unscored, as training's
// validation does; a UsageError naming the file when its label is not one of the model's.
void lead_with_label(TokenSequence& s, const ModelConfig& c, const std::string& model_path);

} // namespace mw::cli
