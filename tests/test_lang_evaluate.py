"""The evaluator: terms applied to Python values, and how primitives get their arity."""

from __future__ import annotations

import operator

import pytest

from bwsk.errors import TermError
from bwsk.evaluate import Prim, evaluate
from bwsk.lang import parse

VALUES = {"add": operator.add, "neg": operator.neg, "sub": operator.sub, "c": 7, "%w": 3,
          "scale": lambda x, k=1: x * k, "sum3": Prim(lambda *xs: sum(xs), 3),
          "zeros": lambda n=0: [0] * n}


@pytest.mark.parametrize(("text", "args", "value"), [
    ("S K K", (5,), 5),
    ("\\x y. sub y x", (1, 10), 9),
    ("C sub", (1, 10), 9),
    ("W add", (4,), 8),
    ("B neg (add c)", (1,), -8),
    ("\\p. sub (#0/2 p) (#1/2 p)", ((3, 4),), -1),
    ("\\x. <x, neg x>", (2,), (2, -2)),
    ("<,,> c %w", (1,), (7, 3, 1)),
    ("<>", (), ()),
    ("scale[k=3]", (2,), 6),
    ("sum3", (1, 2, 3), 6),
    ("zeros[n=2]", (), [0, 0]),
    ("let y = neg x in \\x. y", (1,), None),
])
def test_values(text, args, value):
    term = parse(text)
    if value is None:
        with pytest.raises(TermError, match="no value given for"):
            evaluate(term, VALUES, *args)
        return
    assert evaluate(term, VALUES, *args) == value
    assert evaluate(term.normalize(), VALUES, *args) == value


def test_lambda_bodies_are_evaluated_per_call_and_shared_parts_once():
    calls = []

    def expensive(x):
        calls.append(x)
        return x * 2

    term = parse("\\x. add (f c) (add x (f c))")
    f = evaluate(term, {**VALUES, "f": expensive})
    assert (f(1), f(2)) == (29, 30)
    assert calls == [7]  # f c does not depend on x: computed once, not per call


def test_projection_checks_arity():
    with pytest.raises(TermError, match="#0/3"):
        evaluate(parse("#0/3"), VALUES, (1, 2))


def test_arity_of_a_variadic_callable_needs_prim():
    with pytest.raises(TermError, match="Prim"):
        evaluate(parse("max"), {"max": max}, 1)


SCOPED = {**VALUES, "%h.0.w": 10, "%h.1.w": 20, "%h.1.in.w": 300}


@pytest.mark.parametrize(("text", "args", "value"), [
    ('scope[prefix="h.0"] (\\x. add x %w)', (1,), 11),
    ('\\x. <scope[prefix="h.0"] (add %w) x, scope[prefix="h.1"] (add %w) x, %w>', (1,),
     (11, 21, 3)),
    ('scope[prefix="h"] (scope[prefix="1.in"] %w)', (), 300),
])
def test_scope_reads_relative_references_under_its_prefix(text, args, value):
    term = parse(text)
    assert evaluate(term, SCOPED, *args) == value
    assert evaluate(term.normalize(), SCOPED, *args) == value


@pytest.mark.parametrize("text", ['\\x. scope[prefix="h.0"] x', "scope[prefix=3] %w",
                                  'B scope[prefix="h.0"] neg'])
def test_scope_needs_a_closed_term_and_a_string_prefix(text):
    with pytest.raises(TermError, match="scope"):
        evaluate(parse(text), SCOPED, 1)
