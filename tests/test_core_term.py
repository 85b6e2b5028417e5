"""The term store through bwsk.term: hash-consing, accessors, build/export, errors."""

from __future__ import annotations

import itertools
import pickle
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bwsk import _core
from bwsk.errors import TermError
from bwsk.term import (
    B,
    C,
    I,
    K,
    S,
    Term,
    W,
    abstract,
    app,
    build,
    build_all,
    export,
    lam,
    prim,
    proj,
    ref,
    rules,
    store_stats,
    tup,
    tuple_ctor,
)

_fresh = itertools.count()


def fresh(stem: str = "p") -> Term:
    """A primitive no other test uses, so memoized normal forms never hide work."""
    return prim(f"{stem}_{next(_fresh)}")


def test_structurally_equal_terms_are_one_node():
    f, x = prim("f"), prim("x", "axis=-1")
    assert app(f, x) is not app(f, x)
    assert app(f, x) == app(f, x) and app(f, x).id == app(f, x).id
    assert hash(f(x, x)) == hash(app(f, x, x))
    assert prim("x") != prim("x", "axis=-1")
    assert ref("h.0.w") == ref("h.0.w") != prim("h.0.w")
    assert len({S, K, I, B, C, W}) == 6


def test_shared_subterms_count_once():
    t = fresh()
    for _ in range(100):
        t = t(t)
    assert t.size == 101
    assert t.tree_size == 2**101 - 1 if 2**101 - 1 < 2**64 else t.tree_size == 2**64 - 1


def test_accessors():
    f, x = prim("softmax", "axis=-1"), ref("w")
    t = f(x)
    assert (t.kind, t.fun, t.arg) == ("app", f, x)
    assert (f.kind, f.name, f.attrs) == ("prim", "softmax", "axis=-1")
    assert (x.kind, x.name) == ("ref", "w")
    lm = lam("y", t)
    assert (lm.kind, lm.var, lm.body) == ("lam", "y", t)
    assert (tuple_ctor(3).kind, tuple_ctor(3).arity) == ("tuple", 3)
    p = proj(1, 3)
    assert (p.kind, p.index, p.arity) == ("proj", 1, 3)
    assert [c.kind for c in (S, K, I, B, C, W)] == list("SKIBCW")
    with pytest.raises(AttributeError, match="no fun"):
        _ = f.fun


def test_str_and_repr():
    f, x = prim("f"), prim("x")
    t = lam("x", tup(f(x), ref("w"), proj(0, 2)))
    assert str(t) == "\\x. <f x, %w, #0/2>"
    assert repr(t) == "Term('\\\\x. <f x, %w, #0/2>')"
    big = f
    for _ in range(100):
        big = big(big)
    assert repr(big) == f"<Term #{big.id} app, 101 nodes>"


@pytest.mark.parametrize(("name", "attrs"), [("bad name", ""), ("f", "not canonical")])
def test_repr_of_unprintable_terms_does_not_raise(name, attrs):
    t = prim(name, attrs)
    with pytest.raises(TermError):
        str(t)
    assert repr(t) == f"<Term #{t.id} prim, 1 nodes>"
    assert repr(t(prim("x"))) == f"<Term #{t(prim('x')).id} app, 3 nodes>"


def test_build_and_export_round_trip():
    records = [("prim", "f", ""), ("ref", "w"), ("app", 0, 1), ("app", 2, 2), ("lam", "x", 3),
               ("S",), ("tuple", 2), ("proj", 0, 2), ("app", 6, 5), ("app", 8, 4)]
    terms = build_all(records)
    assert len(terms) == len(records) and terms[-1] == build(records)
    assert terms[3] == app(prim("f"), ref("w"))(app(prim("f"), ref("w")))
    out = export(terms[-1])
    assert build(out.records) == terms[-1]
    assert out.records[-1][0] == "app" and len(out.records) == 9  # proj record is unreachable
    index = {r: k for k, r in enumerate(out.records)}
    assert out.refs[index[("app", index[("prim", "f", "")], index[("ref", "w")])]] == 2
    assert out.refs[-1] == 0


