#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>
#include <sstream>

namespace mw::safetensors {

// Tensor bytes are copied straight between memory and file, so the host must be
// little-endian like the format (every platform the plugin targets is).
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& file, const std::string& what) {
    throw ModelError(file + ": " + what);
}

// "a string", "a number", ... for messages about a JSON value of the wrong type.
std::string json_kind(const json& value) {
    if (value.is_string()) return "a string";
    if (value.is_number_float()) return "the number " + value.dump();
    if (value.is_number()) return "the integer " + value.dump();
    if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
    if (value.is_null()) return "null";
    if (value.is_array()) return "an array";
    return "an object";
}

// A JSON value for a message, cut short: a hostile header can hold megabytes in one value.
std::string short_dump(const json& value) {
    std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() > 60) text = text.substr(0, 57) + "...";
    return text;
}

uint64_t read_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

bool parse_dtype(const std::string& text, DType& dtype) {
    if (text == "F32") dtype = DType::F32;
    else if (text == "F16") dtype = DType::F16;
    else if (text == "BF16") dtype = DType::BF16;
    else return false;
    return true;
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const json& j) {
    if (!j.is_object())
        fail(file, "header entry '__metadata__' is " + json_kind(j) +
                       ", expected an object of strings");
    std::map<std::string, std::string> metadata;
    for (const auto& [key, value] : j.items()) {
        if (!value.is_string())
            fail(file, "metadata entry '" + key + "' is " + json_kind(value) + ", expected a string");
        metadata[key] = value.get<std::string>();
    }
    return metadata;
}

// shape: an array of non-negative integers whose product (and byte size) fits in int64.
void parse_shape(const std::string& file, TensorInfo& t, const json& j) {
    if (!j.is_array())
        fail(file, "tensor '" + t.name + "' has 'shape' " + json_kind(j) +
                       ", expected an array of non-negative integers");
    const int64_t max_numel = std::numeric_limits<int64_t>::max() / 4;  // room for the byte size
    t.numel = 1;
    for (const json& d : j) {
        if (!d.is_number_unsigned())
            fail(file, "tensor '" + t.name + "' has a shape dimension that is " + json_kind(d) +
                           ", expected a non-negative integer");
        const uint64_t dim = d.get<uint64_t>();
        if (dim > uint64_t(max_numel) || (dim != 0 && t.numel > max_numel / int64_t(dim)))
            fail(file, "tensor '" + t.name + "' has a shape whose element count overflows");
        t.shape.push_back(int64_t(dim));
        t.numel *= int64_t(dim);
    }
}

// data_offsets: [begin, end] inside the data section, end - begin = numel * dtype size.
void parse_offsets(const std::string& file, TensorInfo& t, const json& j, size_t data_bytes) {
    if (!j.is_array() || j.size() != 2 || !j[0].is_number_unsigned() || !j[1].is_number_unsigned())
        fail(file, "tensor '" + t.name + "' has 'data_offsets' " + short_dump(j) +
                       ", expected [begin, end] (two non-negative integers)");
    t.begin_byte = j[0].get<uint64_t>();
    t.end_byte = j[1].get<uint64_t>();
    if (t.begin_byte > t.end_byte || t.end_byte > data_bytes)
        fail(file, "tensor '" + t.name + "' has data_offsets [" + std::to_string(t.begin_byte) +
                       ", " + std::to_string(t.end_byte) + "] outside the data section of " +
                       std::to_string(data_bytes) + " bytes; the file is truncated or damaged");
    const uint64_t expected = uint64_t(t.numel) * uint64_t(dtype_bytes(t.dtype));
    if (t.end_byte - t.begin_byte != expected)
        fail(file, "tensor '" + t.name + "' has " + std::to_string(t.end_byte - t.begin_byte) +
                       " bytes of data, expected " + std::to_string(expected) + " (" +
                       to_string(t.dtype) + " " + shape_text(t.shape) + ")");
}

