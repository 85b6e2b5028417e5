// Sharding-state propagation: which placements a node's strategy gives its operands and
// results, and what reconciling a producer's placement with a consumer's demand costs.
#include <set>

#include "core/calm_solver.hpp"

namespace bwsk::calm::detail {

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

double Solver::wire(Coll c, std::int64_t bytes) const {
    if (c == Coll::None) return 0.0;
    double frac = double(p_.world - 1) / double(p_.world);
    return (c == Coll::AllReduce ? 2.0 : 1.0) * frac * double(bytes) + p_.alpha;
}

// An input-free activation's partial gradient is pushed back to its parameters (see
// find_input_free), so its backward all-reduce costs theirs.
double Solver::conv_cost(I32 v, I32 s, I32 t, bool gp) const {
    if (t == kPartial && s != kPartial) return kInf;  // partial sums only come from a computation
    if (kind(v) == Kind::Parameter && s != t) return kInf;  // weights are used where they live
    Conv c = convert(s, t, gp, has_grad(v));
    bool push = c.bwd == Coll::AllReduce && s == kReplicated && free_[v];
    return wire(c.fwd, p_.val_bytes[v]) + (push ? pushed_[v] : wire(c.bwd, p_.val_bytes[v]));
}

// A replicated value pays what the axis is meant to split. A partial sum is transient (it
// is reconciled a few ops on) and pays only a sliver, so equal-byte plans reconcile it
// where it is made, yet a bias may still be added to it before its reduce-scatter. A value
// split on a class other than the preferred ones it could take pays a sliver too (an
// OPT-350M layer 0 fed by hidden-split embeddings otherwise ties with a plan that moves
// the residual stream onto the tokens a block later than every other layer does).
double Solver::price(I32 v, I32 s) const {
    double per_byte = s == kReplicated ? p_.val_price[v] : s == kPartial ? 1e-3 : 0.0;
    auto preferred = [&](I32 c) { return std::find(p_.preferred.begin(), p_.preferred.end(), c) != p_.preferred.end(); };
    if (s >= 0 && !preferred(s)) {
        Span ok = span(p_.val_ok_off, p_.val_ok, std::size_t(v));
        if (std::any_of(ok.b, ok.e, preferred)) per_byte += 1e-3;
    }
    return per_byte * double(p_.val_bytes[v]);
}

// Activations no graph input reaches (position embeddings: a table looked up at fixed
// positions) are computed identically on every rank. Where a consumer leaves a partial
// gradient on one, the backward map to its parameters is the same linear map everywhere,
// so each rank pushes its partial gradient through and the parameters' gradients are
// all-reduced instead (as DDP does for every parameter anyway).
void Solver::find_input_free() {
    std::vector<char> reached(nv(), 0);
    for (std::size_t v = 0; v < nv(); ++v)
        reached[v] = kind(I32(v)) == Kind::Input && !produced_[v];
    free_.assign(nv(), 0);
    leaves_.assign(nv(), {});
    pushed_.assign(nv(), 0.0);
    for (std::size_t n = 0; n < nn(); ++n) {
        Span is = ins(n), os = outs(n);
        bool hit = false;
        std::set<I32> leaves;
        for (std::size_t i = 0; i < is.size(); ++i) {
            if (is[i] < 0) continue;
            hit = hit || reached[is[i]];
            if (kind(is[i]) == Kind::Parameter) leaves.insert(is[i]);
            leaves.insert(leaves_[is[i]].begin(), leaves_[is[i]].end());
        }
        for (std::size_t j = 0; j < os.size(); ++j) {
            I32 v = os[j];
            reached[v] = hit;
            if (hit || kind(v) != Kind::Activation) continue;
            free_[v] = 1;
            leaves_[v].assign(leaves.begin(), leaves.end());
            for (I32 q : leaves_[v]) pushed_[v] += wire(Coll::AllReduce, p_.val_bytes[q]);
        }
    }
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

// Shard every operand that carries class c; a contracted class leaves partial sums. A class
// the op mixes cannot be sharded.
bool Solver::assign_shard(std::size_t n, I32 c, std::vector<I32>& in, std::vector<I32>& out,
                          std::vector<char>& gp) const {
    if (span(p_.node_mix_off, p_.node_mix, n).has(c)) return false;
    Span is = ins(n), os = outs(n);
    bool in_has = false, out_has = false;
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

bool Solver::assign(std::size_t n, Strategy st, std::vector<I32>& in, std::vector<I32>& out,
                    std::vector<char>& gp) const {
    Span is = ins(n), os = outs(n);
    in.assign(is.size(), kReplicated);
    out.assign(os.size(), kReplicated);
    gp.assign(is.size(), 0);
    if (st.kind == 0) return true;
    if (st.kind == 1) return assign_shard(n, st.arg, in, out, gp);
    bool in_has = false;
    auto lin = static_cast<Linear>(p_.node_linear[n]);
    for (std::size_t i = 0; i < is.size(); ++i) {
        I32 v = is[i];
        if (v < 0 || kind(v) == Kind::Constant) continue;
        bool variable = kind(v) == Kind::Activation || kind(v) == Kind::Input;
        if (lin == Linear::Unary && i == 0) in[i] = kPartial, in_has = true;
        else if (lin == Linear::Multilinear && I32(i) == st.arg) in[i] = kPartial, in_has = true;
        else if (lin == Linear::Multilinear) gp[i] = has_grad(v);
        else if (lin == Linear::Additive && variable) in[i] = kPartial, in_has = true;
        // (a replicated addend, a bias, joins the partial sum on one rank: no collective)
    }
    std::fill(out.begin(), out.end(), kPartial);
    return in_has;
}

// With share_, each of v's consumers carries an equal share of what producing v cost:
// charging every consumer the whole of it counts a residual stream's upstream cost twice
// per block, so the estimate grows as 2^depth and drowns the per-block differences the
// choice rests on (full-size GPT-2 then misses Megatron-SP).
double Solver::g(I32 v, I32 t, bool gp) const {
    double share = share_ ? 1.0 / double(std::max<std::size_t>(1, consumers_[v].size())) : 1.0;
    double best = kInf;
    for (std::size_t k = 0; k < states_[v].size(); ++k)
        if (f_[v][k] < kInf) best = std::min(best, share * f_[v][k] + conv_cost(v, states_[v][k], t, gp));
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
    if (stats_on(n, st)) cost += 2.0 * wire(Coll::AllReduce, p_.node_stat_bytes[n]);
    return cost;
}

}  // namespace bwsk::calm::detail
