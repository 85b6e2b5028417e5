// Flat record lists in and out of the store (see dag.hpp).
#include "core/dag.hpp"

#include "core/idmap.hpp"

#include <string>

namespace bwsk {

namespace {

[[noreturn]] void bad_record(std::size_t i, const std::string& why) {
    throw TermError("record " + std::to_string(i) + ": " + why);
}

Id earlier(const std::vector<Id>& ids, std::size_t i, std::uint32_t ref) {
    if (ref >= i) bad_record(i, "refers to record " + std::to_string(ref) + ", not an earlier one");
    return ids[ref];
}

Id build_one(Store& s, const Record& r, const std::vector<Id>& ids, std::size_t i) {
    switch (r.kind) {
        case Kind::Prim: return s.prim(r.s1, r.s2);
        case Kind::Ref: return s.ref(r.s1);
        case Kind::App: return s.app(earlier(ids, i, r.a), earlier(ids, i, r.b));
        case Kind::Lam: return s.lam(r.s1, earlier(ids, i, r.a));
        case Kind::Tuple: return s.tuple(r.a);
        case Kind::Proj: return s.proj(r.a, r.b);
        default: return s.comb(r.kind);
    }
}

}  // namespace

std::vector<Id> build_records(Store& store, const std::vector<Record>& records) {
    std::vector<Id> ids;
    ids.reserve(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        try {
            ids.push_back(build_one(store, records[i], ids, i));
        } catch (const TermError& e) {
            std::string what = e.what();
            if (what.rfind("record ", 0) == 0) throw;
            bad_record(i, what);
        }
    }
    return ids;
}

std::vector<Id> reachable(const Store& store, Id root) {
    store.check(root);
    std::vector<std::uint64_t> seen(root / 64 + 1, 0);
    auto mark = [&](Id t) {
        std::uint64_t bit = std::uint64_t(1) << (t % 64);
        if (seen[t / 64] & bit) return false;
        seen[t / 64] |= bit;
        return true;
    };
    std::vector<Id> todo{root};
    mark(root);
    std::size_t count = 1;
    while (!todo.empty()) {
        const Node& n = store.node(todo.back());
        todo.pop_back();
        if (n.kind == Kind::App && mark(n.a)) todo.push_back(n.a), ++count;
        if ((n.kind == Kind::App || n.kind == Kind::Lam) && mark(n.b)) todo.push_back(n.b), ++count;
    }
    std::vector<Id> out;
    out.reserve(count);
    for (std::size_t w = 0; w < seen.size(); ++w)
        for (std::uint64_t bits = seen[w]; bits; bits &= bits - 1)
            out.push_back(static_cast<Id>(w * 64 + __builtin_ctzll(bits)));
    return out;
}

Record node_record(const Store& store, Id t) {
    store.check(t);
    const Node& n = store.node(t);
    Record r;
    r.kind = n.kind;
    switch (n.kind) {
        case Kind::Prim: r.s1 = store.str(n.a), r.s2 = store.str(n.b); break;
        case Kind::Ref: r.s1 = store.str(n.a); break;
        case Kind::Lam: r.s1 = store.str(n.a), r.a = n.b; break;
        case Kind::App: case Kind::Tuple: case Kind::Proj: r.a = n.a, r.b = n.b; break;
        default: break;
    }
    return r;
}

Exported export_dag(const Store& store, Id root) {
    std::vector<Id> ids = reachable(store, root);
    IdMap<std::uint32_t> index(ids.size());
    Exported out;
    out.records.reserve(ids.size());
    out.refs.assign(ids.size(), 0);
    for (Id t : ids) {
        Record r = node_record(store, t);
        Kind k = r.kind;
        if (k == Kind::App) r.a = *index.find(r.a), ++out.refs[r.a];
        if (k == Kind::App) r.b = *index.find(r.b), ++out.refs[r.b];
        if (k == Kind::Lam) r.a = *index.find(r.a), ++out.refs[r.a];
        index.insert(t, static_cast<std::uint32_t>(out.records.size()));
        out.records.push_back(std::move(r));
    }
    return out;
}

std::uint64_t tree_size(const Store& store, Id root) {
    std::vector<Id> ids = reachable(store, root);
    IdMap<std::uint64_t> size(ids.size());
    constexpr std::uint64_t kMax = ~std::uint64_t(0);
    auto add = [](std::uint64_t x, std::uint64_t y) { return x > kMax - y ? kMax : x + y; };
    for (Id t : ids) {
        const Node& n = store.node(t);
        std::uint64_t sz = 1;
        if (n.kind == Kind::App) sz = add(sz, add(*size.find(n.a), *size.find(n.b)));
        if (n.kind == Kind::Lam) sz = add(sz, *size.find(n.b));
        size.insert(t, sz);
    }
    return *size.find(root);
}

}  // namespace bwsk
