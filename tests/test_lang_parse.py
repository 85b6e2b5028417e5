"""The parser: syntax, scoping, canonical attributes, and clear errors on bad input."""

from __future__ import annotations

import pytest

from bwsk.errors import TermError, TermSyntaxError
from bwsk.lang import parse, parse_file, parse_records
from bwsk.term import I, K, S, app, build, lam, prim, proj, ref, tup, tuple_ctor


def test_atoms_and_application():
    f, g = prim("f"), prim("g")
    assert parse("S (K f) (K g)") == app(S, app(K, f), app(K, g))
    assert parse("f g I -- a comment") == app(f, g, I)
    assert parse("%h.0.attn.c_attn.weight") == ref("h.0.attn.c_attn.weight")
    assert parse("#1/3") == proj(1, 3)
    assert parse("<,,>") == tuple_ctor(3) and parse("<>") == tuple_ctor(0)
    assert parse("<f, g I>") == tup(f, app(g, I))
    assert parse("onnx::Relu x'") == app(prim("onnx::Relu"), prim("x'"))


def test_examples_of_the_language_doc():
    for text in ("matmul[w=%h0.attn.c_attn]", "softmax[axis=-1]", "layernorm[eps=1e-5]",
                 "<,> a b", "\\x1 x2. <x1, x2>", "λx. x"):
        parse(text)


def test_lambda_and_let_scoping():
    f, x = prim("f"), prim("x")
    assert parse("\\x. f x") == lam("x", app(f, x))
    assert parse("\\x y. f") == lam("x", lam("y", f))
    # a free name is a primitive; a bound one is the variable
    assert parse("(\\x. f x) x") == app(lam("x", app(f, x)), x)
    # let groups are recursive scopes in any order; bindings are shared, not copied
    assert parse("let a = f b; b = g in a b") == app(f, prim("g"), prim("g"))


def test_let_cannot_capture_through_a_lambda():
    # y denotes the free x; the binder is renamed so the core's by-name binding cannot catch it
    term = parse("let y = x in \\x. y")
    assert term.kind == "lam" and term.var != "x" and term.body == prim("x")
    assert term.normalize() == app(K, prim("x"))
    assert parse("\\x. \\x. x").normalize() == app(K, I)  # inner binder shadows


def test_canonical_attributes_make_equal_nodes():
    a = parse('op[b=[1, 2.50], a="q\\"t", c=%w, d=-0, e=1e3, f=S]')
    assert a.attrs == 'a="q\\"t", b=[1, 2.5], c=%w, d=0, e=1000.0, f=S'
    assert parse(f"op[{a.attrs}]") == a
    assert parse("f[]") == prim("f")
    assert parse("f[a=1e999]").attrs == 'a="inf"'  # as bwsk.lower writes non-finite floats


@pytest.mark.parametrize(("text", "message", "column"), [
    ("f (g x", "unexpected end of input; expected ')'", 7),
    ("f )", "unexpected ')'", 3),
    ("f $ g", "unexpected character '$'", 3),
    ("let a = in b", "unexpected 'in'", 9),
    ("\\S. x", "unexpected 'S'", 2),
    ("let a = f; a = g in a", "a is bound twice", 12),
    ("f[a=1, a=2]", "attribute a given twice", 8),
    ('f[s="\\q"]', "bad escape", 5),
    ("#2/2 x", "index must be in 0..1", 2),
    ("<a, b> c", "cannot apply a tuple", 8),
    ("", "empty term", 1),
    ("  -- only a comment\n", "empty term", 1),
])
def test_syntax_errors_have_position_and_caret(text, message, column):
    with pytest.raises(TermSyntaxError) as info:
        parse(text, source="t.bwsk")
    err = info.value
    assert message in err.message
    assert err.source == "t.bwsk" and err.column == column
    rendered = str(err).splitlines()
    assert rendered[0].startswith(f"t.bwsk:{err.line}:{column}: ")
    if err.line_text:
        assert rendered[2].index("^") - 2 == column - 1


def test_errors_on_later_lines_point_there():
    with pytest.raises(TermSyntaxError) as info:
        parse("let a = f\n    b = g\nin a")
    assert (info.value.line, info.value.column) == (2, 7)
    assert info.value.line_text == "    b = g"


@pytest.mark.parametrize(("text", "cycle"), [
    ("let a = f a in a", "a -> a"),
    ("let a = b; b = a in c", "b -> a -> b"),
    ("let a = g b; b = h c; c = a in f", "-> "),
])
def test_cyclic_let_is_an_error_naming_the_cycle(text, cycle):
    with pytest.raises(TermError, match="cyclic let") as info:
        parse(text)
    assert cycle in str(info.value)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bad.bwsk"
    path.write_bytes(b"f x\ng \xff y\n")
    with pytest.raises(TermSyntaxError) as info:
        parse_file(path)
    assert "not valid UTF-8" in str(info.value)
    assert (info.value.line, info.value.column) == (2, 3)
    assert str(path) in str(info.value)


def test_records_are_postfix_with_the_term_last():
    records = parse_records("let a = f b; b = g in a")
    assert records[-1][0] == "app"
    for i, record in enumerate(records):
        if record[0] == "app":
            assert record[1] < i and record[2] < i
    assert build(records) == parse("f g")


@pytest.mark.slow
def test_100k_deep_nesting_parses_and_normalizes():
    depth = 100_000
    term = parse("f (" * depth + "x" + ")" * depth)
    assert term.size == depth + 2
    assert term.normalize() == term
    assert parse("(" * depth + "x" + ")" * depth) == prim("x")
    chain = parse("\\x. " + "g (" * depth + "x" + ")" * depth)
    assert chain.kind == "lam"


def test_bytes_input_is_utf8():
    assert parse("λx. f x".encode()) == parse("\\x. f x")
    with pytest.raises(TermSyntaxError) as info:
        parse("λx. é ".encode() + b"\xff", source="b")
    assert (info.value.line, info.value.column) == (1, 7)
