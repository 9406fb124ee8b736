// What the whole-model forward (mamba_cuda.cu) and the recurrent step (step.cu) share:
// owning device pointers, the model-view checks, and the weight packer that lays tensors out
// on the host and uploads them in one copy. Internal to kernels/cuda/.
#pragma once

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/mamba_cuda.h"
#include "kernels/cuda/scan_lti.cuh"
#include "kernels/fixed_dt.h"
#include "kernels/host_trace.h"
#include "kernels/model_view.h"
#include "kernels/tensor_pack.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mw::kernels::cuda::detail {

struct CudaFree {
    void operator()(void* p) const { cudaFree(p); }
};
template <class T>
using DevPtr = std::unique_ptr<T, CudaFree>;

// count elements of T on the device (nullptr for count <= 0). Throws CudaError.
template <class T>
DevPtr<T> device_alloc(int64_t count) {
    if (count <= 0) return nullptr;
    void* p = nullptr;
    MW_CUDA_CHECK(cudaMalloc(&p, size_t(count) * sizeof(T)));
    return DevPtr<T>(static_cast<T*>(p));
}

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// cudaStreamSynchronize, its wait added to host_wait_seconds() (mamba_cuda.h) and, with
// MW_HOST_TRACE=1, to the host trace under the caller's file and line (kernels/host_trace.h).
// Throws CudaError.
extern std::atomic<int64_t> host_wait_ns;
HostTrace* host_trace();  // null unless MW_HOST_TRACE=1 (mamba_cuda.cu)
inline int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
inline void wait_for(cudaStream_t stream, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    const int64_t t0 = steady_ns();
    MW_CUDA_CHECK(cudaStreamSynchronize(stream));
    const int64_t t1 = steady_ns();
    host_wait_ns.fetch_add(t1 - t0, std::memory_order_relaxed);
    if (HostTrace* trace = host_trace()) {
        const std::string_view f(file);
        const size_t slash = f.rfind('/');
        trace->wait(std::string(slash == f.npos ? f : f.substr(slash + 1)) + ":" + std::to_string(line), t0, t1);
    }
}

// p's memory, made anew (contents dropped) when it holds fewer than n floats: page-locked host
// arrays a tape keeps from call to call. Throws CudaError.
inline float* pinned_at_least(PinnedFloats& p, size_t n) {
    if (p.size() < n) p = PinnedFloats(n);
    return p.data();
}

// Arrays cut from one device allocation, each at a 64-float (256-byte) boundary: take() names
// an array (where its pointer goes, its size in floats), then allocate() makes the buffer and
// sets every pointer (nullptr for an empty array). Throws CudaError.
class Carving {
public:
    void take(float** where, int64_t floats) {
        parts_.push_back({where, floats});
        total_ += round_up(floats, kAlign);
    }
    DevPtr<float> allocate() const {
        DevPtr<float> buf = device_alloc<float>(total_);
        int64_t off = 0;
        for (const Part& p : parts_) {
            *p.where = p.floats > 0 ? buf.get() + off : nullptr;
            off += round_up(p.floats, kAlign);
        }
        return buf;
    }

private:
    static constexpr int64_t kAlign = 64;
    struct Part {
        float** where;
        int64_t floats;
    };
    std::vector<Part> parts_;
    int64_t total_ = 0;
};

// acc += milliseconds between two recorded events (both complete). Throws CudaError.
inline void add_elapsed(double& acc, cudaEvent_t a, cudaEvent_t b) {
    float ms = 0;
    MW_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    acc += ms;
}

// The sizes and arrays every GPU path needs; `who` starts each message
// ("cuda::make_forward: a model dimension is below 1"). Throws std::invalid_argument.
// A stack of layers alone (HeadKind::hidden: a pooled model's) only where `allow_hidden`: the
// training tape takes one; the forward and the step run whole models.
inline void check_model_view(const ModelView& m, const std::string& who, bool allow_hidden = false) {
    const Dims& d = m.dims;
    auto fail = [&](const std::string& what) { throw std::invalid_argument(who + ": " + what); };
    if (d.d_model < 1 || d.n_layers < 1 || d.d_inner < 1 || d.d_state < 1 || d.d_conv < 1 ||
        d.dt_rank < 1)
        fail("a model dimension is below 1");
    if (m.head == HeadKind::hidden && !allow_hidden)
        fail("the view is a stack of layers alone (a pooled model's); this path runs whole models");
    if (!m.layers) fail("the model view has no layers");
    if (m.head != HeadKind::hidden && !m.norm_f_w) fail("the model view has no norm_f");
    if (m.head == HeadKind::tokens && (m.vocab < 1 || !m.embed_w || !m.lm_head_w))
        fail("a generator needs vocab, embeddings and lm_head");
    if (m.head == HeadKind::continuous &&
        (m.n_in < 1 || !m.stem_w || !m.stem_b || !m.head_w || !m.head_b))
        fail("an effect needs n_in >= 1, stem and head");
    // A selective layer needs x_proj and dt_proj.weight; an LTI layer (config 'lti_layers') its
    // B and C instead, and a d_state the LTI kernels take (scan_lti.cuh).
    for (int l = 0; l < d.n_layers; ++l) {
        const LayerView& w = m.layers[l];
        const std::string layer = "layer " + std::to_string(l);
        if (!w.norm_w || !w.in_proj_w || !w.conv_w || !w.dt_proj_b || !w.A_log || !w.D || !w.out_proj_w)
            fail(layer + " lacks a tensor (norm, in_proj, conv1d, dt_proj.bias, A_log, D or out_proj)");
        if (is_lti(w)) {
            if (!w.lti_B) fail(layer + " is an LTI layer without mixer.B");
            if (d.d_state > kLtiMaxState)
                fail(layer + " is an LTI layer with d_state " + std::to_string(d.d_state) +
                     ", above the CUDA LTI scan's " + std::to_string(kLtiMaxState) + "; use --device cpu");
        } else if (!w.x_proj_w || !w.dt_proj_w) {
            fail(layer + " is a selective layer without x_proj or dt_proj.weight");
        }
    }
}

