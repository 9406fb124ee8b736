// An allocation trap for real-time tests: while armed on this thread, every call to malloc,
// calloc, realloc, aligned allocation or operator new is counted. The test executable
// interposes those functions (alloc_trap.cpp), so library code is caught too.
#pragma once

#include <cstdint>

namespace mw::test {

void arm_alloc_trap();
// Disarms and returns how many allocations happened on this thread while armed.
int64_t disarm_alloc_trap();

struct AllocTrap {
    AllocTrap() { arm_alloc_trap(); }
    int64_t stop() { return disarm_alloc_trap(); }
};

} // namespace mw::test
