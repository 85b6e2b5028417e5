// Deeply nested terms (100,000 levels and more) are walked recursively on a worker thread
// with a large reserved stack; a guard turns exhaustion into a TermError instead of a crash.
#pragma once

#include <cstddef>
#include <functional>

namespace bwsk {

constexpr std::size_t kDeepStack = std::size_t(1) << 30;

// Runs fn to completion on a thread with a large stack (1 GiB reserved, committed lazily;
// smaller if the system refuses), rethrowing whatever it throws. Nested calls run inline.
void run_deep(const std::function<void()>& fn, std::size_t stack_size = kDeepStack);

// Call at the top of every recursive step: throws TermError("term too deep ...") when the
// remaining stack of the current run_deep thread is nearly used up.
void stack_guard();

}  // namespace bwsk
