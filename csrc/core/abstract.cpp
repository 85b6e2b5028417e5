// Bracket abstraction (see abstract.hpp).
#include "core/abstract.hpp"

#include <string>

#include "core/deep.hpp"
#include "core/idmap.hpp"

namespace bwsk {

namespace {

class Abstractor {
public:
    Abstractor(Store& store, std::string_view var)
        : s_(store), x_(store.prim(var, "")), var_(store.string_id(var)) {}

    // [x]t, with every lambda inside t abstracted away first.
    Id abstract(Id t) {
        Done d = abs(t);
        return d.abs == kNone ? s_.app(s_.comb(Kind::K), d.plain) : d.abs;
    }

private:
    struct Done {
        Id plain;  // t without lambdas
        Id abs;    // [x]plain, or kNone when x does not occur (the caller decides on K)
    };

    Done abs(Id t) {
        if (t == x_) return {t, s_.comb(Kind::I)};
        if (s_.lacks(t, var_)) return {t, kNone};
        if (const Done* done = memo_.find(t)) return *done;
        Id rep = s_.var_rep(t);
        if (rep != t && !s_.has_lam(t) && abs(rep).abs == kNone) {  // K (K (... M)): just M
            s_.lacks_var[t] = var_;
            return {t, kNone};
        }
        stack_guard();
        Done d{t, kNone};
        const Node n = s_.node(t);
        if (n.kind == Kind::App) {
            d = abs_app(t, n.a, n.b);
        } else if (n.kind == Kind::Lam) {
            Id plain = Abstractor(s_, std::string(s_.str(n.a))).abstract(n.b);
            d = abs(plain);
        }
        memo_.insert(t, d);
        if (d.abs == kNone && d.plain == t) s_.lacks_var[t] = var_;
        return d;
    }

    Done abs_app(Id t, Id fun, Id arg) {
        Done f = abs(fun), a = abs(arg);
        Id plain = f.plain == fun && a.plain == arg ? t : s_.app(f.plain, a.plain);
        if (f.abs == kNone && a.abs == kNone) return {plain, kNone};
        if (f.abs == kNone) {
            if (a.plain == x_) return {plain, f.plain};  // eta: [x](f x) = f
            return {plain, s_.app(s_.app(s_.comb(Kind::B), f.plain), a.abs)};
        }
        if (a.abs == kNone) return {plain, s_.app(s_.app(s_.comb(Kind::C), f.abs), a.plain)};
        return {plain, s_.app(s_.app(s_.comb(Kind::S), f.abs), a.abs)};
    }

    Store& s_;
    Id x_, var_;  // the variable's node and string id
    IdMap<Done> memo_;
};

}  // namespace

Id abstract(Store& store, std::string_view var, Id body) {
    store.check(body);
    Id result = kNone;
    run_deep([&] { result = Abstractor(store, var).abstract(body); });
    return result;
}

}  // namespace bwsk
