// Where a host's time goes between its waits for a GPU, without a timeline profiler (the lent
// GPU machines have no Nsight Systems). Each wait ends a segment of the host's own work
// (enqueuing kernels and cuBLAS calls, packing, copying, its own loops) that began when the
// previous wait returned, or at the last mark(); the segment's work and the wait itself are
// added to the wait's site (its source line). Work after a step's last wait is not counted:
// pause() ends the step, and the next mark() starts afresh. Host-only bookkeeping, tested on the CPU (tests/test_kernels.cpp);
// kernels/cuda's wait_for feeds one when MW_HOST_TRACE=1 (kernels/cuda/mamba_cuda.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace mw::kernels {

class HostTrace {
public:
    struct Site {
        std::string where;
        int64_t waits = 0, work_ns = 0, wait_ns = 0;
    };

    // A segment starts at now_ns (a training step's start); the host's time before it is not counted.
    void mark(int64_t now_ns) {
        std::lock_guard<std::mutex> lock(m_);
        last_ = now_ns;
        ++marks_;
    }
    // The host waited at `where` from begin_ns to end_ns: the work since the last wait or mark
    // ends at begin_ns. Before any mark nothing is counted.
    void wait(std::string_view where, int64_t begin_ns, int64_t end_ns) {
        std::lock_guard<std::mutex> lock(m_);
        if (last_ < 0) return;
        auto it = std::find_if(sites_.begin(), sites_.end(), [&](const Site& s) { return s.where == where; });
        if (it == sites_.end()) {
            sites_.push_back(Site{std::string(where)});
            it = sites_.end() - 1;
        }
        it->waits += 1;
        it->work_ns += std::max<int64_t>(0, begin_ns - last_);
        it->wait_ns += std::max<int64_t>(0, end_ns - begin_ns);
        last_ = end_ns;
    }

    // The segment open since the last wait or mark is dropped, and nothing is counted until the
    // next mark (a step's end: what follows, validation say, is not the step's).
    void pause() {
        std::lock_guard<std::mutex> lock(m_);
        last_ = -1;
    }

    int64_t marks() const {
        std::lock_guard<std::mutex> lock(m_);
        return marks_;
    }
    // The sites, most time (work + wait) first.
    std::vector<Site> sites() const {
        std::lock_guard<std::mutex> lock(m_);
        std::vector<Site> s = sites_;
        std::stable_sort(s.begin(), s.end(), [](const Site& a, const Site& b) {
            return a.work_ns + a.wait_ns > b.work_ns + b.wait_ns;
        });
        return s;
    }
    // A table per mark (a step): each site's waits, the host's own work before them and the
    // waits' time, in ms, with the totals; empty when nothing was marked.
    std::string report() const {
        const std::vector<Site> s = sites();
        const int64_t n = marks();
        if (n == 0) return {};
        char line[512];
        std::string out;
        std::snprintf(line, sizeof line, "host trace over %lld steps, per step (ms): the host's own work before each wait, "
                      "and the wait\n%10s %10s %8s  %s\n", static_cast<long long>(n), "own work", "wait", "waits",
                      "where");
        out += line;
        int64_t work = 0, wait = 0;
        const double per = 1e-6 / double(n);
        for (const Site& x : s) {
            std::snprintf(line, sizeof line, "%10.3f %10.3f %8.1f  %s\n", double(x.work_ns) * per,
                          double(x.wait_ns) * per, double(x.waits) / double(n), x.where.c_str());
            out += line;
            work += x.work_ns;
            wait += x.wait_ns;
        }
        std::snprintf(line, sizeof line, "%10.3f %10.3f %8s  total\n", double(work) * per, double(wait) * per, "");
        out += line;
        return out;
    }

private:
    mutable std::mutex m_;
    int64_t last_ = -1, marks_ = 0;
    std::vector<Site> sites_;
};

} // namespace mw::kernels
