"""Terms back to text, such that ``parse(print_term(t)) == t`` for every term.

Shared non-atomic subterms are printed once, bound by ``let`` with fresh names; parentheses
are minimal; a fully applied tuple prints as ``<a, b>``. Everything is iterative, so million-node
terms print without recursion and in linear time (text is emitted as pieces, never re-copied).

Lambdas need care because the core binds variables by *name*: a shared subterm that mentions
the variable ``x`` means something different inside and outside ``\\x.``. Each ``\\x.`` body is
therefore its own let scope, and a subterm is bound in the innermost scope that binds one of its
variables (its *owner*); terms without lambdas take a single-scope fast path.
"""

from __future__ import annotations

import functools
import itertools
import re

from bwsk.errors import BwskError, TermError
from bwsk.lang.parser import RESERVED, gc_paused

_ATOM, _APP, _TERM = 2, 1, 0  # precedence levels: what a position accepts at least


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_']*(::[A-Za-z_][A-Za-z0-9_]*)?")
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*")


@functools.lru_cache(maxsize=65536)
def _checked(name: str, pattern: re.Pattern, what: str) -> str:
    """``name`` if the grammar can read it back; text that would not parse is an error."""
    if pattern.fullmatch(name) is None or (pattern is _NAME and name in RESERVED):
        raise TermError(f"{what} {name!r} cannot be written in the term language")
    return name


_SIMPLE_VALUE = re.compile(r"0|-?[1-9][0-9]*|%[A-Za-z0-9_][A-Za-z0-9_.:/-]*|"
                           r"[A-Za-z_][A-Za-z0-9_']*(::[A-Za-z_][A-Za-z0-9_]*)?")
_FLOAT = re.compile(r"-?[0-9.]+(e[+-][0-9]+)?")


def _simple_canonical(attrs: str) -> bool:
    """A quick yes for the common case (ints, floats, names, refs, sorted keys), no parse."""
    if '"' in attrs or "[" in attrs:
        return False
    keys = []
    for pair in attrs.split(", "):
        key, _, value = pair.partition("=")
        if _NAME.fullmatch(key) is None or value in ("let", "in") or not (
                _SIMPLE_VALUE.fullmatch(value)
                or (_FLOAT.fullmatch(value) and repr(float(value)) == value)):
            return False
        keys.append(key)
    return all(a < b for a, b in itertools.pairwise(keys))


@functools.lru_cache(maxsize=65536)
def _checked_attrs(attrs: str) -> str:
    """Attribute text that reads back as itself (another spelling would be another node)."""
    from bwsk.lang.parser import parse_records

    if _simple_canonical(attrs):
        return attrs
    try:
        canonical = parse_records(f"p[{attrs}]")[-1][2]
    except BwskError as exc:
        raise TermError(f"attributes [{attrs}] cannot be read back: {exc}") from None
    if canonical != attrs:
        raise TermError(f"attributes [{attrs}] are not canonical; expected [{canonical}]")
    return attrs


def _atom_text(record: tuple) -> str | None:
    kind = record[0]
    if len(kind) == 1:
        return kind
    if kind == "prim":
        name = _checked(record[1], _NAME, "primitive name")
        return f"{name}[{_checked_attrs(record[2])}]" if record[2] else name
    if kind == "ref":
        return "%" + _checked(record[1], _REF, "reference")
    if kind == "proj":
        return f"#{record[1]}/{record[2]}"
    if kind == "tuple":
        if record[1] == 1:
            raise TermError("a 1-tuple constructor has no syntax")
        return "<" + "," * (record[1] - 1) + ">" if record[1] else "<>"
    return None


