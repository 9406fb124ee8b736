// A bounded lock-free queue between exactly one producer thread and one consumer thread.
// The capacity is fixed in the constructor (which allocates); push and pop never allocate,
// never lock and never wait, so either end may be the audio thread. T must be trivially
// copyable (samples, pointers, small event structs).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace mw::dsp {

template <class T>
class SpscQueue {
    static_assert(std::is_trivially_copyable_v<T>, "SpscQueue holds trivially copyable items");

public:
    explicit SpscQueue(size_t capacity) : items_(capacity + 1) {}
    SpscQueue(const SpscQueue&) = delete;
    SpscQueue& operator=(const SpscQueue&) = delete;

    size_t capacity() const { return items_.size() - 1; }
    // Items the consumer could pop now (exact for the consumer, a lower bound for others).
    size_t size() const {
        const size_t w = write_.load(std::memory_order_acquire), r = read_.load(std::memory_order_acquire);
        return w >= r ? w - r : w + items_.size() - r;
    }
    // Free slots the producer could push now (exact for the producer).
    size_t space() const { return capacity() - size(); }

    // Producer. All n items or none: returns false (and pushes nothing) when they do not fit.
    bool push(const T* items, size_t n) {
        const size_t w = write_.load(std::memory_order_relaxed);
        const size_t r = read_.load(std::memory_order_acquire);
        const size_t used = w >= r ? w - r : w + items_.size() - r;
        if (n > capacity() - used) return false;
        const size_t first = std::min(n, items_.size() - w);
        std::copy_n(items, first, items_.data() + w);
        std::copy_n(items + first, n - first, items_.data());
        write_.store((w + n) % items_.size(), std::memory_order_release);
        return true;
    }
    bool push(const T& item) { return push(&item, 1); }

    // Consumer. Pops up to n items into out; returns how many.
    size_t pop(T* out, size_t n) {
        const size_t r = read_.load(std::memory_order_relaxed);
        const size_t w = write_.load(std::memory_order_acquire);
        const size_t avail = w >= r ? w - r : w + items_.size() - r;
        n = std::min(n, avail);
        const size_t first = std::min(n, items_.size() - r);
        std::copy_n(items_.data() + r, first, out);
        std::copy_n(items_.data(), n - first, out + first);
        read_.store((r + n) % items_.size(), std::memory_order_release);
        return n;
    }
    bool pop(T& out) { return pop(&out, 1) == 1; }

private:
    std::vector<T> items_;  // one slot always empty: read == write means empty
    alignas(64) std::atomic<size_t> write_{0};
    alignas(64) std::atomic<size_t> read_{0};
};

} // namespace mw::dsp
