// The counter-based random numbers of the GPU sampler: Philox-4x32-10 (Salmon, Moraes, Dror,
// Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011), written from the paper's
// definition. Plain C++ that nvcc also compiles for the device, so the tests recompute on the
// host exactly the uniform number the GPU drew for a sample.
//
// A counter-based generator has no state to carry: draw (seed, stream, index) is a pure
// function. The GPU sampler draws for sample `index` of stream `stream` (index counted from
// the last reset of the Stepper) with key = seed:
//   counter = (index low 32 bits, index high 32 bits, stream, kSamplerTag)
//   u       = (first output word >> 8) · 2^-24            uniform in [0, 1), 24 bits
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MW_HOST_DEVICE __host__ __device__
#else
#define MW_HOST_DEVICE
#endif

namespace mw::kernels::cuda {

struct Philox4x32 {
    uint32_t v[4];
};

// One Philox-4x32 block: 10 rounds of the multiply-xor bijection with the key bumped by the
// Weyl constants between rounds.
MW_HOST_DEVICE inline Philox4x32 philox4x32_10(Philox4x32 c, uint32_t k0, uint32_t k1) {
    constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;   // round multipliers
    constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;   // key schedule (golden ratio, sqrt 3)
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = uint64_t(kM0) * c.v[0];
        const uint64_t p1 = uint64_t(kM1) * c.v[2];
        const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
        const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
        c = Philox4x32{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
        k0 += kW0;
        k1 += kW1;
    }
    return c;
}

// The fourth counter word of the sampler's draws ("MW" in ASCII): another user of Philox with
// the same seed draws other numbers.
constexpr uint32_t kSamplerTag = 0x4D57u;

// The sampler's uniform number in [0, 1) for sample `index` of `stream` under `seed`.
MW_HOST_DEVICE inline float sampler_uniform(uint64_t seed, uint32_t stream, uint64_t index) {
    const Philox4x32 r = philox4x32_10(
        Philox4x32{{uint32_t(index), uint32_t(index >> 32), stream, kSamplerTag}}, uint32_t(seed),
        uint32_t(seed >> 32));
    return float(r.v[0] >> 8) * (1.0f / 16777216.0f);
}

} // namespace mw::kernels::cuda
