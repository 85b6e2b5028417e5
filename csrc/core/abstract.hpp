// Bracket abstraction: removes a variable from a term, leaving a combinator term.
#pragma once

#include <string_view>

#include "core/term.hpp"

namespace bwsk {

// [x]body, where x is the free variable `var` (the attribute-less primitive named var).
// Turner-style: subterms without x are kept whole under K/B/C, so [x](f x) = f,
// [x]x = I, [x](f a) = B f [x]a when only a mentions x, C [x]f a when only f does,
// S [x]f [x]a when both do. Lambdas inside body are abstracted first (innermost), so
// the result has none.
// The result is not normalized. Runs on a large-stack thread (deep terms are fine).
Id abstract(Store& store, std::string_view var, Id body);

}  // namespace bwsk
