#include "model/comm.h"

#include <barrier>
#include <stdexcept>

#ifndef MW_HAVE_NCCL
#define MW_HAVE_NCCL 0
#endif
#if MW_HAVE_NCCL
#include "kernels/cuda/nccl_group.h"
#endif

namespace mw {

namespace {

// The threads of one LocalGroup meet here: each publishes its buffer, waits for the others,
// sums all of them in rank order into its own copy, and waits again before the buffers may
// change.
struct LocalShared {
    explicit LocalShared(int n) : ranks(n), sync(n), slots(size_t(n), nullptr) {}
    int ranks;
    std::barrier<> sync;
    std::vector<const void*> slots;
};

class LocalRank final : public Communicator {
public:
    LocalRank(std::shared_ptr<LocalShared> shared, int rank) : shared_(std::move(shared)), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return shared_->ranks; }
    void all_reduce_sum(float* data, size_t n) override { reduce(data, n); }
    void all_reduce_sum(double* data, size_t n) override { reduce(data, n); }
    std::string describe() const override { return "local group of " + std::to_string(size()) + " ranks"; }

private:
    template <class T>
    void reduce(T* data, size_t n) {
        std::vector<T> mine(data, data + n);  // the others read this copy while this rank sums
        shared_->slots[size_t(rank_)] = mine.data();
        shared_->sync.arrive_and_wait();
        for (size_t i = 0; i < n; ++i) {
            T sum = 0;
            for (int r = 0; r < shared_->ranks; ++r) sum += static_cast<const T*>(shared_->slots[size_t(r)])[i];
            data[i] = sum;
        }
        shared_->sync.arrive_and_wait();  // nobody's copy may go before everyone has read it
    }
    std::shared_ptr<LocalShared> shared_;
    int rank_;
};

#if MW_HAVE_NCCL
class NcclRank final : public Communicator {
public:
    NcclRank(int rank, int ranks, const std::string& dir, double timeout_s)
        : group_(kernels::cuda::nccl_join(rank, ranks, dir, timeout_s)), rank_(rank), ranks_(ranks) {}
    int rank() const override { return rank_; }
    int size() const override { return ranks_; }
    void all_reduce_sum(float* data, size_t n) override { kernels::cuda::nccl_all_reduce_sum(*group_, data, n); }
    void all_reduce_sum(double* data, size_t n) override { kernels::cuda::nccl_all_reduce_sum(*group_, data, n); }
    std::string describe() const override { return "NCCL, " + std::to_string(ranks_) + " GPUs"; }

private:
    std::shared_ptr<kernels::cuda::NcclGroup> group_;
    int rank_, ranks_;
};
#endif

} // namespace

std::vector<std::shared_ptr<Communicator>> make_local_group(int ranks) {
    if (ranks < 1) throw std::invalid_argument("a group needs at least one rank, got " + std::to_string(ranks));
    auto shared = std::make_shared<LocalShared>(ranks);
    std::vector<std::shared_ptr<Communicator>> group;
    for (int r = 0; r < ranks; ++r) group.push_back(std::make_shared<LocalRank>(shared, r));
    return group;
}

bool nccl_available() { return MW_HAVE_NCCL != 0; }

std::shared_ptr<Communicator> make_nccl_communicator(int rank, int ranks, const std::string& rendezvous_dir,
                                                     double timeout_s) {
    if (ranks < 1 || rank < 0 || rank >= ranks)
        throw std::invalid_argument("NCCL rank " + std::to_string(rank) + " of " + std::to_string(ranks) +
                                    ": out of range");
#if MW_HAVE_NCCL
    return std::make_shared<NcclRank>(rank, ranks, rendezvous_dir, timeout_s);
#else
    (void)rendezvous_dir, (void)timeout_s;
    throw std::runtime_error("this build has no NCCL (multi-GPU training needs the CUDA build with NCCL found; "
                             "see README, 'Multi-GPU training')");
#endif
}

} // namespace mw
