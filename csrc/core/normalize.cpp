// The normalizer (see normalize.hpp). Every application is built through reduce(), which
// is only ever given normal children, so the only possible redex is at its root: a rule
// fires there, or the application is itself normal. Store::nf memoizes both outcomes.
#include "core/normalize.hpp"

#include <string>

#include "core/abstract.hpp"
#include "core/deep.hpp"

namespace bwsk {

namespace {

constexpr Id kInProgress = kNone - 1;

class Normalizer {
public:
    Normalizer(Store& store, const RuleSet& rules, NormalizeOptions options)
        : s_(store), rules_(rules), options_(options), fired_(rules.texts().size(), 0) {}

    Id nf(Id t) {
        Id memo = s_.nf[t];
        if (memo != kNone && memo != kInProgress) return memo;
        stack_guard();
        const Node n = s_.node(t);
        Id r = t;
        if (n.kind == Kind::App) {
            Id f = nf(n.a);
            Id x = nf(n.b);
            r = f == n.a && x == n.b ? reduce(t) : apply(f, x);
        } else if (n.kind == Kind::Lam) {
            r = nf(abstract(s_, s_.str(n.a), nf(n.b)));
        }
        s_.nf[t] = r;
        return r;
    }

    std::vector<std::uint64_t>& fired() { return fired_; }

private:
    // The normal form of f x for normal f and x.
    Id apply(Id f, Id x) { return reduce(s_.app(f, x)); }

    // The normal form of the application t, whose children are normal.
    Id reduce(Id t) {
        Id memo = s_.nf[t];
        if (memo == kInProgress)
            throw TermError(
                "term has no normal form: a subterm reduces to a term containing itself");
        if (memo != kNone) return memo;
        stack_guard();
        s_.nf[t] = kInProgress;
        Id r = reduce_root(t);
        s_.nf[t] = r;
        if (s_.nf[r] == kNone) s_.nf[r] = r;
        return r;
    }

    Id reduce_root(Id t) {
        Id h = s_.head(t);
        std::uint32_t k = s_.nargs(t);
        Kind hk = s_.kind(h);
        if (static_cast<int>(hk) < kNumCombinators) {
            Id binds[kMaxRuleVars];
            for (int i : rules_.candidates(hk, k)) {
                const Rule& rule = rules_.rules()[i];
                if (!rules_.match(s_, rule, t, binds)) continue;
                count(i);
                return build(rule, rule.rhs, binds);
            }
        } else if (hk == Kind::Proj && k == 1) {
            return project(t);
        } else if (hk == Kind::Tuple && k == s_.node(h).a) {
            return unpair(t);
        }
        return t;
    }

    Id build(const Rule& rule, int p, const Id* binds) {
        const Pat& pat = rule.pats[p];
        if (pat.tag == Pat::Comb) return s_.comb(static_cast<Kind>(pat.value));
        if (pat.tag == Pat::Var) return binds[pat.value];
        Id f = build(rule, pat.fun, binds);
        Id x = build(rule, pat.arg, binds);
        return apply(f, x);
    }

    // #i/n applied to a full n-tuple is its component i.
    Id project(Id t) {
        const Node p = s_.node(s_.head(t));
        Id arg = s_.node(t).b;
        Id th = s_.head(arg);
        if (s_.kind(th) != Kind::Tuple || s_.nargs(arg) != s_.node(th).a) return t;
        if (s_.node(th).a != p.b)
            throw TermError("projection #" + std::to_string(p.a) + "/" + std::to_string(p.b) +
                            " applied to a " + std::to_string(s_.node(th).a) + "-tuple");
        Id node = arg;
        for (std::uint32_t j = p.b - 1; j > p.a; --j) node = s_.node(node).a;
        count(rules_.projection_rule());
        return s_.node(node).b;
    }

    // Surjective pairing: <#0/n y, ..., #(n-1)/n y> is y.
    Id unpair(Id t) {
        std::uint32_t n = s_.nargs(t);
        if (n == 0) return t;
        Id y = kNone;
        Id node = t;
        for (std::uint32_t j = n; j-- > 0; node = s_.node(node).a) {
            Id comp = s_.node(node).b;
            if (s_.kind(comp) != Kind::App) return t;
            const Node& pj = s_.node(s_.node(comp).a);
            if (pj.kind != Kind::Proj || pj.a != j || pj.b != n) return t;
            if (y != kNone && s_.node(comp).b != y) return t;
            y = s_.node(comp).b;
        }
        count(rules_.pairing_rule());
        return y;
    }

    void count(int rule) {
        ++fired_[rule];
        if (++steps_ > options_.max_steps)
            throw TermError("normalization gave up after " + std::to_string(options_.max_steps) +
                            " rewrites; the term may have no normal form");
    }

    Store& s_;
    const RuleSet& rules_;
    NormalizeOptions options_;
    std::vector<std::uint64_t> fired_;
    std::uint64_t steps_ = 0;
};

// An interrupted run leaves kInProgress marks; they must not look like cycles later.
void clear_in_progress(Store& s) {
    for (Id& v : s.nf)
        if (v == kInProgress) v = kNone;
}

}  // namespace

Id normalize(Store& store, Id t, std::vector<std::uint64_t>* fired, NormalizeOptions options) {
    store.check(t);
    Normalizer n(store, default_rules(), options);
    Id result = kNone;
    try {
        run_deep([&] { result = n.nf(t); }, kDeepStack, options.interrupted);
    } catch (...) {
        clear_in_progress(store);
        throw;
    }
    if (fired) *fired = n.fired();
    return result;
}

}  // namespace bwsk
