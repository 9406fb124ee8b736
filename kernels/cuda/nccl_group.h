// NCCL for data-parallel training: one process per GPU, sums of host buffers over the group.
// Built only where CMake finds NCCL next to the CUDA toolkit (MW_HAVE_NCCL); model/comm.h
// wraps it as a Communicator.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace mw::kernels::cuda {

struct NcclGroup;

// Joins rank `rank` of `ranks` on the current CUDA device. Rank 0 writes NCCL's unique id into
// `rendezvous_dir`/nccl_id (under a temporary name, then renamed); the others wait up to
// `timeout_s` seconds for the file. Throws std::runtime_error naming the failing call.
std::shared_ptr<NcclGroup> nccl_join(int rank, int ranks, const std::string& rendezvous_dir, double timeout_s);

// Sums host[0..n) over the group, in place (through a device buffer of the group's own).
void nccl_all_reduce_sum(NcclGroup& group, float* host, size_t n);
void nccl_all_reduce_sum(NcclGroup& group, double* host, size_t n);

} // namespace mw::kernels::cuda
