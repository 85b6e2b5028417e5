// Large-stack worker threads for the recursive algorithms (see deep.hpp).
#include "core/deep.hpp"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>

#include "core/term.hpp"

namespace bwsk {

namespace {

constexpr std::size_t kReserve = std::size_t(1) << 20;  // headroom left when the guard fires
constexpr auto kPollEvery = std::chrono::milliseconds(50);

thread_local std::uintptr_t t_stack_base = 0;  // 0: not inside run_deep
thread_local std::size_t t_stack_budget = 0;
thread_local const std::atomic<bool>* t_cancel = nullptr;

struct Job {
    const std::function<void()>* fn;
    std::size_t stack_size;
    std::exception_ptr error;
    std::atomic<bool> cancel{false};
    std::mutex mutex;
    std::condition_variable finished;
    bool done = false;
};

void* run_job(void* p) {
    auto* job = static_cast<Job*>(p);
    char probe;
    t_stack_base = reinterpret_cast<std::uintptr_t>(&probe);
    t_stack_budget = job->stack_size - kReserve;
    t_cancel = &job->cancel;
    try {
        (*job->fn)();
    } catch (...) {
        job->error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(job->mutex);
    job->done = true;
    job->finished.notify_all();
    return nullptr;
}

// Waits for the worker, asking `interrupted` between waits until it says yes once.
void await(Job& job, const std::function<bool()>& interrupted) {
    std::unique_lock<std::mutex> lock(job.mutex);
    while (!job.done) {
        if (job.finished.wait_for(lock, kPollEvery, [&] { return job.done; })) break;
        if (!interrupted || job.cancel.load()) continue;
        lock.unlock();  // the poll may take the Python GIL: never while holding the job lock
        bool stop = true;  // a failing poll stops the walk: the worker must be joined first
        try {
            stop = interrupted();
        } catch (...) {
        }
        if (stop) job.cancel.store(true);
        lock.lock();
    }
}

}  // namespace

void run_deep(const std::function<void()>& fn, std::size_t stack_size,
              const std::function<bool()>& interrupted) {
    if (t_stack_base != 0) {
        fn();
        return;
    }
    for (std::size_t size = stack_size; size >= 2 * kReserve; size /= 4) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, size);
        Job job;
        job.fn = &fn;
        job.stack_size = size;
        pthread_t thread;
        int rc = pthread_create(&thread, &attr, run_job, &job);
        pthread_attr_destroy(&attr);
        if (rc != 0) continue;  // cannot reserve that much: try a smaller stack
        await(job, interrupted);
        pthread_join(thread, nullptr);
        if (job.error) std::rethrow_exception(job.error);
        return;
    }
    throw TermError("cannot start a worker thread for the term walk");
}

void stack_guard() {
    char probe;
    auto here = reinterpret_cast<std::uintptr_t>(&probe);
    if (t_stack_base == 0) return;
    if (t_stack_base - here > t_stack_budget)
        throw TermError("term too deep: nesting exceeds the native stack budget");
    if (t_cancel->load(std::memory_order_relaxed)) throw Interrupted();
}

}  // namespace bwsk
