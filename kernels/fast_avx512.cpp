// The fast kernels built for AVX-512 (F, VL, DQ, BW; see fast_impl.inc and CMakeLists.txt).
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

namespace mw::kernels::avx512 {
#include "kernels/fast_impl.inc"
} // namespace mw::kernels::avx512
