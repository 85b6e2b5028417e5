"""The normalizer and bracket abstraction: every rule, idempotency, deep and shared terms."""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading

import pytest

from bwsk import _core
from bwsk.errors import TermError
from bwsk.term import B, C, I, K, S, Term, W, abstract, build, lam, prim, proj, tup

_fresh = itertools.count()


def fresh(n: int) -> list[Term]:
    """Primitives no other test uses, so memoized normal forms never hide rule firings."""
    k = next(_fresh)
    return [prim(f"v{k}_{i}") for i in range(n)]


# (rule text, left side, expected normal form) over fresh primitives a, b, c
RULE_CASES = [
    ("I x -> x", lambda a, b, c: I(a), lambda a, b, c: a),
    ("K x y -> x", lambda a, b, c: K(a, b), lambda a, b, c: a),
    ("S f g x -> f x (g x)", lambda a, b, c: S(a, b, c), lambda a, b, c: a(c, b(c))),
    ("B f g x -> f (g x)", lambda a, b, c: B(a, b, c), lambda a, b, c: a(b(c))),
    ("C f x y -> f y x", lambda a, b, c: C(a, b, c), lambda a, b, c: a(c, b)),
    ("W f x -> f x x", lambda a, b, c: W(a, b), lambda a, b, c: a(b, b)),
    ("S K K -> I", lambda a, b, c: S(K, K), lambda a, b, c: I),
    ("S (K p) (K q) -> K (p q)", lambda a, b, c: S(K(a), K(b)), lambda a, b, c: K(a(b))),
    ("S (K p) I -> p", lambda a, b, c: S(K(a), I), lambda a, b, c: a),
    ("S (K p) q -> B p q", lambda a, b, c: S(K(a), b), lambda a, b, c: B(a, b)),
    ("S p (K q) -> C p q", lambda a, b, c: S(a, K(b)), lambda a, b, c: C(a, b)),
    ("B p I -> p", lambda a, b, c: B(a, I), lambda a, b, c: a),
    ("B I p -> p", lambda a, b, c: B(I, a), lambda a, b, c: a),
    ("W K -> I", lambda a, b, c: W(K), lambda a, b, c: I),
    ("C (C p) -> p", lambda a, b, c: C(C(a)), lambda a, b, c: a),
    ("#i/n (<,..,> a0 .. a(n-1)) -> ai", lambda a, b, c: proj(1, 3)(tup(a, b, c)),
     lambda a, b, c: b),
    ("<#0/n x, .., #(n-1)/n x> -> x", lambda a, b, c: tup(proj(0, 2)(a), proj(1, 2)(a)),
     lambda a, b, c: a),
]


