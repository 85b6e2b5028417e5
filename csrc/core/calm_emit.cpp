// The chosen plan's collectives: one record per conversion a consumer needs, per
// statistics reduction, and per parameter whose gradient must be summed across ranks.
#include <set>

#include "core/calm_solver.hpp"

namespace bwsk::calm::detail {

// v's partial gradient may flow to its parameters when v and everything it is computed
// from are replicated (the same computation on every rank; see find_input_free).
bool Solver::pushable(I32 v, const Plan& plan) const {
    if (!free_[v]) return false;
    std::vector<I32> todo{v};
    std::set<I32> seen{v};
    while (!todo.empty()) {
        I32 x = todo.back();
        todo.pop_back();
        if (plan.value_state[x] != kReplicated) return false;
        if (producer_[x] < 0) continue;
        Span is = ins(std::size_t(producer_[x]));
        for (std::size_t i = 0; i < is.size(); ++i)
            if (is[i] >= 0 && seen.insert(is[i]).second) todo.push_back(is[i]);
    }
    return true;
}

void Solver::emit(Plan& plan) const {
    std::set<I32> reduced, pushed;  // parameters whose gradients are summed; values pushed back
    for (std::size_t v = 0; v < nv(); ++v) {
        I32 s = plan.value_state[v];
        std::set<I32> converted, returned;
        bool optim = kind(I32(v)) == Kind::Parameter;
        const auto& ds = demands_[v];
        for (const Demand& d : ds) {  // in node order
            Conv c = convert(s, d.state, d.gp, has_grad(I32(v)));
            // one conversion serving several consumers sits at the producer (node -1)
            bool shared = std::count_if(ds.begin(), ds.end(), [&](const Demand& e) { return e.state == d.state; }) > 1;
            if (c.fwd != Coll::None && converted.insert(d.state).second)
                plan.records.push_back({I32(v), shared ? -1 : d.node, Phase::Fwd, c.fwd, p_.val_bytes[v]});
            if (c.bwd == Coll::None) continue;
            if (d.state >= 0 && !returned.insert(d.state).second) continue;  // sharded alike: summed first
            if (c.bwd == Coll::AllReduce && pushable(I32(v), plan)) {
                pushed.insert(I32(v));
                continue;
            }
            if (optim && !reduced.insert(I32(v)).second) continue;  // partial gradients sum locally first
            I32 at = shared && d.state >= 0 ? -1 : d.node;
            plan.records.push_back({I32(v), at, optim ? Phase::Optim : Phase::Bwd, c.bwd, p_.val_bytes[v]});
        }
    }
    for (I32 v : pushed)
        for (I32 q : leaves_[v])
            if (reduced.insert(q).second)
                plan.records.push_back({q, -1, Phase::Optim, Coll::AllReduce, p_.val_bytes[q]});
    for (std::size_t n = 0; n < nn(); ++n) {
        if (!stats_on(n, chosen_[n])) continue;
        I32 v = outs(n)[0];
        plan.records.push_back({v, I32(n), Phase::Fwd, Coll::AllReduce, p_.node_stat_bytes[n]});
        plan.records.push_back({v, I32(n), Phase::Bwd, Coll::AllReduce, p_.node_stat_bytes[n]});
    }
}

}  // namespace bwsk::calm::detail
