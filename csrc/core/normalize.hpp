// The normalizer: innermost rewriting with the rule table, memoized per node so the work
// is proportional to the DAG, not the tree (a residual chain shares every prefix).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/rules.hpp"
#include "core/term.hpp"

namespace bwsk {

struct NormalizeOptions {
    std::uint64_t max_steps = 200'000'000;  // rule firings before giving up (no normal form?)
    std::function<bool()> interrupted;  // polled by the caller's thread (see run_deep)
};

// The normal form of t, always under default_rules() (Store::nf memoizes normal forms
// under those rules). Idempotent: normalize(normalize(t)) == normalize(t). Lambdas are
// removed by bracket abstraction. If `fired` is given it receives, per entry of
// default_rules().texts(), how many times that rule fired in this call (memoized work is
// not redone, so it is not counted again). Throws TermError on ill-formed terms, on a term
// whose innermost reduction loops, and past max_steps; Interrupted when
// options.interrupted says so. Runs on a large-stack thread.
Id normalize(Store& store, Id t, std::vector<std::uint64_t>* fired = nullptr,
             NormalizeOptions options = {});

}  // namespace bwsk
