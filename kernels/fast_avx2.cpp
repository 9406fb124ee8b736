// The fast kernels built for the avx2 instruction set (see fast_impl.inc and CMakeLists.txt).
#include "kernels/fast_internal.h"
#include "kernels/thread_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif
#if defined(__FMA__)
#include <immintrin.h>  // _mm256_fmadd_ps (fast_impl.inc's fmadd)
#endif

namespace mw::kernels::avx2 {
#include "kernels/fast_impl.inc"
} // namespace mw::kernels::avx2
