#include "dsp/mulaw.h"
#include "model/model.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace mw::dsp;

TEST_CASE("mu-law: every class decodes to a value that encodes back to it", "[mulaw]") {
    for (int q = 0; q < 256; ++q) CHECK(mulaw_encode(mulaw_decode(q)) == q);
}

TEST_CASE("mu-law: decode is monotonic, symmetric, and spans -1..1", "[mulaw]") {
    for (int q = 1; q < 256; ++q) CHECK(mulaw_decode(q) > mulaw_decode(q - 1));
    CHECK(mulaw_decode(0) == Approx(-1.0f));
    CHECK(mulaw_decode(255) == Approx(1.0f));
    for (int q = 0; q < 256; ++q) CHECK(mulaw_decode(q) == Approx(-mulaw_decode(255 - q)).margin(1e-6));
}

TEST_CASE("mu-law: a sample encodes to the class whose neighbours bracket it", "[mulaw]") {
    for (int i = -10000; i <= 10000; ++i) {
        const float x = float(i) / 10000.0f;
        const int q = mulaw_encode(x);
        // x lies between the decoded values of the classes either side of q: the round trip
        // moves a sample by less than one class width
        const float lo = q > 0 ? mulaw_decode(q - 1) : -1.0f, hi = q < 255 ? mulaw_decode(q + 1) : 1.0f;
        INFO("x " << x << " class " << q);
        CHECK(x >= lo);
        CHECK(x <= hi);
    }
    // resolution near zero is far finer than linear 8-bit (1/128)
    CHECK(std::fabs(mulaw_decode(mulaw_encode(0.001f)) - 0.001f) < 2e-4f);
}

TEST_CASE("mu-law: out-of-range and NaN input are clamped, not undefined", "[mulaw]") {
    CHECK(mulaw_encode(5.0f) == 255);
    CHECK(mulaw_encode(-5.0f) == 0);
    const int silence = mulaw_encode(0.0f);
    CHECK(silence == mw::kSilenceClass);  // the generators' silence class (model/model.h)
    CHECK(mulaw_encode(std::numeric_limits<float>::quiet_NaN()) == silence);
    CHECK(mulaw_decode(300) == mulaw_decode(255));
}