TensorInfo parse_tensor(const std::string& file, const std::string& name, const json& j,
                        size_t data_bytes) {
    TensorInfo t;
    t.name = name;
    if (name.empty()) fail(file, "a tensor has an empty name");
    if (!j.is_object())
        fail(file, "header entry for tensor '" + name + "' is " + json_kind(j) +
                       ", expected an object with dtype, shape and data_offsets");
    for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!j.contains(key)) fail(file, "tensor '" + name + "' has no '" + key + "' in the header");
    const json& dtype = j["dtype"];
    if (!dtype.is_string())
        fail(file, "tensor '" + name + "' has 'dtype' " + json_kind(dtype) + ", expected a string");
    if (!parse_dtype(dtype.get<std::string>(), t.dtype))
        fail(file, "tensor '" + name + "' has dtype '" + dtype.get<std::string>() +
                       "', which MambaWave cannot read (supported: F32, F16, BF16); "
                       "convert the checkpoint to float32");
    parse_shape(file, t, j["shape"]);
    parse_offsets(file, t, j["data_offsets"], data_bytes);
    return t;
}

// Two tensors sharing bytes would alias each other: refused.
void check_no_overlap(const std::string& file, const std::map<std::string, TensorInfo>& tensors) {
    std::vector<const TensorInfo*> by_offset;
    for (const auto& [name, t] : tensors)
        if (t.end_byte > t.begin_byte) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return a->begin_byte < b->begin_byte;
    });
    for (size_t i = 1; i < by_offset.size(); ++i)
        if (by_offset[i]->begin_byte < by_offset[i - 1]->end_byte)
            fail(file, "tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name +
                           "' overlap in the data section (data_offsets [" +
                           std::to_string(by_offset[i - 1]->begin_byte) + ", " +
                           std::to_string(by_offset[i - 1]->end_byte) + "] and [" +
                           std::to_string(by_offset[i]->begin_byte) + ", " +
                           std::to_string(by_offset[i]->end_byte) + "])");
}

json parse_header_json(const std::string& file, const char* text, size_t size) {
    check_json_depth(file, "the safetensors header", text, size);
    try {
        return json::parse(text, text + size);
    } catch (const json::exception& e) {
        // parse_error, or out_of_range for a number too large for a double (1e999)
        fail(file, "the safetensors header is not valid JSON (" + short_parse_error(e.what()) +
                       "); the file is damaged or not a safetensors file");
    }
}

} // namespace

const char* to_string(DType dtype) {
    switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    }
    return "?";
}

int64_t dtype_bytes(DType dtype) { return dtype == DType::F32 ? 4 : 2; }

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

std::string short_parse_error(const char* what) {
    constexpr size_t kMaxChars = 300;
    std::string text = what;
    if (text.size() > kMaxChars) text = text.substr(0, kMaxChars - 3) + "...";
    return text;
}

void check_json_depth(const std::string& where, const std::string& what, const char* text,
                      size_t size) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < size; ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;              // skip the escaped character
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth)
                fail(where, what + " nests deeper than " + std::to_string(kMaxJsonDepth) +
                                " levels; refused as damaged");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
}

File parse(const std::string& name, const uint8_t* bytes, size_t size) {
    if (size < 8)
        fail(name, "the file is " + std::to_string(size) +
                       " bytes long, too short for a safetensors header length (8 bytes); "
                       "the file is truncated or not a safetensors file");
    const uint64_t header_bytes = read_le64(bytes);
    if (header_bytes < kMinHeaderBytes || header_bytes > kMaxHeaderBytes)
        fail(name, "the safetensors header length is " + std::to_string(header_bytes) +
                       " bytes, expected " + std::to_string(kMinHeaderBytes) + ".." +
                       std::to_string(kMaxHeaderBytes) + "; not a safetensors file, or damaged");
    if (header_bytes > size - 8)
        fail(name, "the safetensors header length is " + std::to_string(header_bytes) +
                       " bytes but only " + std::to_string(size - 8) +
                       " bytes follow; the file is truncated");

    const json header =
        parse_header_json(name, reinterpret_cast<const char*>(bytes + 8), size_t(header_bytes));
    if (!header.is_object())
        fail(name, "the safetensors header is " + json_kind(header) + ", expected a JSON object");

    File file;
    file.name = name;
    file.data = bytes + 8 + header_bytes;
    file.data_bytes = size - 8 - size_t(header_bytes);
    for (const auto& [key, value] : header.items()) {
        if (key == "__metadata__") file.metadata = parse_metadata(name, value);
        else file.tensors.emplace(key, parse_tensor(name, key, value, file.data_bytes));
    }
    check_no_overlap(name, file.tensors);
    return file;
}

const TensorInfo* File::find(const std::string& tensor_name) const {
    auto it = tensors.find(tensor_name);
    return it == tensors.end() ? nullptr : &it->second;
}