class _Scopes:
    """Let scopes: 0 is the top; each printed lambda body opens one (see module docstring)."""

    def __init__(self, records: list[tuple], refs: list[int]):
        self.records, self.n = records, len(records)
        varnames = {r[1] for r in records if r[0] == "lam"}
        self.free = _free_vars(records, varnames) if varnames else None
        self.env: dict[str, list[int]] = {}  # var name -> stack of scopes binding it
        self.depth = [0]
        self.lam_scope: dict[int, int] = {}  # key of a printed lambda -> its body's scope
        self.lets: dict[int, list[int]] = {}  # scope -> keys bound there
        self.names: dict[int, str] = {}  # key -> let name
        if self.free is None:
            shared = (i for i, r in enumerate(records) if refs[i] > 1 and r[0] in ("app", "lam"))
            self.lets[0] = list(shared)
        else:
            self._count()

    def owner(self, node: int) -> int:
        if self.free is None:
            return 0
        scopes = [self.env[v][-1] for v in self.free[node] if self.env.get(v)]
        return max(scopes, key=self.depth.__getitem__, default=0)

    def key(self, node: int) -> int:
        return node + self.owner(node) * self.n

    def enter(self, key: int) -> int:
        """The scope of the lambda printed as ``key`` (created on first use), now entered."""
        scope = self.lam_scope.get(key)
        if scope is None:
            scope = self.lam_scope[key] = len(self.depth)
            owner = key // self.n
            self.depth.append(self.depth[owner] + 1)
        self.env.setdefault(self.records[key % self.n][1], []).append(scope)
        return scope

    def leave(self, key: int) -> None:
        self.env[self.records[key % self.n][1]].pop()

    def _count(self) -> None:
        """Uses of each (node, owner) pair; pairs used twice or more get a let."""
        counts: dict[int, int] = {}
        stack: list[tuple[int, int]] = [(self.n - 1, 0)]  # (node, 0) visit, (key, 1) leave
        while stack:
            item, leaving = stack.pop()
            if leaving:
                self.leave(item)
                continue
            key = self.key(item)
            counts[key] = counts.get(key, 0) + 1
            if counts[key] > 1:
                continue
            record = self.records[item]
            if record[0] == "app":
                stack += [(record[2], 0), (record[1], 0)]
            elif record[0] == "lam":
                self.enter(key)
                stack += [(key, 1), (record[2], 0)]
        for key in sorted(k for k, c in counts.items() if c > 1):
            if self.records[key % self.n][0] in ("app", "lam"):
                self.lets.setdefault(key // self.n, []).append(key)


def _free_vars(records: list[tuple], varnames: set[str]) -> list[frozenset]:
    empty: frozenset = frozenset()
    free: list[frozenset] = []
    for r in records:
        if r[0] == "prim" and r[2] == "" and r[1] in varnames:
            free.append(frozenset((r[1],)))
        elif r[0] == "app":
            a, b = free[r[1]], free[r[2]]
            free.append(a | b if a and b else a or b)
        elif r[0] == "lam":
            free.append(free[r[2]] - {r[1]})
        else:
            free.append(empty)
    return free


def _fresh_names(scopes: _Scopes) -> None:
    taken = set(RESERVED)
    taken.update(r[1] for r in scopes.records if r[0] in ("prim", "lam"))
    counter = 0
    for scope in sorted(scopes.lets):
        for key in scopes.lets[scope]:
            while f"t{counter}" in taken:
                counter += 1
            scopes.names[key] = f"t{counter}"
            counter += 1


class _Emitter:
    """Writes the text as a list of pieces, driven by an explicit task stack."""

    def __init__(self, scopes: _Scopes):
        self.s = scopes
        self.out: list[str] = []
        self.tasks: list = []

    def run(self) -> str:
        self.tasks.append(("scope", 0, self.s.n - 1, _TERM))
        while self.tasks:
            task = self.tasks.pop()
            if isinstance(task, str):
                self.out.append(task)
            elif task[0] == "leave":
                self.s.leave(task[1])
            else:
                getattr(self, "do_" + task[0])(*task[1:])
        return "".join(self.out)

    def push(self, *items) -> None:
        """Schedule ``items`` to be emitted in the order given."""
        self.tasks.extend(reversed(items))

    def do_node(self, node: int, level: int) -> None:
        key = self.s.key(node)
        name = self.s.names.get(key)
        if name is not None:
            self.out.append(name)
        else:
            self.do_def(key, level)

    def do_def(self, key: int, level: int) -> None:
        record = self.s.records[key % self.s.n]
        text = _atom_text(record)
        if text is not None:
            self.out.append(text)
        elif record[0] == "app":
            self.app(key % self.s.n, level)
        else:
            self.lam(key, level)

    def app(self, node: int, level: int) -> None:
        records, args = self.s.records, []
        while True:
            args.append(records[node][2])
            fun = records[node][1]
            if records[fun][0] != "app" or self.s.key(fun) in self.s.names:
                break
            node = fun
        args.reverse()
        if records[fun][0] == "tuple" and records[fun][1] == len(args):
            items: list = []
            for i, arg in enumerate(args):
                items += [", " if i else "<", ("node", arg, _TERM)]
            self.push(*items, ">")
            return
        items = [("node", fun, _ATOM)]
        for arg in args:
            items += [" ", ("node", arg, _ATOM)]
        self.push(*(["(", *items, ")"] if level > _APP else items))

    def lam(self, key: int, level: int) -> None:
        keys = [key]
        scope = self.s.enter(key)
        body = self.s.records[key % self.s.n][2]
        while (self.s.records[body][0] == "lam" and scope not in self.s.lets
               and self.s.key(body) not in self.s.names):  # \x. \y. b prints as \x y. b
            keys.append(self.s.key(body))
            scope = self.s.enter(keys[-1])
            body = self.s.records[body][2]
        names = (_checked(self.s.records[k % self.s.n][1], _NAME, "variable") for k in keys)
        head = "\\" + " ".join(names) + ". "
        leaves = [("leave", k) for k in reversed(keys)]
        parts = [head, ("scope", scope, body, _TERM), *leaves]
        self.push(*(["(", *parts, ")"] if level > _TERM else parts))

    def do_scope(self, scope: int, body: int, level: int) -> None:
        lets = self.s.lets.get(scope)
        if not lets:
            self.do_node(body, level)
            return
        sep, before_in = (";\n    ", "\nin ") if scope == 0 else ("; ", " in ")
        items: list = ["let "]
        for i, key in enumerate(lets):
            items += [sep if i else "", self.s.names[key], " = ", ("def", key, _TERM)]
        items += [before_in, ("node", body, _TERM)]
        self.push(*(["(", *items, ")"] if level > _TERM else items))


def print_records(records: list[tuple], refs: list[int]) -> str:
    """The text of an exported DAG (records children-first, the term last)."""
    with gc_paused():
        scopes = _Scopes(list(records), list(refs))
        _fresh_names(scopes)
        return _Emitter(scopes).run()


def print_term(term) -> str:
    """The text of a term: ``parse(print_term(t)) == t``."""
    from bwsk.term import export

    records, refs = export(term)
    return print_records(records, refs)
