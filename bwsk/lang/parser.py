"""Term text -> Lark tree -> flat postfix records -> one native ``build`` call.

Every pass is iterative (an explicit task stack), so a 100,000-deep term parses without
touching Python's recursion limit. Scoping is lexical: a name bound by ``\\`` or ``let`` is that
variable or binding, a free bare name is an attribute-less primitive. ``let`` groups are
recursive scopes; a reference to a binding not built yet becomes a forward record that
:mod:`bwsk.lang.records` resolves (and rejects if it closes a cycle).
"""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path

from lark import Token, Tree
from lark.exceptions import UnexpectedInput

from bwsk.errors import TermSyntaxError
from bwsk.lang.attrs import AttrError, canonical_attrs
from bwsk.lang.grammar import convert, error_at, lark_parser
from bwsk.lang.records import Slot, finalize

RESERVED = frozenset({"S", "K", "I", "B", "C", "W", "let", "in"})
_VISIT = object()


class _Walker:
    """Converts one Lark tree into intermediate records (see :mod:`bwsk.lang.records`)."""

    def __init__(self, text: str, source: str):
        self.text, self.source = text, source
        self.records: list[tuple] = []
        self.env: dict[str, list] = {}  # name -> stack of ("var", binder) | ("slot", Slot)
        self.binders: list[str] = []  # binder id -> source name
        self.cache: dict[tuple, int] = {}  # leaf record -> index, to keep the list small
        self.missing: dict[int, int] = {}  # tuple spine -> arguments it still takes

    def emit(self, record: tuple) -> int:
        self.records.append(record)
        return len(self.records) - 1

    def leaf(self, record: tuple) -> int:
        index = self.cache.get(record)
        if index is None:
            index = self.cache[record] = self.emit(record)
        return index

    def error(self, message: str, token: Token) -> TermSyntaxError:
        return error_at(message, token, self.text, self.source)

    def walk(self, root: Tree) -> int:
        values: list[int] = []
        tasks: list[tuple] = [(_VISIT, root)]
        while tasks:
            op, arg = tasks.pop()
            if op is _VISIT:
                getattr(self, "visit_" + arg.data)(arg, tasks, values)
            else:
                op(arg, values)
        return values.pop()

    # -- leaves -------------------------------------------------------------------------------
    def visit_comb(self, tree, tasks, values):
        values.append(self.leaf((str(tree.children[0]),)))

    def visit_name(self, tree, tasks, values):
        token = tree.children[0]
        name = str(token)
        if name in RESERVED:  # only `let`/`in` get here, lexed as names out of place
            raise self.error(f"unexpected keyword {name!r}", token)
        bound = self.env.get(name)
        if not bound:
            values.append(self.leaf(("prim", name, "")))
            return
        kind, what = bound[-1]
        if kind == "var":
            values.append(self.leaf(("var", what)))
        elif what.value is not None and self.records[what.value][0] != "fwd":
            values.append(what.value)
        else:
            values.append(self.leaf(("fwd", what)))

    def visit_prim(self, tree, tasks, values):
        name = str(tree.children[0])
        try:
            attrs = canonical_attrs(tree.children[1:])
        except AttrError as exc:
            raise self.error(str(exc), exc.token) from None
        values.append(self.leaf(("prim", name, attrs)))

    def visit_ref(self, tree, tasks, values):
        values.append(self.leaf(("ref", str(tree.children[0])[1:])))

    def visit_unit(self, tree, tasks, values):
        values.append(self.tuple_ctor(0))

    def visit_tuple_ctor(self, tree, tasks, values):
        values.append(self.tuple_ctor(len(tree.children) + 1))

    def tuple_ctor(self, n: int) -> int:
        index = self.leaf(("tuple", n))
        self.missing[index] = n
        return index

    def visit_proj(self, tree, tasks, values):
        index, arity = (int(token) for token in tree.children)
        if not 0 <= index < arity:
            raise self.error(f"projection #{index}/{arity}: index must be in 0..{arity - 1}",
                             tree.children[0])
        values.append(self.leaf(("proj", index, arity)))

    # -- compound terms -----------------------------------------------------------------------
    def visit_apply(self, tree, tasks, values):
        tasks.append((self.finish_apply, tree))
        tasks.append((_VISIT, tree.children[1]))
        tasks.append((_VISIT, tree.children[0]))

    def finish_apply(self, tree, values):
        arg, fun = values.pop(), values[-1]
        values[-1] = self.apply(fun, arg, tree)

    def apply(self, fun: int, arg: int, tree: Tree | None) -> int:
        """``fun arg``; applying a complete tuple is an error, located at the argument."""
        left = self.missing.get(fun)
        if left == 0:
            raise self.error("cannot apply a tuple", _first_token(tree.children[1]))
        index = self.emit(("app", fun, arg))
        if left is not None:
            self.missing[index] = left - 1
        return index

    def visit_tuple(self, tree, tasks, values):
        items = tree.children[::2]  # the odd children are the separating commas
        tasks.append((self.finish_tuple, len(items)))
        tasks.extend((_VISIT, item) for item in reversed(items))

    def finish_tuple(self, n, values):
        items = values[-n:]
        del values[-n:]
        term = self.tuple_ctor(n)
        for item in items:
            term = self.apply(term, item, None)
        values.append(term)

    def visit_lam(self, tree, tasks, values):
        *names, body = tree.children
        binders = []
        for token in names:
            self.check_binder(token)
            binders.append(len(self.binders))
            self.binders.append(str(token))
            self.env.setdefault(str(token), []).append(("var", binders[-1]))
        tasks.append((self.finish_lam, binders))
        tasks.append((_VISIT, body))

    def finish_lam(self, binders, values):
        for binder in reversed(binders):
            self.env[self.binders[binder]].pop()
            values[-1] = self.emit(("lam", binder, values[-1]))

    def visit_let(self, tree, tasks, values):
        *bindings, body = tree.children
        slots, names = [], set()
        for binding in bindings:
            token = binding.children[0]
            self.check_binder(token)
            if str(token) in names:
                raise self.error(f"{token!s} is bound twice in one let", token)
            names.add(str(token))
            slots.append(Slot(str(token), token))
        for slot in slots:
            self.env.setdefault(slot.name, []).append(("slot", slot))
        tasks.append((self.finish_let, slots))
        tasks.append((_VISIT, body))
        for slot, binding in zip(reversed(slots), reversed(bindings), strict=True):
            tasks.append((self.set_slot, slot))
            tasks.append((_VISIT, binding.children[1]))

    def set_slot(self, slot, values):
        slot.value = values.pop()

    def finish_let(self, slots, values):
        for slot in slots:
            self.env[slot.name].pop()

    def check_binder(self, token: Token) -> None:
        if str(token) in RESERVED:
            raise self.error(f"{token!s} is a reserved word and cannot be bound", token)