void File::read_floats(const TensorInfo& info, float* out) const {
    const uint8_t* src = data + info.begin_byte;  // parse() checked the range
    switch (info.dtype) {
    case DType::F32:
        std::memcpy(out, src, size_t(info.numel) * 4);
        break;
    case DType::F16:
    case DType::BF16:
        for (int64_t i = 0; i < info.numel; ++i) {
            const uint16_t bits = uint16_t(src[2 * i] | (src[2 * i + 1] << 8));
            out[i] = info.dtype == DType::F16 ? f16_to_float(bits) : bf16_to_float(bits);
        }
        break;
    }
}

std::string make_header(const std::map<std::string, std::string>& metadata,
                        const std::vector<TensorToWrite>& tensors) {
    // ordered_json keeps __metadata__ first and the tensors in file order, for people reading
    // the header with a text viewer.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const TensorToWrite& t : tensors) {
        int64_t numel = 1;
        for (int64_t d : t.shape) {
            if (d < 0) throw ModelError("safetensors writer: tensor '" + t.name + "' has a negative dimension");
            numel *= d;
        }
        if (t.name.empty() || t.name == "__metadata__" || header.contains(t.name))
            throw ModelError("safetensors writer: bad or repeated tensor name '" + t.name + "'");
        if (numel > 0 && t.data == nullptr)
            throw ModelError("safetensors writer: tensor '" + t.name + "' has no data");
        const uint64_t end = offset + uint64_t(numel) * uint64_t(dtype_bytes(t.dtype));
        header[t.name] = {{"dtype", to_string(t.dtype)},
                          {"shape", t.shape},
                          {"data_offsets", {offset, end}}};
        offset = end;
    }
    // Invalid UTF-8 in a name is replaced rather than thrown: the header stays valid JSON.
    std::string text = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
    std::string block(8, '\0');
    for (int i = 0; i < 8; ++i) block[size_t(i)] = char((uint64_t(text.size()) >> (8 * i)) & 0xff);
    return block + text;
}

void write(std::ostream& out, const std::map<std::string, std::string>& metadata,
           const std::vector<TensorToWrite>& tensors) {
    const std::string header = make_header(metadata, tensors);
    out.write(header.data(), std::streamsize(header.size()));
    for (const TensorToWrite& t : tensors) {
        int64_t numel = 1;
        for (int64_t d : t.shape) numel *= d;
        out.write(static_cast<const char*>(t.data), std::streamsize(numel * dtype_bytes(t.dtype)));
    }
}

std::vector<uint8_t> to_bytes(const std::map<std::string, std::string>& metadata,
                              const std::vector<TensorToWrite>& tensors) {
    std::ostringstream out;
    write(out, metadata, tensors);
    const std::string s = out.str();
    return std::vector<uint8_t>(s.begin(), s.end());
}

float f16_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    const uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
        // Zero or subnormal: mantissa * 2^-24, exact in float.
        const float magnitude = std::ldexp(float(mantissa), -24);
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 0x1f)  // Inf or NaN (payload kept)
        return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
    // Normal: rebias the exponent from 15 to 127.
    return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(uint32_t(bits) << 16); }

uint16_t float_to_f16(float value) {
    const uint32_t x = std::bit_cast<uint32_t>(value);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
    const uint32_t magnitude = x & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return uint16_t(sign | 0x7e00u);           // NaN
    if (magnitude >= 0x477ff000u) return uint16_t(sign | 0x7c00u);          // >= 65520: Inf
    if (magnitude < 0x38800000u) {
        // Below the smallest normal half (2^-14): a subnormal in units of 2^-24.
        const float units = std::bit_cast<float>(magnitude) * 16777216.0f;  // exact
        return uint16_t(sign | uint32_t(std::nearbyint(units)));           // ties to even
    }
    // Normal: rebias 127 -> 15, keep 10 mantissa bits, round the 13 dropped bits to even.
    uint32_t h = (magnitude >> 13) - (112u << 10);
    const uint32_t dropped = magnitude & 0x1fffu;
    if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) ++h;  // a carry may reach Inf
    return uint16_t(sign | h);
}

uint16_t float_to_bf16(float value) {
    const uint32_t x = std::bit_cast<uint32_t>(value);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
    return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);                   // ties to even
}

} // namespace mw::safetensors
