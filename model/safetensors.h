// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header, then the tensor data. This is the container of both the
// MambaWave model file and the HF transformers checkpoint; model_file.cpp gives it meaning.
//
// The parser trusts nothing in the file: every length, offset and shape is checked against
// the bytes actually present before anything is allocated or read, and every refusal is a
// ModelError naming the file, the tensor and expected vs found.
#pragma once

#include "model/model.h"

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

namespace mw::safetensors {

// The dtypes MambaWave reads (all converted to float on load). Others are refused by name.
enum class DType { F32, F16, BF16 };

const char* to_string(DType dtype);   // "F32", "F16", "BF16" (the file's spelling)
int64_t dtype_bytes(DType dtype);     // 4, 2, 2

// Header limits: a header this large is damage or an attack, not a model.
constexpr uint64_t kMinHeaderBytes = 2;            // "{}"
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // 100 MB
// Deeper JSON nesting than this is refused before parsing (the JSON library recurses when it
// copies, compares or prints a value, so a hostile "[[[[..." header could overflow the stack).
constexpr int kMaxJsonDepth = 64;

// Throws ModelError("<where>: <what> is not valid JSON: ...") when `text` nests deeper than
// kMaxJsonDepth. Cheap: one pass over the bytes, strings skipped.
void check_json_depth(const std::string& where, const std::string& what, const char* text,
                      size_t size);

// "[32, 16]": a shape (or an index) as messages print it.
std::string shape_text(const std::vector<int64_t>& shape);

// A JSON parser's message cut to a readable length (it quotes the text it stopped in, which a
// damaged file can make megabytes long).
std::string short_parse_error(const char* what);

// One tensor of a parsed file. Offsets are relative to the start of the data section.
struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    int64_t numel = 0;
    uint64_t begin_byte = 0;   // data_offsets[0]
    uint64_t end_byte = 0;     // data_offsets[1]; end - begin == numel * dtype_bytes
};

// A parsed view over bytes the caller owns (they must outlive the File).
struct File {
    std::string name;                              // used in messages
    std::map<std::string, std::string> metadata;   // __metadata__ (string -> string)
    std::map<std::string, TensorInfo> tensors;     // by name
    const uint8_t* data = nullptr;                 // the data section
    size_t data_bytes = 0;

    const TensorInfo* find(const std::string& tensor_name) const;
    // Converts a tensor to float: `out` holds info.numel floats.
    void read_floats(const TensorInfo& info, float* out) const;
};

// Parses and checks the header; reads no tensor data. Throws ModelError.
File parse(const std::string& name, const uint8_t* bytes, size_t size);

// A tensor to write: `data` holds numel * dtype_bytes bytes, little-endian.
struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;
};

// The header block: 8-byte length, then the JSON header padded with spaces so that the data
// section starts 8-byte aligned (as the reference implementation does). Tensors are laid out
// back to back in the order given. Throws ModelError for an inconsistent request.
std::string make_header(const std::map<std::string, std::string>& metadata,
                        const std::vector<TensorToWrite>& tensors);
// Header then data, to a stream (check the stream afterwards) or to bytes in memory.
void write(std::ostream& out, const std::map<std::string, std::string>& metadata,
           const std::vector<TensorToWrite>& tensors);
std::vector<uint8_t> to_bytes(const std::map<std::string, std::string>& metadata,
                              const std::vector<TensorToWrite>& tensors);

// IEEE half and bfloat16 conversions (round to nearest even; NaN stays NaN).
float f16_to_float(uint16_t bits);
float bf16_to_float(uint16_t bits);
uint16_t float_to_f16(float value);
uint16_t float_to_bf16(float value);

} // namespace mw::safetensors
