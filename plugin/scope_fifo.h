// Audio for the editor's scope: a lock-free single-producer (audio thread), single-consumer
// (editor timer) FIFO of mono samples. The audio thread writes only while an editor is open
// and drops what does not fit; it never waits.
#pragma once

#include <juce_core/juce_core.h>

#include <array>
#include <atomic>

namespace mw::plugin {

class ScopeFifo {
public:
    static constexpr int kCapacity = 1 << 14;   // samples; ~0.3 s at 48 kHz

    // Editor: start / stop collecting. Starting drops what an earlier editor left unread.
    void set_enabled(bool enabled) noexcept {
        if (enabled) fifo_.finishedRead(fifo_.getNumReady());   // the consumer's side: safe
        enabled_.store(enabled, std::memory_order_release);
    }

    // Audio thread: the mean of the channels ([channels][n]).
    void push(const float* const* channels, int num_channels, int n) noexcept {
        if (!enabled_.load(std::memory_order_acquire) || num_channels <= 0) return;
        const auto scope = fifo_.write(std::min(n, fifo_.getFreeSpace()));
        const float scale = 1.0f / static_cast<float>(num_channels);
        int t = 0;
        auto copy = [&](int start, int size) {
            for (int i = 0; i < size; ++i, ++t) {
                float sum = 0.0f;
                for (int c = 0; c < num_channels; ++c) sum += channels[c][t];
                buffer_[static_cast<size_t>(start + i)] = sum * scale;
            }
        };
        copy(scope.startIndex1, scope.blockSize1);
        copy(scope.startIndex2, scope.blockSize2);
    }

    // Editor: up to max_samples of the oldest samples into dst; returns how many.
    int pop(float* dst, int max_samples) noexcept {
        const auto scope = fifo_.read(std::min(max_samples, fifo_.getNumReady()));
        int t = 0;
        for (int i = 0; i < scope.blockSize1; ++i) dst[t++] = buffer_[static_cast<size_t>(scope.startIndex1 + i)];
        for (int i = 0; i < scope.blockSize2; ++i) dst[t++] = buffer_[static_cast<size_t>(scope.startIndex2 + i)];
        return t;
    }

private:
    std::atomic<bool> enabled_{false};
    juce::AbstractFifo fifo_{kCapacity};
    std::array<float, kCapacity> buffer_{};
};

} // namespace mw::plugin
