// libFuzzer target: parse_npy on arbitrary bytes (what `mambawave run --in X.npy` reads)
// returns an array or throws NpyError; anything else (another exception, a sanitizer report, an
// allocation past -rss_limit_mb) is a finding. An accepted array must be what its header says:
// as many values as its shape holds, a dtype the reader supports, and integers that are whole.
#include "model/npy.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace {

[[noreturn]] void finding(const std::string& what) {
    std::fprintf(stderr, "fuzz_npy: %s\n", what.c_str());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    mw::NpyArray a;
    try {
        a = mw::parse_npy("fuzz.npy", data, size);
    } catch (const mw::NpyError& e) {
        if (std::string(e.what()).rfind("fuzz.npy: ", 0) != 0) finding(std::string("an error without the file's name: ") + e.what());
        return 0;  // a clear refusal
    } catch (const std::exception& e) {
        finding(std::string("an exception other than NpyError: ") + e.what());
    }
    int64_t n = 1;
    for (int64_t d : a.shape) {
        if (d < 0) finding("a negative dimension accepted");
        n *= d;
    }
    if (n != a.numel() || size_t(n) != a.values.size())
        finding("shape " + mw::shape_text(a.shape) + " but " + std::to_string(a.values.size()) + " values");
    const std::string& t = a.dtype;
    if (t.size() < 3 || (t[0] != '<' && t[0] != '|' && t[0] != '>') || std::string("biuf").find(t[1]) == std::string::npos)
        finding("an unsupported dtype accepted: '" + t + "'");
    if (a.is_integer())
        for (double v : a.values)
            if (v != std::floor(v)) finding("a non-integer value in an integer array");
    return 0;
}
