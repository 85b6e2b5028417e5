// Plan search for one mesh axis: a dynamic programme over placements (see calm.hpp).
//
// Forward pass: f[v][s] is the cheapest way to produce value v in placement s; a node's
// strategy (replicate, shard on a class, or compute on partial sums) fixes its operands'
// placements, and converting a producer's placement into the one a consumer needs costs
// a collective in the forward pass and its transpose in the backward pass. Fan-out is
// priced per consumer (the usual tree relaxation); the backward pass over the DAG then
// picks one placement per value against all of its consumers' demands, so every emitted
// collective belongs to one consistent plan.
#include "core/calm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

namespace bwsk::calm {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
using I32 = std::int32_t;

struct Span {
    const I32* b;
    const I32* e;
    std::size_t size() const { return static_cast<std::size_t>(e - b); }
    bool has(I32 x) const { return std::find(b, e, x) != e; }
    I32 operator[](std::size_t i) const { return b[i]; }
};

Span span(const std::vector<I32>& off, const std::vector<I32>& data, std::size_t i) {
    return {data.data() + off[i], data.data() + off[i + 1]};
}

struct Conv {
    Coll fwd = Coll::None, bwd = Coll::None;
};

// Placement s as produced -> placement t as consumed; `gp`: the consumer's gradient for a
// replicated operand is a partial sum (it saw only a shard of the computation).
Conv convert(I32 s, I32 t, bool gp, bool has_grad) {
    Conv c;
    if (s != t) {
        if (s == kPartial) c.fwd = t == kReplicated ? Coll::AllReduce : Coll::ReduceScatter;
        else if (s >= 0) c.fwd = t >= 0 ? Coll::AllToAll : Coll::AllGather;
    }
    if (!has_grad) return c;
    if (t == kReplicated && gp) c.bwd = s >= 0 ? Coll::ReduceScatter : Coll::AllReduce;
    else if (t >= 0 && s != t) c.bwd = s >= 0 ? Coll::AllToAll : Coll::AllGather;
    return c;
}

struct Strategy {
    I32 kind;  // 0 replicate, 1 shard on class `arg`, 2 partial sums (`arg`: the partial input)
    I32 arg;
};

struct Demand {
    I32 node;
    I32 state;
    bool gp;
};

class Solver {
  public:
    explicit Solver(const Problem& p) : p_(p) { validate(); }
    Plan run();

  private:
    const Problem& p_;
    std::vector<std::vector<I32>> states_;
    std::vector<std::vector<double>> f_;
    std::vector<std::vector<Demand>> demands_;
    std::vector<Strategy> chosen_;

    std::size_t nv() const { return p_.val_kind.size(); }
    std::size_t nn() const { return p_.node_linear.size(); }
    Kind kind(I32 v) const { return static_cast<Kind>(p_.val_kind[v]); }
    bool has_grad(I32 v) const { return kind(v) == Kind::Activation || kind(v) == Kind::Parameter; }
    bool carries(I32 v, I32 c) const { return span(p_.val_all_off, p_.val_all, v).has(c); }
    bool may(I32 v, I32 c) const { return span(p_.val_ok_off, p_.val_ok, v).has(c); }
    Span ins(std::size_t n) const { return span(p_.node_in_off, p_.node_in, n); }
    Span outs(std::size_t n) const { return span(p_.node_out_off, p_.node_out, n); }

    double wire(Coll c, std::int64_t bytes) const {
        if (c == Coll::None) return 0.0;
        double frac = double(p_.world - 1) / double(p_.world);
        return (c == Coll::AllReduce ? 2.0 : 1.0) * frac * double(bytes) + p_.alpha;
    }
    double conv_cost(I32 v, I32 s, I32 t, bool gp) const {
        if (t == kPartial && s != kPartial) return kInf;  // partial sums only come from a computation
        if (kind(v) == Kind::Parameter && s != t) return kInf;  // weights are used where they live
        Conv c = convert(s, t, gp, has_grad(v));
        return wire(c.fwd, p_.val_bytes[v]) + wire(c.bwd, p_.val_bytes[v]);
    }
    // Partial sums pay a sliver more, so equal-byte plans reconcile them where they are made.
    double price(I32 v, I32 s) const {
        double per_byte = (s < 0 ? p_.val_price[v] : 0.0) + (s == kPartial ? 1e-3 : 0.0);
        return per_byte * double(p_.val_bytes[v]);
    }

