#include "core/prove.hpp"

#include <stdexcept>
#include <string>

namespace bwsk {
namespace {

void check(const ProveGraph& g) {
    auto nodes = g.in_off.empty() ? 0 : g.in_off.size() - 1;
    if (g.out_off.size() != g.in_off.size())
        throw std::invalid_argument("prove: in_off and out_off must have the same length");
    if (g.out_needed.size() != g.out_ids.size())
        throw std::invalid_argument("prove: out_needed must have one entry per node output");
    if (g.in_recover.size() != g.in_ids.size())
        throw std::invalid_argument("prove: in_recover must have one entry per node input");
    if (nodes && (g.in_off.back() != static_cast<std::int32_t>(g.in_ids.size()) ||
                  g.out_off.back() != static_cast<std::int32_t>(g.out_ids.size())))
        throw std::invalid_argument("prove: offsets do not match the id arrays");
    for (std::size_t k = 0; k < nodes; ++k)
        if (g.in_off[k] > g.in_off[k + 1] || g.out_off[k] > g.out_off[k + 1])
            throw std::invalid_argument("prove: offsets must be non-decreasing");
    auto in_range = [&](std::int32_t v) { return v >= 0 && v < g.num_values; };
    for (auto v : g.in_ids)
        if (!in_range(v)) throw std::invalid_argument("prove: value id out of range: " + std::to_string(v));
    for (auto v : g.out_ids)
        if (!in_range(v)) throw std::invalid_argument("prove: value id out of range: " + std::to_string(v));
    for (auto v : g.known_from_start)
        if (!in_range(v)) throw std::invalid_argument("prove: value id out of range: " + std::to_string(v));
}

struct Solver {
    const ProveGraph& g;
    ProveResult r;
    std::vector<std::vector<std::int32_t>> users;  // value -> nodes touching it
    std::vector<std::int32_t> work;
    std::vector<std::uint8_t> queued;

    explicit Solver(const ProveGraph& graph) : g(graph) {
        std::size_t nodes = g.in_off.empty() ? 0 : g.in_off.size() - 1;
        r.known.assign(g.num_values, 0);
        users.resize(g.num_values);
        queued.assign(nodes, 1);
        for (std::size_t k = 0; k < nodes; ++k) {
            for (auto i = g.in_off[k]; i < g.in_off[k + 1]; ++i) users[g.in_ids[i]].push_back(k);
            for (auto i = g.out_off[k]; i < g.out_off[k + 1]; ++i) users[g.out_ids[i]].push_back(k);
            work.push_back(static_cast<std::int32_t>(k));
        }
        for (auto v : g.known_from_start) r.known[v] = 1;
    }

    void learn(std::int32_t v) {
        if (r.known[v]) return;
        r.known[v] = 1;
        for (auto k : users[v])
            if (!queued[k]) { queued[k] = 1; work.push_back(k); }
    }

    bool all_known(const std::vector<std::int32_t>& ids, std::int32_t lo, std::int32_t hi,
                   std::int32_t skip = -1) const {
        for (auto i = lo; i < hi; ++i)
            if (i != skip && !r.known[ids[i]]) return false;
        return true;
    }

    // True when the node has outputs the inverse needs and all of them are known.
    bool needed_known(std::int32_t lo, std::int32_t hi) const {
        bool any = false;
        for (auto i = lo; i < hi; ++i) {
            if (!g.out_needed[i]) continue;
            if (!r.known[g.out_ids[i]]) return false;
            any = true;
        }
        return any;
    }

    // Applies every rule of node k that fires; knowledge it creates re-queues neighbours.
    void visit(std::int32_t k) {
        auto ilo = g.in_off[k], ihi = g.in_off[k + 1], olo = g.out_off[k], ohi = g.out_off[k + 1];
        if (all_known(g.in_ids, ilo, ihi) && !all_known(g.out_ids, olo, ohi)) {
            r.steps.push_back({k, -1});
            for (auto i = olo; i < ohi; ++i) learn(g.out_ids[i]);
        }
        if (!needed_known(olo, ohi)) return;
        for (auto i = ilo; i < ihi; ++i) {
            auto how = static_cast<Recover>(g.in_recover[i]);
            if (r.known[g.in_ids[i]] || how == Recover::No) continue;
            if (how == Recover::GivenOthers && !all_known(g.in_ids, ilo, ihi, i)) continue;
            r.steps.push_back({k, i - ilo});
            learn(g.in_ids[i]);
        }
    }

    void run() {
        while (!work.empty()) {
            auto k = work.back();
            work.pop_back();
            queued[k] = 0;
            visit(k);
        }
    }
};

}  // namespace

ProveResult prove_recoverable(const ProveGraph& g) {
    check(g);
    Solver s(g);
    s.run();
    return std::move(s.r);
}

}  // namespace bwsk
