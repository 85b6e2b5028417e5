// Plan search for one mesh axis: a dynamic programme over placements (see calm.hpp).
//
// Forward pass: f[v][s] is the cheapest way to produce value v in placement s; a node's
// strategy (replicate, shard on a class, or compute on partial sums) fixes its operands'
// placements, and converting a producer's placement into the one a consumer needs costs
// a collective in the forward pass and its transpose in the backward pass. Fan-out is
// priced per consumer (the usual tree relaxation); the backward pass over the DAG then
// picks one placement per value against all of its consumers' demands, so every emitted
// collective belongs to one consistent plan. Local moves (calm_improve.cpp) then fix what
// the greedy backward pass missed, and calm_emit.cpp lists the plan's collectives.
#include <stdexcept>
#include <string>

#include "core/calm_solver.hpp"

namespace bwsk::calm {
namespace detail {

Solver::Solver(const Problem& p) : p_(p) { validate(); }

void Solver::validate() const {
    auto check_off = [](const std::vector<I32>& off, const std::vector<I32>& data, std::size_t n,
                        const char* what) {
        if (off.size() != n + 1 || off.front() != 0 || std::size_t(off.back()) != data.size())
            throw std::invalid_argument(std::string("calm: bad offsets for ") + what);
        for (std::size_t i = 0; i < n; ++i)
            if (off[i] > off[i + 1]) throw std::invalid_argument(std::string("calm: decreasing offsets for ") + what);
    };
    if (p_.world < 2) throw std::invalid_argument("calm: world size must be at least 2");
    std::size_t v = nv(), n = nn();
    if (p_.val_bytes.size() != v || p_.val_fixed.size() != v || p_.val_price.size() != v || p_.node_stat_bytes.size() != n)
        throw std::invalid_argument("calm: array lengths disagree");
    check_off(p_.val_all_off, p_.val_all, v, "value classes");
    check_off(p_.val_ok_off, p_.val_ok, v, "shardable classes");
    check_off(p_.node_in_off, p_.node_in, n, "node inputs");
    check_off(p_.node_out_off, p_.node_out, n, "node outputs");
    check_off(p_.node_mix_off, p_.node_mix, n, "mixed classes");
    check_off(p_.node_stat_off, p_.node_stat, n, "statistics classes");
    for (I32 x : p_.node_in)
        if (x < -1 || x >= I32(v)) throw std::invalid_argument("calm: node input out of range");
    for (I32 x : p_.node_out)
        if (x < 0 || x >= I32(v)) throw std::invalid_argument("calm: node output out of range");
    for (I32 x : p_.outputs)
        if (x < 0 || x >= I32(v)) throw std::invalid_argument("calm: graph output out of range");
    for (I32 k : p_.val_kind)
        if (k < 0 || k > 3) throw std::invalid_argument("calm: bad value kind");
}

void Solver::index_graph() {
    consumers_.assign(nv(), {});
    produced_.assign(nv(), 0);
    producer_.assign(nv(), -1);
    for (std::size_t n = 0; n < nn(); ++n) {
        Span is = ins(n), os = outs(n);
        for (std::size_t i = 0; i < is.size(); ++i)
            if (is[i] >= 0) consumers_[is[i]].push_back({I32(n), I32(i)});
        for (std::size_t j = 0; j < os.size(); ++j) produced_[os[j]] = 1, producer_[os[j]] = I32(n);
    }
}

void Solver::init_states() {
    states_.assign(nv(), {});
    f_.assign(nv(), {});
    for (std::size_t v = 0; v < nv(); ++v) {
        auto& st = states_[v];
        if (p_.val_fixed[v] != kFree) st = {p_.val_fixed[v]};
        else if (kind(I32(v)) == Kind::Constant) st = {kReplicated};
        else {
            st = {kReplicated, kPartial};
            Span ok = span(p_.val_ok_off, p_.val_ok, v);
            st.insert(st.end(), ok.b, ok.e);
        }
        // Sources start free (parameters, inputs, constants); produced values start unreachable.
        f_[v].assign(st.size(), kInf);
    }
    for (std::size_t v = 0; v < nv(); ++v)
        if (!produced_[v])
            for (std::size_t k = 0; k < states_[v].size(); ++k)
                f_[v][k] = states_[v][k] == kPartial ? kInf : price(I32(v), states_[v][k]);
}

void Solver::forward() {
    std::vector<I32> in, out;
    std::vector<char> gp;
    for (std::size_t n = 0; n < nn(); ++n)
        for (Strategy st : strategies(n)) {
            double c = node_cost(n, st, in, out, gp);
            if (c == kInf) continue;
            Span os = outs(n);
            for (std::size_t j = 0; j < os.size(); ++j) {
                auto& sv = states_[os[j]];
                std::size_t k = std::find(sv.begin(), sv.end(), out[j]) - sv.begin();
                f_[os[j]][k] = std::min(f_[os[j]][k], c);
            }
        }
}

void Solver::backward(Plan& plan) {
    demands_.assign(nv(), {});
    chosen_.assign(nn(), {0, 0});
    plan.value_state.assign(nv(), kReplicated);
    if (p_.outputs_replicated)
        for (I32 o : p_.outputs) demands_[o].push_back({-1, kReplicated, false});
    std::vector<I32> in, out, best_in, best_out;
    std::vector<char> gp, best_gp;
    for (std::size_t n = nn(); n-- > 0;) {
        double best = kInf;
        Span os = outs(n);
        for (Strategy st : strategies(n)) {
            double c = node_cost(n, st, in, out, gp);
            for (std::size_t j = 0; j < os.size() && c < kInf; ++j)
                c += conversions(os[j], out[j], demands_[os[j]]);
            if (c < best) best = c, chosen_[n] = st, best_in = in, best_out = out, best_gp = gp;
        }
        if (best == kInf) throw std::invalid_argument("calm: no feasible placement for node " + std::to_string(n));
        for (std::size_t j = 0; j < os.size(); ++j) plan.value_state[os[j]] = best_out[j];
        Span is = ins(n);
        for (std::size_t i = 0; i < is.size(); ++i)
            if (is[i] >= 0) demands_[is[i]].push_back({I32(n), best_in[i], best_gp[i] != 0});
    }
    for (std::size_t v = 0; v < nv(); ++v) {
        if (produced_[v]) continue;
        double best = kInf;
        for (std::size_t k = 0; k < states_[v].size(); ++k) {
            double c = f_[v][k] + conversions(I32(v), states_[v][k], demands_[v]);
            if (c < best) best = c, plan.value_state[v] = states_[v][k];
        }
    }
}

// Two estimates of what a fan-out costs upstream (each consumer a share, or each the whole,
// the tree relaxation) lead the greedy pass to different basins; both are improved and the
// plan whose whole cost is lower is kept (the first on a tie).
Plan Solver::run() {
    index_graph();
    find_input_free();
    std::vector<std::size_t> all(nn());
    for (std::size_t n = 0; n < nn(); ++n) all[n] = n;
    Plan best;
    double best_cost = kInf;
    std::vector<Strategy> best_chosen;
    for (bool share : {true, false}) {
        share_ = share;
        Plan plan;
        init_states();
        forward();
        backward(plan);
        improve(plan);
        double cost = group_cost(all, plan);
        if (cost < best_cost) best_cost = cost, best = plan, best_chosen = chosen_;
    }
    chosen_ = best_chosen;
    collect_demands();
    emit(best);
    best.cost = best_cost;
    return best;
}

}  // namespace detail

Plan search(const Problem& p) { return detail::Solver(p).run(); }

}  // namespace bwsk::calm