@st.composite
def _record_lists(draw) -> list[tuple]:
    """Random well-formed postfix records (tuple constructors appear only as arguments)."""
    atoms = st.sampled_from([("S",), ("K",), ("I",), ("prim", "f", ""), ("prim", "g", "k=1"),
                             ("ref", "w"), ("proj", 0, 2), ("tuple", 3)])
    records = [draw(atoms)]
    tupled = [records[0][0] == "tuple"]  # spine headed by a tuple: never applied here
    for _ in range(draw(st.integers(0, 30))):
        choice, last = draw(st.integers(0, 3)), len(records) - 1
        if choice == 0:
            records.append(draw(atoms))
            tupled.append(records[-1][0] == "tuple")
        elif choice == 1:
            records.append(("lam", draw(st.sampled_from(["f", "x"])), draw(st.integers(0, last))))
            tupled.append(False)
        else:
            f = draw(st.integers(0, last))
            if not tupled[f]:
                records.append(("app", f, draw(st.integers(0, last))))
                tupled.append(False)
    return records


@settings(max_examples=200, deadline=None)
@given(_record_lists())
def test_export_then_build_is_the_identity(records):
    term = build(records)
    out = export(term)
    assert build(out.records) == term
    assert len(out.records) == term.size == len(set(out.records))
    edges = [i for r in out.records if r[0] == "app" for i in r[1:]]
    edges += [r[2] for r in out.records if r[0] == "lam"]
    assert all(i < k for k, r in enumerate(out.records) if r[0] in ("app", "lam")
               for i in (r[1:] if r[0] == "app" else r[2:]))
    assert sum(out.refs) == len(edges) and out.refs[-1] == 0


def test_pickle_round_trip():
    t = lam("x", tup(prim("f")(prim("x")), ref("w")))
    assert pickle.loads(pickle.dumps(t)) == t


@pytest.mark.parametrize(("records", "message"), [
    ([("app", 0, 0)], "record 0: refers to record 0"),
    ([("S",), ("app", 0, 5)], "record 1: refers to record 5"),
    ([("Z",)], "unknown term kind 'Z'"),
    ([("prim", "f")], "record 0: a prim record has 3 fields"),
    ([("prim", "f", "", "x")], "record 0: a prim record has 3 fields"),
    ([("app", "a", 0)], "record 0: a field has the wrong type"),
    (["S"], "record 0: expected a non-empty tuple"),
    ([], "at least one record"),
    ([("tuple", 1)], "not 1"),
    ([("proj", 2, 2)], "projection #2/2"),
    ([("tuple", 2), ("S",), ("app", 0, 1), ("app", 2, 1), ("app", 3, 1)],
     "record 4: cannot apply a tuple"),
])
def test_bad_records_are_term_errors(records, message):
    with pytest.raises(TermError, match=message):
        build(records)


def test_applying_a_full_tuple_is_an_error():
    with pytest.raises(TermError, match="cannot apply a tuple"):
        tup(S, K)(I)
    with pytest.raises(TermError, match="cannot apply a tuple"):
        tup()(I)
    assert tuple_ctor(2)(S).kind == "app"  # a partial tuple is an ordinary function


def test_unknown_ids_and_bad_names():
    with pytest.raises(TermError, match="unknown term id"):
        _core.app(0, 2**31)
    with pytest.raises(TermError, match="needs a name"):
        prim("")
    with pytest.raises(TypeError):
        app(S, "K")


def test_threads_share_the_store_safely():
    """Native calls release the GIL and take the store's lock: concurrent builders agree."""

    def work(k: int) -> list[int]:
        out = []
        for i in range(300):
            t = lam("x", prim(f"f{i % 7}")(prim("x"), ref(f"w{k}_{i}")))
            out.append(t(prim("y")).normalize().id)
        return out

    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(work, range(4)))
    assert parallel == [work(k) for k in range(4)]
    assert Term(parallel[0][0]) == prim("f0")(prim("y"), ref("w0_0"))


def test_rules_and_store_stats():
    texts = rules()
    assert texts.index("S K K -> I") < texts.index("S p (K q) -> C p q")
    assert "S (K p) (K q) -> K (p q)" in texts and len(texts) == len(set(texts))
    stats = store_stats()
    assert stats["nodes"] > 6 and stats["bytes"] > stats["nodes"] * 12


def test_abstract_is_exported_from_package():
    import bwsk

    assert bwsk.abstract is abstract and bwsk.Term is Term