@pytest.mark.parametrize(("rule", "lhs", "rhs"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_each_rule_fires_alone(rule, lhs, rhs):
    a, b, c = fresh(3)
    result, stats = lhs(a, b, c).normalize_with_stats()
    assert result == rhs(a, b, c)
    if rule in ("S K K -> I", "W K -> I"):  # closed terms: memoized by an earlier call
        stats = stats or {rule: 1}
    assert stats == {rule: 1}


def test_every_rule_is_covered():
    assert sorted(c[0] for c in RULE_CASES) == sorted(_core.rules())


def test_s_k_k_comes_before_the_c_rule():
    assert S(K, K).normalize() == I  # S p (K q) would give C K K


def test_abstraction_examples():
    f, x = prim("f"), prim("x")
    assert lam("x", f(x)).normalize() == f
    assert lam("x", x).normalize() == I
    assert abstract("x", f(x)) == f and abstract("x", x) == I
    assert abstract("x", f) == K(f)
    g = prim("g")
    assert abstract("x", f(g(x))) == B(f, g)
    assert abstract("x", f(x, g)) == C(f, g)
    assert abstract("x", f(x, x)) == S(f, I)
    assert lam("x", lam("y", prim("y")(x))).normalize() == C(I)  # \x y. y x
    assert lam("x", lam("y", x)).normalize() == K  # \x y. x


def test_many_lambdas_over_one_closed_subterm():
    f, g, c = fresh(3)
    closed = c
    for _ in range(2000):
        closed = f(closed, closed)
    x = prim("x")
    for _ in range(3):
        assert lam("x", g(x, closed)).normalize() == C(g, closed)
        assert lam("x", closed(x)).normalize() == closed
        assert lam("x", g(closed)).normalize() == K(g(closed))


def test_abstraction_then_application_is_beta():
    f, g, a = fresh(3)
    x = prim("x")
    body = tup(f(x, g(x)), x, g)
    assert lam("x", body)(a).normalize() == tup(f(a, g(a)), a, g)


def _random_term(rng: random.Random, atoms: list[Term], size: int) -> Term:
    if size <= 1:
        return rng.choice(atoms)
    left = rng.randint(1, size - 1)
    return _random_term(rng, atoms, left)(_random_term(rng, atoms, size - left))


def test_normalization_is_idempotent_on_random_terms():
    rng = random.Random(7)
    atoms = [S, K, I, B, C, W, *fresh(3)]
    normalized = 0
    for _ in range(300):
        t = _random_term(rng, atoms, rng.randint(1, 14))
        try:
            n = Term(_core.normalize(t.id, 20_000))
        except TermError as exc:  # untyped terms may have no normal form
            assert "no normal form" in str(exc)
            continue
        normalized += 1
        assert n.normalize() == n
        assert n.normalize_with_stats()[1] == {}
    assert normalized > 200


def test_terms_without_normal_form_are_term_errors():
    sii = S(I, I)
    with pytest.raises(TermError, match="no normal form"):
        sii(sii).normalize()
    (q,) = fresh(1)
    with pytest.raises(TermError, match="gave up after 5 rewrites"):
        _core.normalize(sii(sii(sii(q))).id, 5)


class _Stop(Exception):
    pass


def test_ctrl_c_interrupts_a_long_normalization():
    """Church 2 applied to itself: 2^65536 steps, so only the signal can end it early."""
    f, x = prim("f"), prim("x")
    two = lam("f", lam("x", f(f(x))))
    term = two(two, two, two, two, *fresh(2))

    def stop(*_):
        raise _Stop

    previous = signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(_Stop) as stopped:
            _core.normalize(term.id, 1_000_000)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert stopped.value.__context__ is None  # raised inside the call, not after a TermError
    assert two(f, x).normalize() == f(f(x))


def test_projection_of_wrong_arity_is_an_error():
    a, b, c = fresh(3)
    with pytest.raises(TermError, match="projection #0/2 applied to a 3-tuple"):
        proj(0, 2)(tup(a, b, c)).normalize()


def test_applying_a_tuple_produced_by_reduction_is_an_error():
    a, b = fresh(2)
    with pytest.raises(TermError, match="cannot apply a tuple"):
        K(tup(a, b), a, b).normalize()


def _nested(depth: int, head: str = "f") -> list[tuple]:
    records = [("prim", head, ""), ("prim", "x", "")]
    records += [("app", 0, k + 1) for k in range(depth)]
    return records


def test_deep_nesting_normalizes_without_crashing():
    t = build(_nested(100_000))
    assert t.size == 100_002 and t.normalize() == t
    a = abstract("x", t)
    assert a.normalize().size == a.size  # B f (B f ... f): already normal
    left = build([("I",)] + [("app", k, 0) for k in range(100_000)])
    assert left.normalize() == I
    assert build([*_nested(100_000), ("lam", "x", 100_001)])(prim("y")).normalize().size == 100_002


def _residual_chain(layers: int) -> list[tuple]:
    """\\x. h_n with h_{k+1} = add h_k (f_k h_k): every layer uses h_k twice."""
    records = [("prim", "add", ""), ("prim", "x", "")]
    h = 1
    for k in range(layers):
        records += [("prim", f"f{k}", ""), ("app", len(records), h), ("app", 0, h)]
        records.append(("app", len(records) - 1, len(records) - 2))
        h = len(records) - 1
    return [*records, ("lam", "x", h)]


@pytest.mark.slow
def test_shared_residual_chain_normalizes_in_dag_time():
    t = build(_residual_chain(200_000))
    assert t.tree_size == 2**64 - 1  # the unshared tree is astronomically large
    n, stats = t.normalize_with_stats()
    assert stats == {}  # abstraction already yields the optimized form S (B add h) (B f h)
    assert n.size == 1_200_001
    assert n.normalize() == n


def test_small_residual_chain_applies_correctly():
    n = build(_residual_chain(3)).normalize()
    f0, f1, f2, add, y = (prim(s) for s in ("f0", "f1", "f2", "add", "y"))
    h1 = add(y, f0(y))
    h2 = add(h1, f1(h1))
    assert n(y).normalize() == add(h2, f2(h2))


def _lambdas(names: list[str], body: Term) -> Term:
    for name in reversed(names):
        body = lam(name, body)
    return body


def _expected_nested(n: int, f: Term) -> Term:
    """The normal form of ``\\x0 .. x(n-1). f x0 x(n-1)``: (B K)^(n-2) applied to f."""
    result = f
    for _ in range(n - 2):
        result = B(K, result)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("names_first", [False, True])
def test_100k_nested_lambdas_normalize(names_first):
    """Abstracting each lambda by re-walking the body took hours; with the variables
    interned before the body, their string ids do not bound the body's."""
    n = 100_000
    names = [f"nest{int(names_first)}_{i}" for i in range(n)]
    if names_first:
        for name in names:
            prim(name)
    f = prim(f"nest{int(names_first)}_f")
    nested = _lambdas(names, f(prim(names[0]), prim(names[-1])))
    assert nested.normalize() == _expected_nested(n, f)


def test_nested_lambdas_normalize_in_near_linear_time():
    n = 20_000  # the quadratic abstraction needed ~50 s here
    names = [f"early{i}" for i in range(n)]
    for name in names:
        prim(name)
    g = prim("early_g")
    nested = _lambdas(names, g(prim(names[0]), prim(names[-1])))
    assert nested.normalize() == _expected_nested(n, g)
