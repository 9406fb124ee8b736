// Denormal numbers flushed to zero for a scope (the audio thread's block): FTZ (results) and
// DAZ (inputs) on x86 through MXCSR, FZ on AArch64 through FPCR; the previous mode is restored
// when the scope ends. Elsewhere it does nothing (denormals_flush_supported() says so).
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <xmmintrin.h>
#define MW_DENORMALS_X86 1
#elif defined(__aarch64__)
#define MW_DENORMALS_ARM64 1
#endif

namespace mw::dsp {

// The floating-point control word this CPU uses for the flags (MXCSR or FPCR); 0 elsewhere.
inline uint64_t fp_control_word() {
#if MW_DENORMALS_X86
    return _mm_getcsr();
#elif MW_DENORMALS_ARM64
    uint64_t fpcr;
    asm volatile("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
#else
    return 0;
#endif
}

inline void set_fp_control_word(uint64_t word) {
#if MW_DENORMALS_X86
    _mm_setcsr(static_cast<unsigned>(word));
#elif MW_DENORMALS_ARM64
    asm volatile("msr fpcr, %0" : : "r"(word));
#else
    (void)word;
#endif
}

// The bits that flush denormals: MXCSR FTZ (bit 15) | DAZ (bit 6); FPCR FZ (bit 24).
constexpr uint64_t kFlushDenormalBits =
#if MW_DENORMALS_X86
    0x8040;
#elif MW_DENORMALS_ARM64
    uint64_t(1) << 24;
#else
    0;
#endif

// The sticky exception flags inside that word (x86 MXCSR bits 0-5), which arithmetic sets.
constexpr uint64_t kFpStatusBits =
#if MW_DENORMALS_X86
    0x3f;
#else
    0;
#endif

constexpr bool denormals_flush_supported() { return kFlushDenormalBits != 0; }

class ScopedFlushDenormals {
public:
    ScopedFlushDenormals() : saved_(fp_control_word()) {
        if ((saved_ & kFlushDenormalBits) != kFlushDenormalBits)
            set_fp_control_word(saved_ | kFlushDenormalBits);
    }
    ~ScopedFlushDenormals() {
        if ((saved_ & kFlushDenormalBits) != kFlushDenormalBits) set_fp_control_word(saved_);
    }
    ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
    ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;

private:
    uint64_t saved_;
};

} // namespace mw::dsp
