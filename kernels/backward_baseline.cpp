// The training tape's math built for the baseline instruction set (see backward_impl.inc and
// CMakeLists.txt).
#include "kernels/backward_internal.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace mw::kernels::bwd_baseline {
#include "kernels/backward_impl.inc"
} // namespace mw::kernels::bwd_baseline
