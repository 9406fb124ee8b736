// 8-bit mu-law companding (ITU-T G.711 continuous form, mu = 255), as used for generator
// models: a sample in [-1, 1] <-> a class 0..255, class 128 near silence.
#pragma once

#include <cstdint>

namespace mw::dsp {

// x in [-1, 1] (clamped) -> class 0..255.
int32_t mulaw_encode(float x);
// class 0..255 -> x in [-1, 1] (the centre of the class's interval).
float mulaw_decode(int32_t q);

} // namespace mw::dsp
