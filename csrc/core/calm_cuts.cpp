// Pipeline cuts: stage boundaries balancing the load where the fewest bytes cross.
#include <cmath>
#include <stdexcept>
#include <string>

#include "core/calm.hpp"

namespace bwsk::calm {

using I32 = std::int32_t;

std::vector<I32> cuts(const std::vector<double>& load, const std::vector<std::int64_t>& crossing,
                      const std::vector<std::uint8_t>& candidate, I32 stages) {
    std::size_t n = load.size();
    if (crossing.size() != n + 1 || candidate.size() != n + 1)
        throw std::invalid_argument("calm: cuts needs n + 1 boundaries");
    if (stages < 2) throw std::invalid_argument("calm: a pipeline needs at least 2 stages");
    std::vector<double> prefix(n + 1, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        if (!(load[i] >= 0.0)) throw std::invalid_argument("calm: negative load");
        prefix[i + 1] = prefix[i] + load[i];
    }
    double total = prefix[n] > 0 ? prefix[n] : 1.0;
    double tolerance = 0.25 / stages;  // a quarter of a stage's share of the work
    std::vector<I32> out;
    I32 last = 0;
    for (I32 k = 1; k < stages; ++k) {
        double target = double(k) / stages;
        I32 best = -1;
        auto better = [&](I32 b) {  // inside the window: fewer bytes, then closer to balance
            if (best < 0) return true;
            if (crossing[b] != crossing[best]) return crossing[b] < crossing[best];
            return std::abs(prefix[b] / total - target) < std::abs(prefix[best] / total - target);
        };
        for (std::size_t b = std::size_t(last) + 1; b < n; ++b)
            if (candidate[b] && std::abs(prefix[b] / total - target) <= tolerance && better(I32(b))) best = I32(b);
        if (best < 0)  // no candidate in the window: the nearest candidate
            for (std::size_t b = std::size_t(last) + 1; b < n; ++b)
                if (candidate[b] && (best < 0 || std::abs(prefix[b] / total - target) <
                                                     std::abs(prefix[best] / total - target)))
                    best = I32(b);
        if (best < 0) throw std::invalid_argument("calm: not enough places to cut for " + std::to_string(stages) + " stages");
        out.push_back(best);
        last = best;
    }
    return out;
}

}  // namespace bwsk::calm
