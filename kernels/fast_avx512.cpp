// The fast kernels built for AVX-512 (F, VL, DQ, BW; see fast_impl.inc and CMakeLists.txt).
#include "kernels/fast_internal.h"
#include "kernels/thread_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#if defined(MW_EMULATE_AVX512)
// A test build (CMake option MW_EMULATE_AVX512): this file is compiled for AVX2 and takes the
// AVX-512 build's paths (16-float vectors, its blocking), which the compiler splits in two
// 8-float halves, so the AVX-512 code's logic runs and is tested on a host without AVX-512.
#define MW_WIDE16 1
#endif

namespace mw::kernels::avx512 {
#include "kernels/fast_impl.inc"
} // namespace mw::kernels::avx512
