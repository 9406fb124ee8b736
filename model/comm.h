// Data-parallel training: the ranks of one run and the sums they share.
//
// Every rank holds the same model, data and random stream, so every rank knows the whole global
// batch; each runs forward and backward over its own share of the lanes, and the ranks add up
// their gradients (and a few statistics) here before the identical optimiser step. The result
// equals one process with the same global batch up to the order of float additions.
//
// Two groups: LocalGroup (threads of one process: the tests, and a check of the data-parallel
// logic on any machine) and NCCL (one process per GPU; make_nccl_communicator, where the CUDA
// build found NCCL).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace mw {

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // Sums data[0..n) over the ranks, in place; every rank gets the same result. Every rank
    // must make the same calls in the same order (a collective).
    virtual void all_reduce_sum(float* data, size_t n) = 0;
    virtual void all_reduce_sum(double* data, size_t n) = 0;
    // A short name for messages ("local 2 ranks", "NCCL 2 GPUs").
    virtual std::string describe() const = 0;
};

// `ranks` communicators for as many threads of one process (one each). Sums run in rank order,
// so every rank's result has the same bits.
std::vector<std::shared_ptr<Communicator>> make_local_group(int ranks);

// True where this build can make NCCL communicators (CUDA and NCCL were found).
bool nccl_available();
// Joins rank `rank` of `ranks` processes, one GPU each (the process's current CUDA device).
// Rendezvous through `rendezvous_dir`, which all ranks see: rank 0 writes NCCL's unique id
// there, the others wait up to `timeout_s` for it. Throws with the reason when NCCL is missing
// or the group cannot form.
std::shared_ptr<Communicator> make_nccl_communicator(int rank, int ranks, const std::string& rendezvous_dir,
                                                     double timeout_s = 120);

} // namespace mw
