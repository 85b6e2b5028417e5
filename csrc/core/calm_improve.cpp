// Local moves after the dynamic programme: re-decide each node (with the layout ops that
// only pass its result on) against every other decision held fixed.
#include "core/calm_solver.hpp"

namespace bwsk::calm::detail {

// The true cost of node n under strategy st with every other decision fixed: its input
// conversions, its outputs' conversions into what each consumer uses, prices, statistics.
double Solver::local(std::size_t n, Strategy st, const Plan& plan) const {
    std::vector<I32> in, out, cin, cout;
    std::vector<char> gp, cgp;
    if (!assign(n, st, in, out, gp)) return kInf;
    Span is = ins(n), os = outs(n);
    double cost = 0.0;
    for (std::size_t i = 0; i < is.size(); ++i) {
        I32 v = is[i];
        if (v < 0) continue;
        auto& sv = states_[v];
        auto k = std::size_t(std::find(sv.begin(), sv.end(), in[i]) - sv.begin());
        if (!produced_[v] && consumers_[v].size() == 1 && k < sv.size()) {  // a source only we use follows us
            cost += f_[v][k] + conv_cost(v, in[i], in[i], gp[i] != 0);
        } else {
            cost += conv_cost(v, plan.value_state[v], in[i], gp[i] != 0);
        }
    }
    for (std::size_t j = 0; j < os.size() && cost < kInf; ++j) {
        I32 v = os[j];
        if (std::find(states_[v].begin(), states_[v].end(), out[j]) == states_[v].end()) return kInf;
        cost += price(v, out[j]);
        for (auto [m, slot] : consumers_[v]) {
            assign(std::size_t(m), chosen_[m], cin, cout, cgp);
            cost += conv_cost(v, out[j], cin[slot], cgp[slot] != 0);
        }
        if (p_.outputs_replicated && std::find(p_.outputs.begin(), p_.outputs.end(), v) != p_.outputs.end())
            cost += conv_cost(v, out[j], kReplicated, false);
    }
    if (stats_on(n, st)) cost += 2.0 * wire(Coll::AllReduce, p_.node_stat_bytes[n]);
    return cost;
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

// Cost of a chain of nodes: their local costs, minus the inner edges each counted twice.
double Solver::chain_cost(const std::vector<std::size_t>& nodes, const Plan& plan) const {
    double cost = 0.0;
    std::vector<I32> in, out;
    std::vector<char> gp;
    for (std::size_t k = 0; k < nodes.size(); ++k) {
        cost += local(nodes[k], chosen_[nodes[k]], plan);
        if (k == 0) continue;
        assign(nodes[k], chosen_[nodes[k]], in, out, gp);
        I32 v = ins(nodes[k])[0];
        cost -= conv_cost(v, plan.value_state[v], in[0], gp[0] != 0);
    }
    return cost;
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
// moves (a node with the layout ops that follow it) then fix what that missed, such as a
// LayerNorm joining a sequence-sharded region.
void Solver::improve(Plan& plan) {
    for (int sweep = 0; sweep < 8; ++sweep) {
        bool changed = false;
        for (std::size_t n = 0; n < nn(); ++n) {
            std::vector<std::size_t> nodes = chain(n);
            std::vector<Strategy> before;
            for (std::size_t x : nodes) before.push_back(chosen_[x]);
            double best = chain_cost(nodes, plan);
            for (Strategy st : strategies(n)) {
                for (std::size_t x : nodes) set(x, st.kind == 1 || x == n ? st : Strategy{0, 0}, plan);
                double c = chain_cost(nodes, plan);
                if (c < best - 1e-6) {
                    best = c, changed = true;
                    for (std::size_t k = 0; k < nodes.size(); ++k) before[k] = chosen_[nodes[k]];
                }
                for (std::size_t k = 0; k < nodes.size(); ++k) set(nodes[k], before[k], plan);
            }
        }
        if (!changed) break;
    }
    collect_demands();
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