    void validate() const;
    void init_states();
    std::vector<Strategy> strategies(std::size_t n) const;
    bool assign(std::size_t n, Strategy st, std::vector<I32>& in, std::vector<I32>& out,
                std::vector<char>& gp) const;
    double g(I32 v, I32 t, bool gp) const;
    double node_cost(std::size_t n, Strategy st, std::vector<I32>& in, std::vector<I32>& out,
                     std::vector<char>& gp) const;
    void forward();
    void backward(Plan& plan);
    double local(std::size_t n, Strategy st, const Plan& plan) const;
    void improve(Plan& plan);
    std::vector<std::size_t> chain(std::size_t n) const;
    double chain_cost(const std::vector<std::size_t>& nodes, const Plan& plan) const;
    void set(std::size_t n, Strategy st, Plan& plan);
    void collect_demands();
    void emit(Plan& plan) const;
    std::vector<std::vector<std::pair<I32, I32>>> consumers_;  // per value: (node, input slot)
    std::vector<char> produced_;
};

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

void Solver::init_states() {
    states_.assign(nv(), {});
    f_.assign(nv(), {});
    for (std::size_t v = 0; v < nv(); ++v) {
        auto& st = states_[v];
        if (p_.val_fixed[v] != -3) st = {p_.val_fixed[v]};
        else if (kind(I32(v)) == Kind::Constant) st = {kReplicated};
        else {
            st = {kReplicated, kPartial};
            Span ok = span(p_.val_ok_off, p_.val_ok, v);
            st.insert(st.end(), ok.b, ok.e);
        }
        // Sources start free (parameters, inputs, constants); produced values start unreachable.
        f_[v].assign(st.size(), kInf);
    }
    std::vector<char> produced(nv(), 0);
    for (I32 o : p_.node_out) produced[o] = 1;
    for (std::size_t v = 0; v < nv(); ++v)
        if (!produced[v])
            for (std::size_t k = 0; k < states_[v].size(); ++k)
                f_[v][k] = states_[v][k] == kPartial ? kInf : price(I32(v), states_[v][k]);
}

std::vector<Strategy> Solver::strategies(std::size_t n) const {
    std::vector<Strategy> out{{0, 0}};
    std::set<I32> classes;
    Span in = ins(n), ot = outs(n), mix = span(p_.node_mix_off, p_.node_mix, n);
    for (Span s : {in, ot})
        for (std::size_t i = 0; i < s.size(); ++i)
            if (s[i] >= 0) {
                Span ok = span(p_.val_ok_off, p_.val_ok, s[i]);
                classes.insert(ok.b, ok.e);
            }
    for (I32 c : classes)
        if (!mix.has(c)) out.push_back({1, c});
    auto lin = static_cast<Linear>(p_.node_linear[n]);
    if (lin == Linear::Multilinear) {
        for (std::size_t i = 0; i < in.size(); ++i)
            if (in[i] >= 0 && kind(in[i]) != Kind::Constant) out.push_back({2, I32(i)});
    } else if (lin != Linear::None) {
        out.push_back({2, -1});
    }
    return out;
}

bool Solver::assign(std::size_t n, Strategy st, std::vector<I32>& in, std::vector<I32>& out,
                    std::vector<char>& gp) const {
    Span is = ins(n), os = outs(n);
    in.assign(is.size(), kReplicated);
    out.assign(os.size(), kReplicated);
    gp.assign(is.size(), 0);
    if (st.kind == 0) return true;
    bool in_has = false, out_has = false;
    if (st.kind == 1) {
        I32 c = st.arg;
        for (std::size_t i = 0; i < is.size(); ++i) {
            I32 v = is[i];
            if (v < 0) continue;
            if (carries(v, c)) {
                if (!may(v, c)) return false;
                in[i] = c;
                in_has = true;
            } else {
                gp[i] = has_grad(v);
            }
        }
        for (std::size_t j = 0; j < os.size(); ++j)
            if (carries(os[j], c)) {
                if (!may(os[j], c)) return false;
                out[j] = c;
                out_has = true;
            }
        if (!out_has) {  // the class is contracted: a linear reduction leaves partial sums
            if (!in_has) return false;
            std::fill(out.begin(), out.end(), kPartial);
        }
        return true;
    }
    auto lin = static_cast<Linear>(p_.node_linear[n]);
    for (std::size_t i = 0; i < is.size(); ++i) {
        I32 v = is[i];
        if (v < 0 || kind(v) == Kind::Constant) continue;
        bool variable = kind(v) == Kind::Activation || kind(v) == Kind::Input;
        if (lin == Linear::Unary && i == 0) in[i] = kPartial, in_has = true;
        else if (lin == Linear::Multilinear && I32(i) == st.arg) in[i] = kPartial, in_has = true;
        else if (lin == Linear::Multilinear) gp[i] = has_grad(v);
        else if (lin == Linear::Additive && variable) in[i] = kPartial, in_has = true;
    }
    std::fill(out.begin(), out.end(), kPartial);
    return in_has;
}

double Solver::g(I32 v, I32 t, bool gp) const {
    double best = kInf;
    for (std::size_t k = 0; k < states_[v].size(); ++k)
        if (f_[v][k] < kInf) best = std::min(best, f_[v][k] + conv_cost(v, states_[v][k], t, gp));
    return best;
}

double Solver::node_cost(std::size_t n, Strategy st, std::vector<I32>& in, std::vector<I32>& out,
                         std::vector<char>& gp) const {
    if (!assign(n, st, in, out, gp)) return kInf;
    Span is = ins(n), os = outs(n);
    double cost = 0.0;
    for (std::size_t i = 0; i < is.size() && cost < kInf; ++i)
        if (is[i] >= 0) cost += g(is[i], in[i], gp[i] != 0);
    for (std::size_t j = 0; j < os.size(); ++j) {
        auto& st_out = states_[os[j]];
        if (std::find(st_out.begin(), st_out.end(), out[j]) == st_out.end()) return kInf;
        cost += price(os[j], out[j]);
    }
    if (st.kind == 1 && span(p_.node_stat_off, p_.node_stat, n).has(st.arg))
        cost += 2.0 * wire(Coll::AllReduce, p_.node_stat_bytes[n]);
    return cost;
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
                for (const Demand& d : demands_[os[j]]) c += conv_cost(os[j], out[j], d.state, d.gp);
            if (c < best) best = c, chosen_[n] = st, best_in = in, best_out = out, best_gp = gp;
        }
        if (best == kInf) throw std::invalid_argument("calm: no feasible placement for node " + std::to_string(n));
        for (std::size_t j = 0; j < os.size(); ++j) plan.value_state[os[j]] = best_out[j];
        Span is = ins(n);
        for (std::size_t i = 0; i < is.size(); ++i)
            if (is[i] >= 0) demands_[is[i]].push_back({I32(n), best_in[i], best_gp[i] != 0});
    }
    std::vector<char> produced(nv(), 0);
    for (I32 o : p_.node_out) produced[o] = 1;
    for (std::size_t v = 0; v < nv(); ++v) {
        if (produced[v]) continue;
        double best = kInf;
        for (std::size_t k = 0; k < states_[v].size(); ++k) {
            double c = f_[v][k];
            for (const Demand& d : demands_[v]) c += conv_cost(I32(v), states_[v][k], d.state, d.gp);
            if (c < best) best = c, plan.value_state[v] = states_[v][k];
        }
    }
}