def _first_token(tree: Tree | Token) -> Token:
    while isinstance(tree, Tree):
        tree = next(child for child in tree.children if child is not None)
    return tree


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic GC: parsing and printing allocate millions of acyclic objects, and
    the collections they trigger would cost about a third of the time."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def parse_records(text: str, source: str = "<term>") -> list[tuple]:
    """The postfix records of ``text`` (the term is the last record), ready for ``build``."""
    with gc_paused():
        try:
            tree = lark_parser().parse(text)
        except UnexpectedInput as exc:
            raise convert(exc, text, source) from None
        walker = _Walker(text, source)
        root = walker.walk(tree.children[0])
        return finalize(walker.records, root, walker.binders, text, source)


def parse(text: str | bytes, source: str = "<term>"):
    """Parse term text (``bytes`` must be UTF-8) into a hash-consed :class:`bwsk.term.Term`."""
    from bwsk.term import build

    if isinstance(text, bytes):
        text = decode(text, source)
    return build(parse_records(text, source))


def decode(data: bytes, source: str) -> str:
    """UTF-8 text; other bytes are a syntax error pointing at the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        good_line = before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")
        message = f"not valid UTF-8 (byte 0x{data[exc.start]:02x})"
        raise TermSyntaxError(message, source=source, line=before.count(b"\n") + 1,
                              column=len(good_line) + 1, line_text=good_line) from None


def read_source(path: str | Path) -> str:
    """A term file's text; a file that is not UTF-8 is a syntax error at the bad byte."""
    return decode(Path(path).read_bytes(), str(path))


def parse_file(path: str | Path):
    """Parse a term file (the path is the source name in error messages)."""
    return parse(read_source(path), str(path))
