#include "kernels/cuda/nccl_group.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace mw::kernels::cuda {

namespace {

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
void check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess) throw std::runtime_error(std::string(what) + ": " + ncclGetErrorString(r));
}

} // namespace

struct NcclGroup {
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr;
    void* buffer = nullptr;
    size_t capacity = 0;  // bytes
    ~NcclGroup() {
        if (comm) ncclCommDestroy(comm);
        if (buffer) cudaFree(buffer);
        if (stream) cudaStreamDestroy(stream);
    }
    void* reserve(size_t bytes) {
        if (bytes > capacity) {
            if (buffer) check(cudaFree(buffer), "cudaFree");
            buffer = nullptr;
            check(cudaMalloc(&buffer, bytes), "cudaMalloc (NCCL buffer)");
            capacity = bytes;
        }
        return buffer;
    }
};

std::shared_ptr<NcclGroup> nccl_join(int rank, int ranks, const std::string& rendezvous_dir, double timeout_s) {
    namespace fs = std::filesystem;
    const fs::path id_path = fs::path(rendezvous_dir) / "nccl_id";
    ncclUniqueId id;
    if (rank == 0) {
        check(ncclGetUniqueId(&id), "ncclGetUniqueId");
        const fs::path tmp = fs::path(rendezvous_dir) / "nccl_id.tmp";
        {
            std::ofstream f(tmp, std::ios::binary);
            f.write(reinterpret_cast<const char*>(&id), sizeof id);
            if (!f) throw std::runtime_error(tmp.string() + ": cannot write NCCL's id");
        }
        fs::rename(tmp, id_path);
    } else {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (!fs::exists(id_path)) {
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("rank " + std::to_string(rank) + ": no NCCL id from rank 0 in " +
                                         id_path.string() + " after " + std::to_string(int(timeout_s)) + " s");
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        std::ifstream f(id_path, std::ios::binary);
        f.read(reinterpret_cast<char*>(&id), sizeof id);
        if (!f) throw std::runtime_error(id_path.string() + ": cannot read NCCL's id");
    }
    auto g = std::make_shared<NcclGroup>();
    check(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check(ncclCommInitRank(&g->comm, ranks, id, rank), "ncclCommInitRank");
    return g;
}

template <class T>
static void reduce(NcclGroup& g, T* host, size_t n, ncclDataType_t type) {
    if (n == 0) return;
    void* d = g.reserve(n * sizeof(T));
    check(cudaMemcpyAsync(d, host, n * sizeof(T), cudaMemcpyHostToDevice, g.stream), "cudaMemcpyAsync");
    check(ncclAllReduce(d, d, n, type, ncclSum, g.comm, g.stream), "ncclAllReduce");
    check(cudaMemcpyAsync(host, d, n * sizeof(T), cudaMemcpyDeviceToHost, g.stream), "cudaMemcpyAsync");
    check(cudaStreamSynchronize(g.stream), "cudaStreamSynchronize (all-reduce)");
}

void nccl_all_reduce_sum(NcclGroup& g, float* host, size_t n) { reduce(g, host, n, ncclFloat32); }
void nccl_all_reduce_sum(NcclGroup& g, double* host, size_t n) { reduce(g, host, n, ncclFloat64); }

} // namespace mw::kernels::cuda
