// NumPy .npy reading and writing. The format (numpy/lib/format.py):
//   "\x93NUMPY" | major | minor | header length (u16 for v1, u32 for v2/v3, little-endian)
//   | header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
//   | data: the elements, C order.
#include "model/npy.h"

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <sstream>

namespace mw {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;

[[noreturn]] void fail(const std::string& name, const std::string& what) {
    throw NpyError(name + ": " + what);
}

uint64_t load_le(const uint8_t* p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
}

// IEEE 754 binary16 -> double.
double half_to_double(uint16_t h) {
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    double v;
    if (exponent == 0) v = std::ldexp(double(mantissa), -24);                  // subnormal
    else if (exponent == 31) v = mantissa ? std::numeric_limits<double>::quiet_NaN()
                                          : std::numeric_limits<double>::infinity();
    else v = std::ldexp(double(mantissa + 1024), exponent - 25);
    return (h & 0x8000) ? -v : v;
}

// --- the header dict -----------------------------------------------------------------------

struct Dtype {
    std::string descr;  // as stored, e.g. "<f4"
    char kind = 0;      // 'b', 'i', 'u', 'f'
    int bytes = 0;
};

size_t skip_spaces(const std::string& s, size_t p) {
    while (p < s.size() && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n')) ++p;
    return p;
}

// Position of the value after "'key':" in the header, or npos.
size_t value_pos(const std::string& header, const std::string& key) {
    for (char quote : {'\'', '"'}) {
        const std::string quoted = quote + key + quote;
        size_t p = header.find(quoted);
        if (p == std::string::npos) continue;
        p = skip_spaces(header, p + quoted.size());
        if (p < header.size() && header[p] == ':') return skip_spaces(header, p + 1);
    }
    return std::string::npos;
}

size_t require_key(const std::string& name, const std::string& header, const std::string& key) {
    const size_t p = value_pos(header, key);
    if (p == std::string::npos || p >= header.size())
        fail(name, "npy header has no '" + key + "' field (header: " + header + ")");
    return p;
}

Dtype parse_dtype(const std::string& name, const std::string& header) {
    size_t p = require_key(name, header, "descr");
    const char quote = header[p];
    if (quote == '[') fail(name, "structured dtypes are not supported, expected a plain numeric array");
    if (quote != '\'' && quote != '"') fail(name, "npy header field 'descr' is not a string");
    const size_t end = header.find(quote, p + 1);
    if (end == std::string::npos) fail(name, "npy header field 'descr' is not terminated");
    Dtype d;
    d.descr = header.substr(p + 1, end - p - 1);
    const std::string& s = d.descr;
    const bool digits = s.size() >= 3 && s.find_first_not_of("0123456789", 2) == std::string::npos;
    if (s.size() >= 2 && s[1] == 'O')
        fail(name, "dtype '" + s + "' holds Python objects, which cannot be read; save numbers");
    // more than two digits of item size is no dtype we read (and would overflow stoi)
    if (!digits || s.size() > 4) fail(name, "unsupported dtype '" + s + "', expected bool, integer or float");
    d.kind = s[1];
    d.bytes = std::stoi(s.substr(2));
    const bool ok = (d.kind == 'b' && d.bytes == 1) ||
                    ((d.kind == 'i' || d.kind == 'u') &&
                     (d.bytes == 1 || d.bytes == 2 || d.bytes == 4 || d.bytes == 8)) ||
                    (d.kind == 'f' && (d.bytes == 2 || d.bytes == 4 || d.bytes == 8));
    if (!ok)
        fail(name, "unsupported dtype '" + s +
                       "', expected bool, int8..int64, uint8..uint64 or float16/32/64");
    if (s[0] == '>' && d.bytes > 1)
        fail(name, "dtype '" + s + "' is big-endian, expected little-endian; save it with "
                   "arr.astype(arr.dtype.newbyteorder('<'))");
    if (s[0] != '<' && s[0] != '|' && s[0] != '>')
        fail(name, "dtype '" + s + "' has byte order '" + s[0] + "', expected '<' or '|'");
    return d;
}

void parse_fortran_order(const std::string& name, const std::string& header) {
    const size_t p = require_key(name, header, "fortran_order");
    if (header.compare(p, 5, "False") == 0) return;
    if (header.compare(p, 4, "True") == 0)
        fail(name, "array is in Fortran order, expected C order; save np.ascontiguousarray(arr)");
    fail(name, "npy header field 'fortran_order' is neither True nor False");
}

std::vector<int64_t> parse_shape(const std::string& name, const std::string& header) {
    size_t p = require_key(name, header, "shape");
    if (header[p] != '(') fail(name, "npy header field 'shape' is not a tuple");
    std::vector<int64_t> shape;
    p = skip_spaces(header, p + 1);
    while (p < header.size() && header[p] != ')') {
        size_t used = 0;
        long long dim = -1;
        try {
            dim = std::stoll(header.substr(p, 20), &used);
        } catch (const std::out_of_range&) {
            fail(name, "npy header field 'shape' holds a size too large for 64 bits");
        } catch (const std::exception&) {
            fail(name, "npy header field 'shape' holds a non-integer");
        }
        if (dim < 0) fail(name, "npy header field 'shape' has a negative size");
        shape.push_back(dim);
        p = skip_spaces(header, p + used);
        if (p < header.size() && header[p] == ',') p = skip_spaces(header, p + 1);
        else if (p < header.size() && header[p] != ')')
            fail(name, "npy header field 'shape' is malformed (header: " + header + ")");
    }
    if (p >= header.size()) fail(name, "npy header field 'shape' is not terminated");
    return shape;
}

int64_t checked_numel(const std::string& name, const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
            fail(name, "shape " + shape_text(shape) + " is too large");
        n *= d;
    }
    return n;
}

double element(const Dtype& d, const uint8_t* p) {
    const uint64_t bits = load_le(p, d.bytes);
    switch (d.kind) {
    case 'b': return bits ? 1.0 : 0.0;
    case 'u': return double(bits);
    case 'i': {
        const int shift = 64 - 8 * d.bytes;  // sign-extend from d.bytes
        return double(static_cast<int64_t>(bits << shift) >> shift);
    }
    default:  // 'f'
        if (d.bytes == 2) return half_to_double(static_cast<uint16_t>(bits));
        if (d.bytes == 4) return std::bit_cast<float>(static_cast<uint32_t>(bits));
        return std::bit_cast<double>(bits);
    }
}

// --- writing -------------------------------------------------------------------------------

std::string make_header(const std::string& descr, const std::vector<int64_t>& shape) {
    std::string tuple = "(";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) tuple += ", ";
        tuple += std::to_string(shape[i]);
    }
    tuple += shape.size() == 1 ? ",)" : ")";
    std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + tuple + ", }";
    // magic + version + u16 length + dict + padding + '\n' is a multiple of 64 bytes.
    const size_t used = kMagicBytes + 2 + 2 + dict.size() + 1;
    dict.append((64 - used % 64) % 64, ' ');
    return dict + '\n';
}

