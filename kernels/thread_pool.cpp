#include "kernels/thread_pool.h"

namespace mw::kernels {

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    start_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
}

void ThreadPool::run(int n_tasks, const std::function<void(int)>& fn) {
    if (workers_.empty() || n_tasks <= 1) {
        for (int i = 0; i < n_tasks; ++i) fn(i);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        job_ = &fn;
        n_tasks_ = n_tasks;
        pending_ = static_cast<int>(workers_.size());
        ++generation_;
    }
    start_cv_.notify_all();
    std::exception_ptr mine;
    for (int i = 0; i < n_tasks; i += size()) {  // the caller is thread 0
        try {
            fn(i);
        } catch (...) {
            if (!mine) mine = std::current_exception();
        }
    }
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    std::exception_ptr first = mine ? mine : error_;
    error_ = nullptr;
    if (first) std::rethrow_exception(first);
}

void ThreadPool::worker_loop(int index) {
    long seen = 0;
    for (;;) {
        const std::function<void(int)>* job;
        int n_tasks;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            job = job_;
            n_tasks = n_tasks_;
        }
        for (int i = index; i < n_tasks; i += size()) {
            try {
                (*job)(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (--pending_ == 0) done_cv_.notify_one();
        }
    }
}

} // namespace mw::kernels
