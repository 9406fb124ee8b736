// Checked CUDA and cuBLAS calls: a failure throws CudaError naming the call, file and line.
#pragma once

#include "kernels/cuda/mamba_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

namespace mw::kernels::cuda::detail {

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* call, const char* file, int line) {
    throw CudaError(std::string("CUDA error at ") + file + ":" + std::to_string(line) + ": " +
                    call + " failed: " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) +
                    ")");
}

[[noreturn]] inline void throw_cublas(cublasStatus_t st, const char* call, const char* file,
                                      int line) {
    throw CudaError(std::string("cuBLAS error at ") + file + ":" + std::to_string(line) + ": " +
                    call + " failed: " + cublasGetStatusName(st) + " (" +
                    cublasGetStatusString(st) + ")");
}

} // namespace mw::kernels::cuda::detail

#define MW_CUDA_CHECK(call)                                                                   \
    do {                                                                                      \
        const cudaError_t mw_err_ = (call);                                                   \
        if (mw_err_ != cudaSuccess)                                                           \
            ::mw::kernels::cuda::detail::throw_cuda(mw_err_, #call, __FILE__, __LINE__);      \
    } while (0)

// After a kernel launch: the launch itself (bad configuration) is checked; faults inside the
// kernel surface at the next synchronising call, which is checked too.
#define MW_CUDA_CHECK_LAUNCH() MW_CUDA_CHECK(cudaGetLastError())

#define MW_CUBLAS_CHECK(call)                                                                 \
    do {                                                                                      \
        const cublasStatus_t mw_st_ = (call);                                                 \
        if (mw_st_ != CUBLAS_STATUS_SUCCESS)                                                  \
            ::mw::kernels::cuda::detail::throw_cublas(mw_st_, #call, __FILE__, __LINE__);     \
    } while (0)
