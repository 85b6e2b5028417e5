// Large-stack worker threads for the recursive algorithms (see deep.hpp).
#include "core/deep.hpp"

#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <exception>

#include "core/term.hpp"

namespace bwsk {

namespace {

constexpr std::size_t kReserve = std::size_t(1) << 20;  // headroom left when the guard fires

thread_local std::uintptr_t t_stack_base = 0;  // 0: not inside run_deep
thread_local std::size_t t_stack_budget = 0;

struct Job {
    const std::function<void()>* fn;
    std::size_t stack_size;
    std::exception_ptr error;
};

void* run_job(void* p) {
    auto* job = static_cast<Job*>(p);
    char probe;
    t_stack_base = reinterpret_cast<std::uintptr_t>(&probe);
    t_stack_budget = job->stack_size - kReserve;
    try {
        (*job->fn)();
    } catch (...) {
        job->error = std::current_exception();
    }
    return nullptr;
}

}  // namespace

void run_deep(const std::function<void()>& fn, std::size_t stack_size) {
    if (t_stack_base != 0) {
        fn();
        return;
    }
    for (std::size_t size = stack_size; size >= 2 * kReserve; size /= 4) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, size);
        Job job{&fn, size, nullptr};
        pthread_t thread;
        int rc = pthread_create(&thread, &attr, run_job, &job);
        pthread_attr_destroy(&attr);
        if (rc != 0) continue;  // cannot reserve that much: try a smaller stack
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
}

}  // namespace bwsk
