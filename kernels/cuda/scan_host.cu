// run_scan (mamba_cuda.h): the selective scan alone on host arrays, in fp32 or with bf16
// inputs, so tests can hold the kernels to a plain reference without the rest of the layer.
#include "kernels/cuda/mamba_cuda.h"

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/scan.cuh"

#include <cuda_bf16.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace mw::kernels::cuda {

float bf16_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

std::vector<float> run_scan(HostScan& s, bool bf16_inputs, int variant, int chunk, int lanes,
                            std::vector<float>* chunk_starts, int64_t segment_steps) {
    using detail::device_alloc;
    const int64_t rows = int64_t(s.B) * s.L;
    auto need = [](const std::vector<float>& v, int64_t n, const char* name) {
        if (int64_t(v.size()) != n)
            throw std::invalid_argument(std::string("run_scan: ") + name + " has " + std::to_string(v.size()) +
                                        " floats, expected " + std::to_string(n));
    };
    if (s.B < 1 || s.L < 0 || s.E < 1 || s.N < 1) throw std::invalid_argument("run_scan: B, E and N must be >= 1, L >= 0");
    for (const auto& [v, n, name] : {std::tuple{&s.dt, rows * s.E, "dt"}, {&s.u, rows * s.E, "u"},
                                     {&s.z, rows * s.E, "z"}, {&s.Bm, rows * s.N, "Bm"}, {&s.Cm, rows * s.N, "Cm"},
                                     {&s.A2, int64_t(s.E) * s.N, "A2"}, {&s.D, int64_t(s.E), "D"},
                                     {&s.dt_bias, int64_t(s.E), "dt_bias"},
                                     {&s.state, int64_t(s.B) * s.N * s.E, "state"}})
        need(*v, n, name);
    if (rows == 0) return {};

    auto upload = [](const std::vector<float>& v) {
        auto d = device_alloc<float>(int64_t(v.size()));
        MW_CUDA_CHECK(cudaMemcpy(d.get(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
        return d;
    };
    auto upload_bf16 = [](const std::vector<float>& v) {
        std::vector<__nv_bfloat16> h(v.size());
        for (size_t i = 0; i < v.size(); ++i) h[i] = __float2bfloat16_rn(v[i]);
        auto d = device_alloc<__nv_bfloat16>(int64_t(h.size()));
        MW_CUDA_CHECK(cudaMemcpy(d.get(), h.data(), h.size() * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice));
        return d;
    };
    ScanProblem q;
    q.B = s.B;
    q.L = s.L;
    q.E = s.E;
    q.N = s.N;
    q.dt_stride = q.u_stride = q.z_stride = s.E;
    q.bc_stride = s.N;
    q.variant = variant;
    q.lanes = lanes;
    q.segment_steps = segment_steps;
    detail::DevPtr<float> dt, u, z, Bm, Cm;
    detail::DevPtr<__nv_bfloat16> dt16, u16, z16, Bm16, Cm16;
    if (bf16_inputs) {
        dt16 = upload_bf16(s.dt), u16 = upload_bf16(s.u), z16 = upload_bf16(s.z);
        Bm16 = upload_bf16(s.Bm), Cm16 = upload_bf16(s.Cm);
        q.bf16 = {dt16.get(), u16.get(), z16.get(), Bm16.get(), Cm16.get()};
    } else {
        dt = upload(s.dt), u = upload(s.u), z = upload(s.z), Bm = upload(s.Bm), Cm = upload(s.Cm);
        q.dt = dt.get(), q.u = u.get(), q.z = z.get(), q.Bm = Bm.get(), q.Cm = Cm.get();
    }
    auto A2 = upload(s.A2), D = upload(s.D), bias = upload(s.dt_bias), state = upload(s.state);
    auto y = device_alloc<float>(rows * s.E);
    q.A2 = A2.get(), q.D = D.get(), q.dt_bias = bias.get(), q.state = state.get();
    q.y = y.get();
    q.y_stride = s.E;

    int sms = 0, dev = 0;
    MW_CUDA_CHECK(cudaGetDevice(&dev));
    MW_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const int T = chunk > 0 ? chunk : auto_scan_chunk(s.B, s.L, s.E, s.N, sms, variant);
    const ScanWorkspaceSize ws = scan_workspace_size(s.B, s.L, s.E, s.N, T, segment_steps);
    auto work = device_alloc<float>(ws.total());
    selective_scan(q, T, work.get(), nullptr);
    MW_CUDA_CHECK(cudaDeviceSynchronize());
    if (chunk_starts) {
        chunk_starts->assign(size_t(ws.chunk_state), 0.0f);
        MW_CUDA_CHECK(cudaMemcpy(chunk_starts->data(), work.get(), size_t(ws.chunk_state) * sizeof(float),
                                 cudaMemcpyDeviceToHost));
    }

    std::vector<float> out(size_t(rows * s.E));
    MW_CUDA_CHECK(cudaMemcpy(out.data(), y.get(), out.size() * sizeof(float), cudaMemcpyDeviceToHost));
    MW_CUDA_CHECK(cudaMemcpy(s.state.data(), state.get(), s.state.size() * sizeof(float), cudaMemcpyDeviceToHost));
    return out;
}

} // namespace mw::kernels::cuda
