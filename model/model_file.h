// Model files: a MambaWave .safetensors (config JSON in __metadata__["mambawave"]) or an
// HF transformers Mamba checkpoint directory (config.json + model.safetensors).
// Every error is a ModelError naming the file, the tensor or field, expected vs found.
#pragma once

#include "model/model.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mw {

// A file or a directory (HF checkpoint). Throws ModelError; never returns a half-loaded model.
Model load_model(const std::string& path);

// The same, from bytes in memory (a .safetensors image); `name` is used in messages.
// This is what the fuzzer drives.
Model load_model_from_bytes(const std::string& name, const uint8_t* data, size_t size);

// Writes a MambaWave .safetensors (F32 tensors, config in the metadata) under a temporary
// name and renames it into place only on success. Throws ModelError on I/O failure.
void save_model(const Model& model, const std::string& path);
// The same file image in memory (tests, fuzzers, sending a model elsewhere).
std::vector<uint8_t> save_model_to_bytes(const Model& model);

// The config as the JSON object stored in the file, and back (field errors name `where`).
std::string config_to_json(const ModelConfig& config);
ModelConfig config_from_json(const std::string& json_text, const std::string& where);
// An HF transformers config.json (MambaConfig fields; time_step_rank may be "auto", an "io"
// section is optional and defaults to an 8 kHz mu-law generator; no format_version needed).
ModelConfig hf_config_from_json(const std::string& json_text, const std::string& where);

// The format version this build writes; files with a newer major version are refused.
constexpr int kFormatVersion = 3;  // 2: lti_layers; 3: pool (a file without either is written as 1)

} // namespace mw
