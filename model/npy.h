// NumPy .npy files (format 1.0/2.0/3.0, little-endian, C order) for interop with numpy and
// PyTorch tools: read any integer or float dtype, write float32 / int32.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mw {

struct NpyError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct NpyArray {
    std::vector<int64_t> shape;
    std::string dtype;           // numpy descr as stored, e.g. "<f4", "<i8", "|u1"
    std::vector<double> values;  // every element, converted to double, C order
    int64_t numel() const;
    bool is_integer() const;     // dtype kind 'i', 'u' or 'b'
};

// A shape as messages print it: "[3,4]".
std::string shape_text(const std::vector<int64_t>& shape);

// Throws NpyError naming the file and what is wrong (bad magic, big-endian, Fortran order,
// unsupported dtype, truncated data, ...).
NpyArray read_npy(const std::string& path);
NpyArray parse_npy(const std::string& name, const uint8_t* data, size_t size);
// Written to a temporary name and renamed on success.
void write_npy_f32(const std::string& path, const std::vector<int64_t>& shape, const float* data);
void write_npy_i32(const std::string& path, const std::vector<int64_t>& shape, const int32_t* data);

} // namespace mw
