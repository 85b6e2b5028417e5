// The hash-consed term store (see term.hpp).
#include "core/term.hpp"

#include <string>

namespace bwsk {

namespace {

const char* const kKindNames[] = {"S",   "K",   "I",   "B",     "C",    "W",
                                  "prim", "ref", "app", "lam", "tuple", "proj"};

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finalizer: cheap and well spread
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

std::uint64_t node_hash(Kind k, Id a, Id b) {
    return mix((static_cast<std::uint64_t>(a) << 32 | b) ^ mix(static_cast<std::uint64_t>(k) + 1));
}

}  // namespace

const char* kind_name(Kind k) { return kKindNames[static_cast<int>(k)]; }

Kind kind_from_name(std::string_view name) {
    for (int k = 0; k <= static_cast<int>(Kind::Proj); ++k)
        if (name == kKindNames[k]) return static_cast<Kind>(k);
    throw TermError("unknown term kind '" + std::string(name) + "'");
}

Store::Store() : table_(1024, kNone) {
    no_attrs_ = intern_string("");
    for (int k = 0; k < kNumCombinators; ++k) intern(static_cast<Kind>(k), 0, 0);
}

void Store::check(Id t) const {
    if (!valid(t)) throw TermError("unknown term id " + std::to_string(t));
}

Id Store::intern_string(std::string_view s) {
    auto it = string_ids_.find(s);
    if (it != string_ids_.end()) return it->second;
    strings_.emplace_back(s);
    Id sid = static_cast<Id>(strings_.size() - 1);
    string_ids_.emplace(strings_.back(), sid);
    return sid;
}

Id Store::intern(Kind k, Id a, Id b) {
    std::size_t mask = table_.size() - 1;
    for (std::size_t i = node_hash(k, a, b) & mask;; i = (i + 1) & mask) {
        Id t = table_[i];
        if (t == kNone) {
            if (nodes_.size() >= kNone - 1) throw TermError("term store is full (2^32 nodes)");
            t = static_cast<Id>(nodes_.size());
            nodes_.push_back({a, b, k});
            bool is_app = k == Kind::App;
            head_.push_back(is_app ? head_[a] : t);
            nargs_.push_back(is_app ? nargs_[a] + 1 : 0);
            nf.push_back(kNone);
            lacks_var.push_back(kNone);
            vars_.push_back(summarize(k, a, b));
            var_rep_.push_back(!is_app            ? t
                               : !vars_[a].bloom ? var_rep_[b]
                               : !vars_[b].bloom ? var_rep_[a]
                                                 : t);
            table_[i] = t;
            if (nodes_.size() * 2 > table_.size()) grow_table();
            return t;
        }
        const Node& n = nodes_[t];
        if (n.kind == k && n.a == a && n.b == b) return t;
    }
}

Store::VarSummary Store::summarize(Kind k, Id a, Id b) const {
    if (k == Kind::Prim && b == no_attrs_) return {a, var_bit(a)};
    if (k == Kind::Lam) return {vars_[b].hi, vars_[b].bloom | kHasLam};
    if (k != Kind::App) return {0, 0};
    const VarSummary &f = vars_[a], &x = vars_[b];
    return {f.hi > x.hi ? f.hi : x.hi, f.bloom | x.bloom};
}

void Store::grow_table() {
    std::vector<Id> bigger(table_.size() * 2, kNone);
    std::size_t mask = bigger.size() - 1;
    for (Id t = 0; t < nodes_.size(); ++t) {
        const Node& n = nodes_[t];
        std::size_t i = node_hash(n.kind, n.a, n.b) & mask;
        while (bigger[i] != kNone) i = (i + 1) & mask;
        bigger[i] = t;
    }
    table_.swap(bigger);
}

Id Store::prim(std::string_view name, std::string_view attrs) {
    if (name.empty()) throw TermError("a primitive needs a name");
    return intern(Kind::Prim, intern_string(name), intern_string(attrs));
}

Id Store::ref(std::string_view name) {
    if (name.empty()) throw TermError("a reference needs a name");
    return intern(Kind::Ref, intern_string(name), 0);
}

Id Store::app(Id fun, Id arg) {
    check(fun);
    check(arg);
    const Node& h = nodes_[head_[fun]];
    if (h.kind == Kind::Tuple && nargs_[fun] == h.a) throw TermError("cannot apply a tuple");
    return intern(Kind::App, fun, arg);
}

Id Store::lam(std::string_view var, Id body) {
    if (var.empty()) throw TermError("a lambda needs a variable name");
    check(body);
    return intern(Kind::Lam, intern_string(var), body);
}

Id Store::tuple(std::uint32_t n) {
    if (n == 1) throw TermError("a tuple has 0 or at least 2 components, not 1");
    return intern(Kind::Tuple, n, 0);
}

Id Store::proj(std::uint32_t i, std::uint32_t n) {
    if (n < 2 || i >= n)
        throw TermError("projection #" + std::to_string(i) + "/" + std::to_string(n) +
                        " needs 0 <= i < n and n >= 2");
    return intern(Kind::Proj, i, n);
}

std::size_t Store::bytes() const {
    std::size_t total = nodes_.capacity() * sizeof(Node) + head_.capacity() * sizeof(Id) +
                        nargs_.capacity() * sizeof(std::uint32_t) + nf.capacity() * sizeof(Id) +
                        lacks_var.capacity() * sizeof(Id) +
                        vars_.capacity() * sizeof(VarSummary) +
                        var_rep_.capacity() * sizeof(Id) +
                        table_.capacity() * sizeof(Id);
    for (const auto& s : strings_) total += sizeof(std::string) + s.capacity();
    return total + string_ids_.size() * (sizeof(std::string_view) + sizeof(Id) + 16);
}

Store& global_store() {
    static Store* store = new Store();  // never destroyed: Terms may outlive static teardown
    return *store;
}

}  // namespace bwsk