void Solver::emit(Plan& plan) const {
    for (std::size_t v = 0; v < nv(); ++v) {
        I32 s = plan.value_state[v];
        std::set<I32> converted;
        bool param_reduced = false;
        for (auto it = demands_[v].begin(); it != demands_[v].end(); ++it) {  // in node order
            Conv c = convert(s, it->state, it->gp, has_grad(I32(v)));
            if (c.fwd != Coll::None && converted.insert(it->state).second)
                plan.records.push_back({I32(v), it->node, Phase::Fwd, c.fwd, p_.val_bytes[v]});
            if (c.bwd == Coll::None) continue;
            bool optim = kind(I32(v)) == Kind::Parameter;
            if (optim && param_reduced) continue;  // a parameter's partial gradients sum locally first
            param_reduced = param_reduced || optim;
            plan.records.push_back({I32(v), it->node, optim ? Phase::Optim : Phase::Bwd, c.bwd, p_.val_bytes[v]});
        }
    }
    for (std::size_t n = 0; n < nn(); ++n) {
        Strategy st = chosen_[n];
        if (st.kind == 1 && span(p_.node_stat_off, p_.node_stat, n).has(st.arg)) {
            I32 v = outs(n)[0];
            plan.records.push_back({v, I32(n), Phase::Fwd, Coll::AllReduce, p_.node_stat_bytes[n]});
            plan.records.push_back({v, I32(n), Phase::Bwd, Coll::AllReduce, p_.node_stat_bytes[n]});
        }
    }
    for (const Record& r : plan.records) plan.cost += wire(r.coll, r.bytes);
}

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
    if (st.kind == 1 && span(p_.node_stat_off, p_.node_stat, n).has(st.arg))
        cost += 2.0 * wire(Coll::AllReduce, p_.node_stat_bytes[n]);
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
    consumers_.assign(nv(), {});
    produced_.assign(nv(), 0);
    for (I32 o : p_.node_out) produced_[o] = 1;
    for (std::size_t n = 0; n < nn(); ++n) {
        Span is = ins(n);
        for (std::size_t i = 0; i < is.size(); ++i)
            if (is[i] >= 0) consumers_[is[i]].push_back({I32(n), I32(i)});
    }
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

Plan Solver::run() {
    Plan plan;
    init_states();
    forward();
    backward(plan);
    improve(plan);
    emit(plan);
    return plan;
}

}  // namespace

Plan search(const Problem& p) { return Solver(p).run(); }

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