std::string temp_name_for(const std::string& path) {
    std::random_device random;
    std::ostringstream s;
    s << path << ".tmp-" << std::hex << random();
    return s.str();
}

void write_npy(const std::string& path, const std::string& descr, const std::vector<int64_t>& shape,
               const void* data, size_t element_bytes) {
    const std::string header = make_header(descr, shape);
    if (header.size() > 0xffff) fail(path, "shape " + shape_text(shape) + " has too many dimensions");
    const size_t data_bytes = size_t(checked_numel(path, shape)) * element_bytes;
    const std::string tmp = temp_name_for(path);
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) fail(path, std::string("cannot create a temporary file: ") + std::strerror(errno));
        const char version_and_length[4] = {1, 0, char(header.size() & 0xff), char(header.size() >> 8)};
        out.write(kMagic, kMagicBytes);
        out.write(version_and_length, 4);
        out.write(header.data(), std::streamsize(header.size()));
        out.write(static_cast<const char*>(data), std::streamsize(data_bytes));
        out.close();
        if (!out) {
            std::remove(tmp.c_str());
            fail(path, std::string("write failed: ") + std::strerror(errno));
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string reason = std::strerror(errno);
        std::remove(tmp.c_str());
        fail(path, "cannot rename the finished file into place: " + reason);
    }
}

} // namespace

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

int64_t NpyArray::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

bool NpyArray::is_integer() const {
    return dtype.size() >= 2 && (dtype[1] == 'i' || dtype[1] == 'u' || dtype[1] == 'b');
}

NpyArray parse_npy(const std::string& name, const uint8_t* data, size_t size) {
    if (size < kMagicBytes + 4 || std::memcmp(data, kMagic, kMagicBytes) != 0)
        fail(name, "not a .npy file (the first bytes are not \\x93NUMPY)");
    const int major = data[6];
    if (major < 1 || major > 3)
        fail(name, "npy format version " + std::to_string(major) + "." + std::to_string(data[7]) +
                       " is not supported, expected 1.x, 2.x or 3.x");
    const size_t length_bytes = major == 1 ? 2 : 4;
    const size_t header_start = kMagicBytes + 2 + length_bytes;
    if (size < header_start) fail(name, "truncated npy header");
    const uint64_t header_bytes = load_le(data + kMagicBytes + 2, int(length_bytes));
    if (header_bytes > size - header_start)
        fail(name, "truncated: the header claims " + std::to_string(header_bytes) +
                       " bytes but the file has " + std::to_string(size - header_start) + " left");
    const std::string header(reinterpret_cast<const char*>(data + header_start), header_bytes);

    NpyArray a;
    const Dtype dtype = parse_dtype(name, header);
    parse_fortran_order(name, header);
    a.shape = parse_shape(name, header);
    a.dtype = dtype.descr;
    const int64_t n = checked_numel(name, a.shape);
    const uint8_t* body = data + header_start + header_bytes;
    const uint64_t available = size - header_start - header_bytes;
    const bool fits = uint64_t(n) <= available / uint64_t(dtype.bytes);
    if (!fits || uint64_t(n) * uint64_t(dtype.bytes) != available)
        fail(name, std::string(fits ? "unexpected trailing data: " : "truncated data: ") +
                       "shape " + shape_text(a.shape) + " of " + dtype.descr + " needs " +
                       std::to_string(n) + " x " + std::to_string(dtype.bytes) +
                       " bytes, found " + std::to_string(available) + " bytes");
    a.values.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) a.values[size_t(i)] = element(dtype, body + i * dtype.bytes);
    return a;
}

NpyArray read_npy(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    if (in.bad()) fail(path, std::string("read failed: ") + std::strerror(errno));
    return parse_npy(path, bytes.data(), bytes.size());
}

void write_npy_f32(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
    static_assert(std::endian::native == std::endian::little, "npy writer assumes little-endian");
    write_npy(path, "<f4", shape, data, sizeof(float));
}

void write_npy_i32(const std::string& path, const std::vector<int64_t>& shape, const int32_t* data) {
    write_npy(path, "<i4", shape, data, sizeof(int32_t));
}

} // namespace mw
