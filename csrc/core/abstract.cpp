// Bracket abstraction (see abstract.hpp).
#include "core/abstract.hpp"

#include <unordered_map>

#include "core/deep.hpp"

namespace bwsk {

namespace {

class Abstractor {
public:
    Abstractor(Store& store, Id var) : s_(store), x_(var) {}

    // [x]t, or kNone when x does not occur in t (the caller then decides on K t).
    Id abs(Id t) {
        if (t == x_) return s_.comb(Kind::I);
        auto it = memo_.find(t);
        if (it != memo_.end()) return it->second;
        stack_guard();
        Id r = kNone;
        const Node n = s_.node(t);
        if (n.kind == Kind::App) {
            r = abs_app(n.a, n.b);
        } else if (n.kind == Kind::Lam) {
            r = abs(abstract_one(s_, n.a, n.b));
        }
        memo_.emplace(t, r);
        return r;
    }

    static Id abstract_one(Store& s, Id var_sid, Id body) {
        Abstractor inner(s, s.prim(s.str(var_sid), ""));
        Id r = inner.abs(body);
        return r == kNone ? s.app(s.comb(Kind::K), body) : r;
    }

private:
    Id abs_app(Id fun, Id arg) {
        Id f = abs(fun), a = abs(arg);
        if (f == kNone && a == kNone) return kNone;
        if (f == kNone) {
            if (arg == x_) return fun;  // eta: [x](f x) = f
            return s_.app(s_.app(s_.comb(Kind::B), fun), a);
        }
        if (a == kNone) return s_.app(s_.app(s_.comb(Kind::C), f), arg);
        return s_.app(s_.app(s_.comb(Kind::S), f), a);
    }

    Store& s_;
    Id x_;
    std::unordered_map<Id, Id> memo_;
};

}  // namespace

Id abstract(Store& store, std::string_view var, Id body) {
    store.check(body);
    Id var_node = store.prim(var, "");
    Id result = kNone;
    run_deep([&] {
        Abstractor a(store, var_node);
        Id r = a.abs(body);
        result = r == kNone ? store.app(store.comb(Kind::K), body) : r;
    });
    return result;
}

}  // namespace bwsk
