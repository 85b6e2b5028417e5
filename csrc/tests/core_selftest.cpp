// Native driver for the sanitizer job (tests/test_asan.py): exercises the store, the rule
// reader, abstraction, the normalizer, deep terms and every error path under ASan/UBSan.
// Prints "core_selftest: N checks passed" and exits 0, or names the failed check and exits 1.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/abstract.hpp"
#include "core/dag.hpp"
#include "core/deep.hpp"
#include "core/normalize.hpp"
#include "core/rules.hpp"
#include "core/term.hpp"

using namespace bwsk;

namespace {

int g_checks = 0;

void check(bool ok, const char* what, int line) {
    ++g_checks;
    if (ok) return;
    std::fprintf(stderr, "core_selftest: FAILED line %d: %s\n", line, what);
    std::exit(1);
}
#define CHECK(cond) check((cond), #cond, __LINE__)

// True when fn throws a TermError whose message contains `needle`.
bool throws(const std::function<void()>& fn, const std::string& needle) {
    try {
        fn();
    } catch (const TermError& e) {
        return std::string(e.what()).find(needle) != std::string::npos;
    }
    return false;
}

Id ap(Store& s, Id f, Id x) { return s.app(f, x); }
Id ap(Store& s, Id f, Id x, Id y) { return s.app(s.app(f, x), y); }

void test_store(Store& s) {
    Id f = s.prim("f", ""), g = s.prim("f", "");
    CHECK(f == g);
    CHECK(s.prim("f", "axis=1") != f);
    CHECK(ap(s, f, f) == ap(s, f, f));
    CHECK(s.nargs(ap(s, f, f, f)) == 2 && s.head(ap(s, f, f, f)) == f);
    Id pair = ap(s, s.tuple(2), f, g);
    CHECK(throws([&] { s.app(pair, f); }, "cannot apply a tuple"));
    CHECK(throws([&] { s.app(s.tuple(0), f); }, "cannot apply a tuple"));
    CHECK(throws([&] { s.tuple(1); }, "tuple"));
    CHECK(throws([&] { s.proj(2, 2); }, "projection"));
    CHECK(throws([&] { s.app(f, 123456789); }, "unknown term id"));
    CHECK(throws([&] { s.prim("", ""); }, "name"));
}

void test_rules() {
    RuleSet rs({"S (K p) (K q) -> K (p q)", "W f x -> f x x"});
    CHECK(rs.rules().size() == 2 && rs.rules()[0].arity == 2 && rs.rules()[1].num_vars == 2);
    CHECK(rs.candidates(Kind::W, 2).size() == 1 && rs.candidates(Kind::W, 1).empty());
    CHECK(throws([] { RuleSet({"S p -> q"}); }, "not bound"));
    CHECK(throws([] { RuleSet({"S p q"}); }, "expected '->'"));
    CHECK(throws([] { RuleSet({"p q -> q"}); }, "combinator"));
    CHECK(throws([] { RuleSet({"S (p -> p"}); }, "expected ')'"));
    CHECK(default_rules().texts().size() == default_rule_texts().size() + 2);
}

Id nf(Store& s, Id t) { return normalize(s, t); }

void test_normalize(Store& s) {
    Id S = s.comb(Kind::S), K = s.comb(Kind::K), I = s.comb(Kind::I), B = s.comb(Kind::B);
    Id C = s.comb(Kind::C), W = s.comb(Kind::W);
    Id p = s.prim("p", ""), q = s.prim("q", ""), x = s.prim("x", "");
    CHECK(nf(s, ap(s, S, K, K)) == I);
    CHECK(nf(s, ap(s, S, ap(s, K, p), ap(s, K, q))) == ap(s, K, ap(s, p, q)));
    CHECK(nf(s, ap(s, S, ap(s, K, p), I)) == p);
    CHECK(nf(s, ap(s, S, ap(s, K, p), q)) == ap(s, B, p, q));
    CHECK(nf(s, ap(s, S, p, ap(s, K, q))) == ap(s, C, p, q));
    CHECK(nf(s, ap(s, W, K)) == I);
    CHECK(nf(s, ap(s, C, ap(s, C, p))) == p);
    CHECK(nf(s, ap(s, ap(s, S, p, q), x)) == ap(s, p, x, ap(s, q, x)));
    Id triple = ap(s, ap(s, s.tuple(3), p, q), x);
    CHECK(nf(s, ap(s, s.proj(1, 3), triple)) == q);
    CHECK(throws([&] { nf(s, ap(s, s.proj(0, 2), triple)); }, "3-tuple"));
    Id pairing = ap(s, s.tuple(2), ap(s, s.proj(0, 2), x), ap(s, s.proj(1, 2), x));
    std::vector<std::uint64_t> fired;
    CHECK(normalize(s, pairing, &fired) == x && fired.back() == 1);
    Id r = nf(s, ap(s, S, ap(s, S, p, q), W));
    CHECK(nf(s, r) == r);
    Id omega = ap(s, ap(s, S, I, I), ap(s, S, I, I));
    CHECK(throws([&] { nf(s, omega); }, "no normal form"));
    CHECK(throws([&] { nf(s, omega); }, "no normal form"));  // no stale in-progress marks
    Id eta = s.lam("x", ap(s, p, x));
    CHECK(nf(s, eta) == p);
    Id sii = ap(s, S, I, I);
    NormalizeOptions few;
    few.max_steps = 3;
    CHECK(throws([&] { normalize(s, ap(s, sii, ap(s, sii, p)), nullptr, few); }, "gave up"));
}

// two two two two two g y, with Church numeral two: 2^65536 applications of g, so only an
// interruption (or the step limit) ends it.
void test_interrupt(Store& s) {
    Id f = s.prim("f", ""), x = s.prim("x", "");
    Id two = s.lam("f", s.lam("x", ap(s, f, ap(s, f, x))));
    Id twos = ap(s, ap(s, two, two, two), two, two);
    Id t = ap(s, twos, s.prim("g", ""), s.prim("y", ""));
    NormalizeOptions options;
    options.max_steps = 50'000'000;
    int polls = 0;
    options.interrupted = [&] { return ++polls == 2; };
    bool stopped = false;
    try {
        normalize(s, t, nullptr, options);
    } catch (const Interrupted&) {
        stopped = true;
    }
    CHECK(stopped && polls == 2);
    CHECK(nf(s, ap(s, two, f, x)) == ap(s, f, ap(s, f, x)));  // the store is still usable
}

void test_abstract(Store& s) {
    Id f = s.prim("f", ""), x = s.prim("x", ""), y = s.prim("y", "");
    CHECK(abstract(s, "x", x) == s.comb(Kind::I));
    CHECK(abstract(s, "x", ap(s, f, x)) == f);
    CHECK(abstract(s, "x", y) == ap(s, s.comb(Kind::K), y));
    CHECK(abstract(s, "x", ap(s, x, y)) == ap(s, s.comb(Kind::C), s.comb(Kind::I), y));
    Id inner = s.lam("x", ap(s, f, x));  // \x. f x, abstracted before the outer x
    CHECK(abstract(s, "x", inner) == ap(s, s.comb(Kind::K), f));
    Id closed = ap(s, f, y);  // remembered as lacking x after the first abstraction
    CHECK(abstract(s, "x", ap(s, x, closed)) == ap(s, s.comb(Kind::C), s.comb(Kind::I), closed));
    CHECK(abstract(s, "x", ap(s, closed, x)) == closed);
    CHECK(abstract(s, "y", closed) == f);  // another variable still walks into it
}

void test_dag(Store& s) {
    std::vector<Record> recs(4);
    recs[0].kind = Kind::Prim, recs[0].s1 = "f";
    recs[1].kind = Kind::App, recs[1].a = 0, recs[1].b = 0;
    recs[2].kind = Kind::App, recs[2].a = 1, recs[2].b = 1;
    recs[3].kind = Kind::Lam, recs[3].s1 = "f", recs[3].a = 2;
    std::vector<Id> ids = build_records(s, recs);
    CHECK(ids.size() == 4 && tree_size(s, ids[2]) == 7 && reachable(s, ids[2]).size() == 3);
    Exported e = export_dag(s, ids[3]);
    CHECK(e.records.size() == 4 && e.refs[0] == 2 && e.refs[1] == 2 && e.refs[3] == 0);
    CHECK(build_records(s, e.records).back() == ids[3]);
    recs[1].b = 1;
    CHECK(throws([&] { build_records(s, recs); }, "record 1: refers to record 1"));
    Id t = s.prim("g", "");
    for (int i = 0; i < 70; ++i) t = ap(s, t, t);
    CHECK(tree_size(s, t) == ~std::uint64_t(0));
}

void test_deep(Store& s) {
    Id f = s.prim("f", ""), t = s.prim("x", "");
    for (int i = 0; i < 100000; ++i) t = ap(s, f, t);
    CHECK(nf(s, t) == t);
    CHECK(nf(s, abstract(s, "x", t)) != t);
    Id left = s.comb(Kind::I);
    for (int i = 0; i < 100000; ++i) left = ap(s, left, s.comb(Kind::I));
    CHECK(nf(s, left) == s.comb(Kind::I));
    std::function<void(int)> dive = [&](int depth) {
        stack_guard();
        if (depth > 0) dive(depth + 1);  // never returns normally: the guard must fire
    };
    CHECK(throws([&] { run_deep([&] { dive(1); }, std::size_t(8) << 20); }, "term too deep"));
}

}  // namespace

int main() {
    Store s;
    test_store(s);
    test_rules();
    test_normalize(s);
    test_interrupt(s);
    test_abstract(s);
    test_dag(s);
    test_deep(s);
    std::printf("core_selftest: %d checks passed\n", g_checks);
    return 0;
}
