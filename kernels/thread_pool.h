// A small fixed pool of worker threads for the scan: run(n, fn) calls fn(0..n-1) spread over
// the workers and the caller, and returns when all are done. Not for the audio thread.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mw::kernels {

class ThreadPool {
public:
    // threads = total threads including the caller; 0 = hardware concurrency.
    explicit ThreadPool(int threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }
    // fn(task) for task in [0, n_tasks); task i runs on thread i % size(). A task that throws
    // does not end the process: every thread finishes its tasks, then run() rethrows the first
    // exception (tasks that wait on one another, as the scan's barriers do, must not throw).
    void run(int n_tasks, const std::function<void(int)>& fn);

private:
    void worker_loop(int index);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable start_cv_, done_cv_;
    const std::function<void(int)>* job_ = nullptr;
    int n_tasks_ = 0;
    long generation_ = 0;
    int pending_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;  // the first exception a worker caught in the current run
};

} // namespace mw::kernels
