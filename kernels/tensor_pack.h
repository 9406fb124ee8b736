// Tensors laid out back to back in one host array, each at a multiple of `align` floats, for a
// single copy to a device (kernels/cuda/device_util.cuh's WeightPack uploads it). Host code only,
// so its layout rules are tested on the CPU (tests/test_kernels.cpp).
//
// With `reuse` (an array its owner keeps between packs of one model: page-locked memory for the
// GPU), the pack is written straight into it when it fits, i.e. from the second pack of the same
// sizes on: no growing array and no copy. A trainer packs its weights every step, and a growing
// array's reallocations and page faults cost milliseconds there. A pack larger than `reuse`
// moves to an array of its own and goes on there.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mw::kernels {

class TensorPack {
public:
    explicit TensorPack(int64_t align, float* reuse = nullptr, size_t reuse_floats = 0)
        : align_(align), reuse_(reuse), reuse_floats_(int64_t(reuse_floats)), direct_(reuse && reuse_floats > 0) {}

    // Returns the tensor's offset in floats from the start of the pack.
    int64_t add(const float* src, int64_t count) {
        const int64_t off = start(count);
        std::copy_n(src, count, at(off));
        return off;
    }
    // A tensor made on the fly: value(i) for i in [0, count).
    template <class Fn>
    int64_t add_fn(int64_t count, Fn&& value) {
        const int64_t off = start(count);
        float* dst = at(off);
        for (int64_t i = 0; i < count; ++i) dst[i] = value(i);
        return off;
    }
    // The pack's size, its end padded to the alignment (so the next pack or a copy in float4
    // pieces lines up).
    int64_t floats() const { return aligned(used_); }
    // Whether the pack lies in `reuse` (else in an array of its own).
    bool direct() const { return direct_; }
    // The pack, zero between tensors and up to floats(): `reuse` when direct().
    const float* finish() {
        if (direct_) {
            std::fill(reuse_ + used_, reuse_ + floats(), 0.0f);
            return reuse_;
        }
        own_.resize(size_t(floats()), 0.0f);
        return own_.data();
    }

private:
    float* at(int64_t off) { return (direct_ ? reuse_ : own_.data()) + off; }
    int64_t start(int64_t count) {
        const int64_t off = aligned(used_);
        if (direct_ && aligned(off + count) > reuse_floats_) {
            own_.assign(reuse_, reuse_ + used_);  // larger than the last pack: on its own from here
            direct_ = false;
        }
        if (direct_)
            std::fill(reuse_ + used_, reuse_ + off, 0.0f);  // the gap, zero as in an array of its own
        else
            own_.resize(size_t(off + count), 0.0f);
        used_ = off + count;
        return off;
    }
    int64_t aligned(int64_t n) const { return (n + align_ - 1) / align_ * align_; }

    int64_t align_;
    float* reuse_;
    int64_t reuse_floats_;
    bool direct_;
    int64_t used_ = 0;
    std::vector<float> own_;
};

} // namespace mw::kernels
