// Deeply nested terms (100,000 levels and more) are walked recursively on a worker thread
// with a large reserved stack; a guard turns exhaustion into a TermError instead of a crash.
// The same guard lets the caller interrupt a long walk (Ctrl-C in Python).
#pragma once

#include <cstddef>
#include <functional>
#include <stdexcept>

namespace bwsk {

constexpr std::size_t kDeepStack = std::size_t(1) << 30;

// Thrown inside a walk when the caller's `interrupted` poll said so.
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted") {}
};

// Runs fn to completion on a thread with a large stack (1 GiB reserved, committed lazily;
// smaller if the system refuses), rethrowing whatever it throws. Nested calls run inline.
// While it runs, the calling thread polls `interrupted` (if given) every 50 ms; once it
// returns true, the walk stops at its next guard with Interrupted.
void run_deep(const std::function<void()>& fn, std::size_t stack_size = kDeepStack,
              const std::function<bool()>& interrupted = {});

// Call at the top of every recursive step: throws TermError("term too deep ...") when the
// remaining stack of the current run_deep thread is nearly used up, Interrupted on request.
void stack_guard();

}  // namespace bwsk
