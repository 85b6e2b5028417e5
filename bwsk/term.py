"""Terms of the combinator language: immutable handles into one hash-consed native store.

Structurally equal terms are the same node, so ``==`` and ``hash`` are O(1) and shared
subterms cost nothing. Whole terms cross into the engine in one call (``build``) and out
of it in one call (``export``); records are tuples, children before parents::

    ("S",) ("K",) ("I",) ("B",) ("C",) ("W",) ("prim", name, attrs) ("ref", name)
    ("app", i, j) ("lam", var, i) ("tuple", n) ("proj", i, n)

where ``i``/``j`` index earlier records. Ill-formed input raises ``bwsk.errors.TermError``.

The store lives as long as the process (nodes are never freed, so ids stay valid) and
remembers every normal form it computed. Native calls release the GIL and take the store's
lock; a long normalization stops on Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from bwsk import _core
from bwsk.errors import TermError

Record = tuple

MAX_STEPS = 200_000_000  # rewrites per normalization before giving up


class Exported(NamedTuple):
    """The reachable DAG of a term: ``records`` in topological order (the term is the last
    one) and ``refs[k]``, how many records refer to record ``k`` (>1 means shared)."""

    records: list[Record]
    refs: list[int]


class Term:
    """A handle on one node of the process-wide term store."""

    __slots__ = ("_id",)

    def __init__(self, node_id: int):
        self._id = node_id

    # --- structure --------------------------------------------------------------
    @property
    def id(self) -> int:
        """The node id (stable for the life of the process)."""
        return self._id

    @property
    def kind(self) -> str:
        return _core.node(self._id)[0]

    def _field(self, kinds: tuple[str, ...], pos: int, what: str):
        rec = _core.node(self._id)
        if rec[0] not in kinds:
            raise AttributeError(f"a {rec[0]} term has no {what}")
        return rec[pos]

    @property
    def fun(self) -> Term:
        return Term(self._field(("app",), 1, "fun"))

    @property
    def arg(self) -> Term:
        return Term(self._field(("app",), 2, "arg"))

    @property
    def name(self) -> str:
        return self._field(("prim", "ref"), 1, "name")

    @property
    def attrs(self) -> str:
        """Canonical attribute text of a primitive ('' for none)."""
        return self._field(("prim",), 2, "attrs")

    @property
    def var(self) -> str:
        return self._field(("lam",), 1, "var")

    @property
    def body(self) -> Term:
        return Term(self._field(("lam",), 2, "body"))

    @property
    def arity(self) -> int:
        """n of a tuple constructor ``tuple(n)`` or of a projection ``#i/n``."""
        rec = _core.node(self._id)
        if rec[0] == "tuple":
            return rec[1]
        if rec[0] == "proj":
            return rec[2]
        raise AttributeError(f"a {rec[0]} term has no arity")

    @property
    def index(self) -> int:
        return self._field(("proj",), 1, "index")

    @property
    def size(self) -> int:
        """Distinct nodes reachable from this term (the DAG size)."""
        return _core.size(self._id)

    @property
    def tree_size(self) -> int:
        """Nodes of the fully unshared tree, saturating at 2**64 - 1."""
        return _core.tree_size(self._id)

    # --- rewriting ---------------------------------------------------------------
    def normalize(self, max_steps: int = MAX_STEPS) -> Term:
        """The normal form (idempotent; lambdas are abstracted away). TermError when the
        term loops or needs more than ``max_steps`` rewrites (untyped terms may)."""
        return Term(_core.normalize(self._id, max_steps))

    def normalize_with_stats(self, max_steps: int = MAX_STEPS) -> tuple[Term, dict[str, int]]:
        """The normal form and, per rule text, how often it fired in this call (work memoized
        by an earlier call is not redone, so it is not counted again)."""
        node_id, stats = _core.normalize_with_stats(self._id, max_steps)
        return Term(node_id), stats

    # --- Python protocol ---------------------------------------------------------
    def __call__(self, *args: Term) -> Term:
        return app(self, *args)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Term) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __str__(self) -> str:
        from bwsk.lang.printer import print_term  # shared subterms become ``let`` bindings

        return print_term(self)

    def __repr__(self) -> str:
        """Never raises (debuggers and tracebacks call it): terms the printer rejects, such
        as a primitive named with a space, get the plain form as big terms do."""
        plain = f"<Term #{self._id} {self.kind}, {self.size} nodes>"
        if self.size > 64:
            return plain
        try:
            return f"Term({str(self)!r})"
        except TermError:
            return plain

    def __reduce__(self):
        return (build, (export(self).records,))


def _check(t: object) -> int:
    if not isinstance(t, Term):
        raise TypeError(f"expected a Term, got {type(t).__name__}")
    return t._id


# --- constructors -------------------------------------------------------------------
S, K, I, B, C, W = (Term(_core.comb(c)) for c in "SKIBCW")  # noqa: E741


def prim(name: str, attrs: str = "") -> Term:
    """A primitive operator; ``attrs`` is canonical attribute text (see term-language.md)."""
    return Term(_core.prim(name, attrs))


def ref(name: str) -> Term:
    """A weight/constant reference ``%name``."""
    return Term(_core.ref(name))


def app(f: Term, *xs: Term) -> Term:
    """``f x1 ... xn`` (left-associative application)."""
    node = _check(f)
    for x in xs:
        node = _core.app(node, _check(x))
    return Term(node)


def lam(var: str, body: Term) -> Term:
    """``\\var. body`` (surface syntax: normalization abstracts it away)."""
    return Term(_core.lam(var, _check(body)))


def tuple_ctor(n: int) -> Term:
    """The curried tuple constructor of arity n (``<,>`` for n = 2; ``<>`` for n = 0)."""
    return Term(_core.tuple(n))


def tup(*items: Term) -> Term:
    """The fully applied tuple ``<a, b, ...>`` (0 or at least 2 items)."""
    return app(tuple_ctor(len(items)), *items)


def proj(i: int, n: int) -> Term:
    """The projection ``#i/n``: component i of an n-tuple."""
    return Term(_core.proj(i, n))


# --- whole terms ----------------------------------------------------------------------
def build(records: Sequence[Record]) -> Term:
    """The term of the last record of a postfix record list, built in one native call."""
    return Term(_core.build(records, False))


def build_all(records: Sequence[Record]) -> list[Term]:
    """One Term per record (slower than ``build`` for big lists: a Python object each)."""
    return [Term(i) for i in _core.build(records, True)]


def export(term: Term) -> Exported:
    """The reachable DAG of ``term`` as records (children first) with reference counts."""
    records, refs = _core.export(_check(term))
    return Exported(records, refs)


def abstract(var: str, term: Term) -> Term:
    """Bracket abstraction ``[var] term`` of the free variable ``var`` (not normalized)."""
    return Term(_core.abstract(var, _check(term)))


def rules() -> list[str]:
    """The normalizer's rewrite rules, in the order they are tried."""
    return _core.rules()


def store_stats() -> dict[str, int]:
    """Nodes in the process-wide store and the bytes it holds."""
    return _core.store_stats()


__all__ = [
    "MAX_STEPS", "B", "C", "Exported", "I", "K", "S", "Term", "W", "abstract", "app", "build",
    "build_all", "export", "lam", "prim", "proj", "ref", "rules", "store_stats", "tup",
    "tuple_ctor",
]
