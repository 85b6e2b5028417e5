"""The printer: minimal text, sharing as let, lambdas kept capture-free, parse(print(t)) == t."""

from __future__ import annotations

import re

import pytest

from bwsk.errors import TermError
from bwsk.lang import parse, print_term
from bwsk.lang.printer import print_records
from bwsk.term import I, K, S, app, build, lam, prim, ref, tup, tuple_ctor

f, g, x, y = prim("f"), prim("g"), prim("x"), prim("y")


@pytest.mark.parametrize(("term", "text"), [
    (app(S, app(K, f), app(K, g)), "S (K f) (K g)"),
    (app(f, g, x), "f g x"),
    (app(f, app(g, x)), "f (g x)"),
    (lam("x", app(f, x)), "\\x. f x"),
    (lam("x", lam("y", app(f, y, x))), "\\x y. f y x"),
    (app(f, lam("x", x)), "f (\\x. x)"),
    (app(lam("x", x), f), "(\\x. x) f"),
    (tup(f, app(g, x)), "<f, g x>"),
    (app(tuple_ctor(2), f), "<,> f"),
    (tuple_ctor(0), "<>"),
    (app(prim("softmax", "axis=-1"), ref("h.0.w")), "softmax[axis=-1] %h.0.w"),
])
def test_minimal_parentheses(term, text):
    assert print_term(term) == text
    assert parse(text) == term
    assert str(term) == text  # Term.__str__ uses the printer


def test_shared_subterms_are_printed_once_with_fresh_names():
    t0 = prim("t0")  # a primitive already named like the printer's first let name
    shared = app(f, t0)
    term = app(g, shared, shared)
    text = print_term(term)
    assert text.count("f t0") == 1 and "let " in text
    assert parse(text) == term


def test_sharing_under_lambdas_is_scoped_and_capture_free():
    inside = app(f, x)  # mentions x: inside \x. it is the variable, outside the free prim
    term = app(lam("x", app(g, inside, inside)), app(g, inside, inside))
    text = print_term(term)
    assert parse(text) == term
    deep = lam("x", lam("y", app(g, app(f, x), app(f, x), app(y, app(f, x)))))
    assert parse(print_term(deep)) == deep
    shadow = lam("x", app(lam("x", app(f, x)), app(f, x)))
    assert parse(print_term(shadow)) == shadow


def test_round_trip_of_a_shared_chain_without_recursion():
    # a 5,000-layer residual chain: deeper than the recursion limit, every layer shared twice
    records = [("prim", "x", ""), ("prim", "add", ""), ("prim", "f", "")]
    last = 0
    for _ in range(5_000):
        records += [("app", 2, last), ("app", 1, last), ("app", len(records) + 1,
                                                         len(records))]
        last = len(records) - 1
    h = build(records)
    text = print_term(h)
    assert text.count("let ") == 1 and text.count(" = ") == 4_999
    assert parse(text) == h


@pytest.mark.slow
def test_a_million_node_term_prints():
    n = 1_000_000  # f (f (... (f x)))
    records = [("prim", "x", ""), ("prim", "f", ""), ("app", 1, 0)]
    records += [("app", 1, k) for k in range(2, n + 1)]
    term = build(records)
    assert term.size == n + 2
    text = print_term(term)
    assert text.startswith("f (f (") and text.count("(") == n - 1


def test_print_records_matches_print_term():
    term = parse("let a = f x in g a a")
    from bwsk.term import export

    records, refs = export(term)
    assert print_records(records, refs) == print_term(term) == "let t0 = f x\nin g t0 t0"


def test_one_tuple_constructor_has_no_syntax():
    with pytest.raises(TermError, match="1-tuple"):
        print_records([("tuple", 1)], [0])


def test_identity_combinators_print_as_letters():
    assert print_term(app(S, K, K)) == "S K K"
    assert print_term(app(S, K, K).normalize()) == "I" == str(I)


@pytest.mark.parametrize("term", [prim("a.b"), prim("S"), ref("a b"), lam("in", f),
                                  prim("x y")])
def test_names_the_grammar_cannot_read_are_refused(term):
    with pytest.raises(TermError, match="cannot be written"):
        print_term(term)


@pytest.mark.parametrize(("attrs", "message"), [
    ("axis=-1,eps=0.1", "expected [axis=-1, eps=0.1]"),
    ("b=1, a=2", "expected [a=2, b=1]"),
    ("x=", "cannot be read back"),
])
def test_attribute_text_must_be_canonical(attrs, message):
    with pytest.raises(TermError, match=re.escape(message)):
        print_term(prim("op", attrs))


def test_canonical_attribute_shortcut_agrees_with_the_parser():
    from bwsk.lang.printer import _simple_canonical

    for attrs in ("axis=-1", "a=-0", "a=+1", "a=01", "eps=1e-5", "eps=1e-05", "x=1.", "x=1.0",
                  "m=S", "w=%h.0.w", "b=1, a=2", "k=inf", "k=-1e+16"):
        assert _simple_canonical(attrs) == (parse(f"p[{attrs}]").attrs == attrs), attrs
    for unreadable in ("m=in", "a=1, a=1"):
        assert not _simple_canonical(unreadable)