// A·log2(e) = -exp(A_log)·log2(e), the exponent scale of exp2 in the SSM update; computed in
// double, rounded once.
inline float a_log2e(float a_log) {
    return float(-std::exp(double(a_log)) * 1.4426950408889634);
}

// An LTI layer's constants (scan_lti.cuh), made on the host as the CPU tape makes them
// (kernels/backward.cpp): Δ = softplus(dt_bias) and σ(dt_bias) in float64, the decay
// 2^(min(Δ, dt_max)·A2) with dt_max = 125 / min_n |A2| (past it every decay is below 2^-125;
// the CPU's tables clamp so, and here it gives the same numbers),
// b̄ = Δ·B rounded once. decay, bbar and C are [N][E] (channel fastest, for coalesced loads),
// A [E][N] = -exp(A_log), delta and dsig [E].
struct LtiConstants {
    std::vector<float> decay, bbar, C, A, delta, dsig;
};
inline LtiConstants lti_constants(const LayerView& w, int E, int N) {
    LtiConstants k;
    k.decay.assign(size_t(N) * E, 0.0f);
    k.bbar.assign(size_t(N) * E, 0.0f);
    k.C.assign(size_t(N) * E, 0.0f);
    k.A.assign(size_t(E) * N, 0.0f);
    k.delta.assign(size_t(E), 0.0f);
    k.dsig.assign(size_t(E), 0.0f);
    for (int e = 0; e < E; ++e) {
        const double x = double(w.dt_proj_b[e]), ex = std::exp(-std::fabs(x)), delta = fixed_delta(x);
        k.delta[size_t(e)] = float(delta);
        k.dsig[size_t(e)] = float(x >= 0.0 ? 1.0 / (1.0 + ex) : ex / (1.0 + ex));
        const float dt_max = decays_vanish_dt(w.A_log + int64_t(e) * N, N);
        const double dtc = double(std::min(k.delta[size_t(e)], dt_max));
        for (int n = 0; n < N; ++n) {
            const size_t en = size_t(e) * N + n, ne = size_t(n) * E + e;
            k.decay[ne] = float(std::exp2(dtc * double(a_log2e(w.A_log[en]))));
            k.bbar[ne] = float(delta * double(w.lti_B[en]));
            k.C[ne] = w.lti_C[en];
            k.A[en] = float(-std::exp(double(w.A_log[en])));
        }
    }
    return k;
}

// Tensors packed back to back on the host (kernels/tensor_pack.h), then uploaded in one copy.
// add() returns the tensor's offset in floats from the start of the upload.
//
// With `staging` (page-locked memory its owner keeps between uploads of one model), the pack is
// written straight into it once it is large enough, i.e. from the second upload of the same
// sizes on, and copied from it at the bus's full speed, without the driver's own staging. The
// first upload packs into an array of its own and leaves `staging` holding the pack for the next.
class WeightPack {
public:
    explicit WeightPack(int64_t align, PinnedFloats* staging = nullptr)
        : pack_(align, staging ? staging->data() : nullptr, staging ? staging->size() : 0), staging_(staging) {}

    int64_t add(const float* src, int64_t count) { return pack_.add(src, count); }
    template <class Fn>
    int64_t add_fn(int64_t count, Fn&& value) {
        return pack_.add_fn(count, std::forward<Fn>(value));
    }
    int64_t floats() const { return pack_.floats(); }
    // One device allocation holding every tensor, copied on `stream` (the user's own) and waited
    // for. (A plain cudaMemcpy from pageable memory may return before the data has reached the
    // device, and work on a non-blocking stream does not wait for it.) Throws CudaError.
    DevPtr<float> upload(cudaStream_t stream) {
        DevPtr<float> dev = device_alloc<float>(floats());
        upload_into(dev.get(), stream);
        return dev;
    }
    // The same into a device buffer of floats() floats that exists already (waited for).
    void upload_into(float* dev, cudaStream_t stream) {
        const float* src = pack_.finish();
        if (staging_ && !pack_.direct()) {  // the first upload: staging made (or grown) for the next
            float* staging = pinned_at_least(*staging_, size_t(floats()));
            std::copy_n(src, floats(), staging);
            src = staging;
        }
        if (floats() > 0)
            MW_CUDA_CHECK(cudaMemcpyAsync(dev, src, size_t(floats()) * sizeof(float), cudaMemcpyHostToDevice, stream));
        wait_for(stream);
    }

private:
    TensorPack pack_;
    PinnedFloats* staging_;
};

} // namespace mw::kernels::cuda::detail
