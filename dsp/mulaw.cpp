#include "dsp/mulaw.h"

#include <algorithm>
#include <cmath>

namespace mw::dsp {

namespace {
constexpr float kMu = 255.0f;
}

// y = sign(x) · ln(1 + mu·|x|) / ln(1 + mu), then y in [-1, 1] -> 256 classes.
int32_t mulaw_encode(float x) {
    if (!(x == x)) x = 0.0f;  // NaN -> silence
    x = std::clamp(x, -1.0f, 1.0f);
    const float y = std::copysign(std::log1p(kMu * std::fabs(x)) / std::log1p(kMu), x);
    const int32_t q = static_cast<int32_t>(std::floor((y + 1.0f) * 0.5f * kMu + 0.5f));
    return std::clamp(q, 0, 255);
}

// class -> y in [-1, 1] -> x = sign(y) · ((1 + mu)^|y| - 1) / mu
float mulaw_decode(int32_t q) {
    q = std::clamp(q, 0, 255);
    const float y = 2.0f * float(q) / kMu - 1.0f;
    return std::copysign(std::expm1(std::fabs(y) * std::log1p(kMu)) / kMu, y);
}

} // namespace mw::dsp
