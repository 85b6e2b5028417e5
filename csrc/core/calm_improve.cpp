// Local moves after the dynamic programme: re-decide each node together with the layout
// ops that pass its result on and its consumers, against every other decision held fixed.
#include <cassert>

#include "core/calm_solver.hpp"

namespace bwsk::calm::detail {

// What converting v from placement s into what each consumer uses costs, as emit lists
// it: one forward conversion serves every consumer wanting that placement; the gradients
// of consumers sharded alike are summed locally before one backward conversion (autograd
// sums them in that layout), and so are a parameter's before one optimizer all-reduce.
double Solver::conversions(I32 v, I32 s, const std::vector<Demand>& ds) const {
    double cost = 0.0;
    bool reduced = false;
    for (std::size_t k = 0; k < ds.size() && cost < kInf; ++k) {
        Conv c = convert(s, ds[k].state, ds[k].gp, has_grad(v));
        cost += conv_cost(v, s, ds[k].state, ds[k].gp);
        auto same = [&](const Demand& d) { return d.state == ds[k].state; };
        bool again = std::any_of(ds.begin(), ds.begin() + long(k), same);
        if (again) cost -= wire(c.fwd, p_.val_bytes[v]);
        if (c.bwd == Coll::None) continue;
        if ((again && ds[k].state >= 0) || (kind(v) == Kind::Parameter && std::exchange(reduced, true)))
            cost -= wire(c.bwd, p_.val_bytes[v]);
    }
    return cost;
}

// v's price in placement s plus its conversions; a source cannot be a partial sum.
double Solver::value_cost(I32 v, I32 s, const std::vector<Demand>& ds) const {
    auto& sv = states_[v];
    if (std::find(sv.begin(), sv.end(), s) == sv.end() || (!produced_[v] && s == kPartial)) return kInf;
    return price(v, s) + conversions(v, s, ds);
}

// What v's consumers use under their chosen strategies (and a replicated graph output).
// Every chosen strategy is feasible here: group_cost checks the nodes it moved first.
std::vector<Demand> Solver::demands_of(I32 v) const {
    std::vector<Demand> ds;
    std::vector<I32> in, out;
    std::vector<char> gp;
    for (auto [m, slot] : consumers_[v]) {
        [[maybe_unused]] bool ok = assign(std::size_t(m), chosen_[m], in, out, gp);
        assert(ok && "a chosen strategy is feasible");
        ds.push_back({m, in[slot], gp[slot] != 0});
    }
    if (p_.outputs_replicated && std::find(p_.outputs.begin(), p_.outputs.end(), v) != p_.outputs.end())
        ds.push_back({-1, kReplicated, false});
    return ds;
}

// Layout ops (reshape, transpose) that only pass n's result on: they must move with n.
std::vector<std::size_t> Solver::chain(std::size_t n) const {
    std::vector<std::size_t> out{n};
    for (int k = 0; k < 8; ++k) {
        Span os = outs(out.back());
        if (os.size() != 1 || consumers_[os[0]].size() != 1) break;
        auto [m, slot] = consumers_[os[0]][0];
        if (slot != 0 || static_cast<Linear>(p_.node_linear[m]) != Linear::Unary) break;
        out.push_back(std::size_t(m));
    }
    return out;
}

// The plan's cost over everything a group of nodes touches (their operands and results,
// each value once, with all of its consumers) under the current decisions: comparing it
// before and after a move is comparing the whole plan's cost.
double Solver::group_cost(const std::vector<std::size_t>& nodes, const Plan& plan) const {
    std::vector<I32> touched, in, out;
    std::vector<char> gp;
    double cost = 0.0;
    for (std::size_t n : nodes) {
        if (!assign(n, chosen_[n], in, out, gp)) return kInf;
        if (stats_on(n, chosen_[n])) cost += 2.0 * wire(Coll::AllReduce, p_.node_stat_bytes[n]);
        for (Span s : {ins(n), outs(n)})
            for (std::size_t i = 0; i < s.size(); ++i)
                if (s[i] >= 0) touched.push_back(s[i]);
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (std::size_t k = 0; k < touched.size() && cost < kInf; ++k)
        cost += value_cost(touched[k], plan.value_state[touched[k]], demands_of(touched[k]));
    return cost;
}

// The group a move re-decides together: n with its layout followers, then each consumer of
// the result with its own. Moving only one side of an edge would pay a conversion on the
// way (a residual stream entering a sequence-sharded region needs its LayerNorm to move too).
std::vector<std::size_t> Solver::group(std::size_t n) const {
    std::vector<std::size_t> out = chain(n);
    Span os = outs(out.back());
    for (std::size_t j = 0; j < os.size(); ++j)
        for (const auto& use : consumers_[os[j]])
            for (std::size_t x : chain(std::size_t(use.first)))
                if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(x);
    return out;
}

void Solver::set(std::size_t n, Strategy st, Plan& plan) {
    std::vector<I32> in, out;
    std::vector<char> gp;
    chosen_[n] = st;
    assign(n, st, in, out, gp);
    Span is = ins(n), os = outs(n);
    for (std::size_t j = 0; j < os.size(); ++j) plan.value_state[os[j]] = out[j];
    for (std::size_t i = 0; i < is.size(); ++i)
        if (is[i] >= 0 && !produced_[is[i]] && consumers_[is[i]].size() == 1) {
            auto& sv = states_[is[i]];
            if (std::find(sv.begin(), sv.end(), in[i]) != sv.end()) plan.value_state[is[i]] = in[i];
        }
}

// Greedy backtracking decides each node against fixed downstream choices; a few sweeps of
// moves then fix what that missed, such as a LayerNorm joining a sequence-sharded region.
// A move gives n a strategy, its layout followers the same (or replication), and either
// leaves n's consumers as they are or gives them the same strategy where they can take it;
// it is kept if the group costs less.
void Solver::improve(Plan& plan) {
    std::vector<I32> in, out;
    std::vector<char> gp;
    for (int sweep = 0; sweep < 8; ++sweep) {
        bool changed = false;
        for (std::size_t n = 0; n < nn(); ++n) {
            std::vector<std::size_t> nodes = group(n);
            std::size_t own = chain(n).size();
            std::vector<Strategy> before;
            for (std::size_t x : nodes) before.push_back(chosen_[x]);
            double best = group_cost(nodes, plan);
            for (std::size_t trial = 0; trial < 2 * strategies(n).size(); ++trial) {
                Strategy st = strategies(n)[trial / 2];
                bool along = trial % 2 == 1;  // the consumers take st too
                if (along && st.kind != 1) continue;
                for (std::size_t k = 0; k < nodes.size(); ++k) {
                    std::size_t x = nodes[k];
                    if (k < own) set(x, st.kind == 1 || x == n ? st : Strategy{0, 0}, plan);
                    else if (along && assign(x, st, in, out, gp)) set(x, st, plan);
                }
                double c = group_cost(nodes, plan);
                if (c < best - 1e-6) {
                    best = c, changed = true;
                    for (std::size_t k = 0; k < nodes.size(); ++k) before[k] = chosen_[nodes[k]];
                }
                for (std::size_t k = 0; k < nodes.size(); ++k) set(nodes[k], before[k], plan);
            }
        }
        if (!changed) break;
    }
}

void Solver::collect_demands() {
    demands_.assign(nv(), {});
    std::vector<I32> in, out;
    std::vector<char> gp;
    for (std::size_t n = 0; n < nn(); ++n) {
        assign(n, chosen_[n], in, out, gp);
        Span is = ins(n);
        for (std::size_t i = 0; i < is.size(); ++i)
            if (is[i] >= 0) demands_[is[i]].push_back({I32(n), in[i], gp[i] != 0});
    }
    if (p_.outputs_replicated)
        for (I32 o : p_.outputs) demands_[o].push_back({-1, kReplicated, false});
}

}  // namespace bwsk::calm::detail
