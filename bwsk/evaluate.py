"""Run a term on concrete Python values: the meaning that normalization must preserve.

``evaluate(term, prims, *args)`` applies ``term`` to ``args``. Combinators are curried
closures, tuples are Python tuples, ``#i/n`` indexes (checking the arity), and ``\\x. e``
binds the attribute-less primitive ``x`` in ``e`` (by name, as the core does).

Primitives come from ``prims``, looked up by name; a reference ``%w`` is looked up as the
key ``"%w"``. ``scope[prefix=p] f`` (a closed ``f``) is ``f`` with every reference ``%r`` in
it looked up as ``"%p.r"``: the lowering applies one shared block body to each layer's
weights this way. A value may be
  * ``Prim(fn, arity)``: ``fn`` receives ``arity`` positional arguments, curried;
  * any other callable: its arity is the number of its required positional parameters;
  * anything else: a constant.
Attributes are passed to ``fn`` as keyword arguments (``softmax[axis=-1]`` calls
``fn(x, axis=-1)``); a callable of arity 0 is called at once with its attributes.
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass
from typing import Any

from bwsk.errors import TermError

COMBINATORS = {
    "S": lambda f: lambda g: lambda x: f(x)(g(x)),
    "K": lambda x: lambda y: x,
    "I": lambda x: x,
    "B": lambda f: lambda g: lambda x: f(g(x)),
    "C": lambda f: lambda x: lambda y: f(y)(x),
    "W": lambda f: lambda x: f(x)(x),
}


@dataclass(frozen=True)
class Prim:
    """A primitive's implementation with an explicit arity (for ``*args`` functions)."""

    fn: Any
    arity: int


class _Curried:
    """``fn`` waiting for the rest of its ``arity`` positional arguments."""

    __slots__ = ("args", "arity", "fn", "kwargs")

    def __init__(self, fn, arity: int, kwargs: dict, args: tuple = ()):
        self.fn, self.arity, self.kwargs, self.args = fn, arity, kwargs, args

    def __call__(self, x):
        args = (*self.args, x)
        if len(args) == self.arity:
            return self.fn(*args, **self.kwargs)
        return _Curried(self.fn, self.arity, self.kwargs, args)


def _arity(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        raise TermError(f"cannot tell the arity of {fn!r}; wrap it as Prim(fn, arity)") from None
    return sum(1 for p in params if p.default is p.empty and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _attr_value(tree, prims: dict):
    kind = tree.data
    if kind == "list":
        return [_attr_value(item, prims) for item in tree.children if item is not None]
    token = str(tree.children[0])
    if kind == "int":
        return int(token)
    if kind == "float":
        return float(token)
    if kind == "string":
        return json.loads(token)
    if kind == "refval":
        return prims.get(token, token)
    return token


@functools.lru_cache(maxsize=4096)
def _attr_trees(attrs: str):
    from bwsk.lang.grammar import lark_parser

    return lark_parser().parse(f"p[{attrs}]").children[0].children[1:]


def _curry(value, kwargs: dict):
    if isinstance(value, Prim):
        fn, arity = value.fn, value.arity
    elif callable(value):
        fn, arity = value, _arity(value)
    else:
        return value
    return fn(**kwargs) if arity == 0 else _Curried(fn, arity, kwargs)


def _tuple(n: int):
    def collect(items: tuple):
        return items if len(items) == n else lambda x: collect((*items, x))

    return collect(())


def _proj(i: int, n: int):
    def project(value):
        if not isinstance(value, tuple) or len(value) != n:
            raise TermError(f"#{i}/{n} applied to {type(value).__name__} {value!r:.60}")
        return value[i]

    return project


class _Program:
    """A term's records evaluated bottom-up under a reference ``prefix``; nodes mentioning a
    lambda variable are re-evaluated per call of their lambda, every other node once (on
    first use: a scoped program only needs its block)."""

    def __init__(self, records: list[tuple], prims: dict, prefix: str = "", shared=None):
        self.records, self.prims, self.prefix = records, prims, prefix
        if shared is None:
            shared = {"open": _open_nodes(records), "reached": {}, "scoped": {}}
        self.shared, self.open = shared, shared["open"]
        self.values: dict[int, Any] = {}

    def run(self, root: int, env: dict):
        """The value of ``root`` where the lambda variables have the values in ``env``."""
        local: dict = {}
        for i in self.reach(root):
            local[i] = self.compute(i, env, local)
        return self.get(root, local)

    def get(self, i: int, local: dict):
        return local[i] if i in local else self.closed(i)

    def closed(self, i: int):
        """The value of the closed node ``i``, computing what it needs first."""
        if i not in self.values:
            todo, stack = set(), [i]
            while stack:
                j = stack.pop()
                if j in todo or j in self.values:
                    continue
                todo.add(j)
                r = self.records[j]
                if r[0] == "app" and _scope_attrs(self.records, r) is None:
                    stack.extend((r[1], r[2]))
            for j in sorted(todo):
                self.values[j] = self.compute(j, {}, {})
        return self.values[i]

    def compute(self, i: int, env: dict, local: dict):
        record = self.records[i]
        kind = record[0]
        if kind in COMBINATORS:
            return COMBINATORS[kind]
        if kind == "app":
            attrs = _scope_attrs(self.records, record)
            if attrs is not None:
                return self.scoped(attrs).run(record[2], {})
            return self.get(record[1], local)(self.get(record[2], local))
        if kind == "lam":
            return self.closure(i, env)
        if kind == "prim":
            if record[2] == "" and record[1] in env:
                return env[record[1]]
            if self.prefix and record[2] == "" and self.open[i]:
                raise TermError(f"evaluate: variable {record[1]!r} is free under scope[...]")
            if record[1] == "scope":
                raise TermError("evaluate: scope[...] must be applied directly to a term")
            return _curry(self.lookup(record[1]), self.kwargs(record[2]))
        if kind == "ref":
            return self.lookup(f"%{self.prefix}.{record[1]}" if self.prefix else
                               "%" + record[1])
        if kind == "tuple":
            return _tuple(record[1])
        return _proj(record[1], record[2])

    def kwargs(self, attrs: str) -> dict:
        return {str(t.children[0]): _attr_value(t.children[1], self.prims)
                for t in _attr_trees(attrs) if t is not None} if attrs else {}

    def scoped(self, attrs: str) -> _Program:
        """The program reading references under this prefix extended by ``attrs``'s."""
        prefix = self.kwargs(attrs).get("prefix")
        if not isinstance(prefix, str):
            raise TermError(f"evaluate: scope[{attrs}] needs a string prefix")
        full = f"{self.prefix}.{prefix}" if self.prefix else prefix
        programs = self.shared["scoped"]
        if full not in programs:
            programs[full] = _Program(self.records, self.prims, full, self.shared)
        return programs[full]

    def lookup(self, name: str):
        if name not in self.prims:
            raise TermError(f"evaluate: no value given for {name!r}")
        return self.prims[name]

    def closure(self, lam: int, env: dict):
        var, body = self.records[lam][1], self.records[lam][2]
        return lambda x: self.run(body, {**env, var: x})

    def reach(self, root: int) -> list[int]:
        """The open nodes ``root`` needs, children first; lambda bodies wait for a call."""
        reached = self.shared["reached"]
        if root not in reached:
            seen, stack = set(), [root]
            while stack:
                i = stack.pop()
                if i in seen or not self.open[i]:
                    continue
                seen.add(i)
                r = self.records[i]
                if r[0] == "app" and _scope_attrs(self.records, r) is None:
                    stack.extend((r[1], r[2]))
            reached[root] = sorted(seen)
        return reached[root]


def _open_nodes(records: list[tuple]) -> list[bool]:
    """Which records mention a lambda variable (by name, as the core binds them)."""
    varnames = {r[1] for r in records if r[0] == "lam"}
    open_: list[bool] = []
    for r in records:
        open_.append((r[0] == "prim" and r[2] == "" and r[1] in varnames)
                     or (r[0] == "app" and (open_[r[1]] or open_[r[2]]))
                     or (r[0] == "lam" and open_[r[2]]))
    return open_


def _scope_attrs(records: list[tuple], record: tuple) -> str | None:
    """The attributes of ``scope[...]`` when ``record`` applies it, else None."""
    fun = records[record[1]]
    return fun[2] if fun[0] == "prim" and fun[1] == "scope" else None


def evaluate(term, prims: dict, *args):
    """The value of ``term`` applied to ``args`` (see the module docstring for ``prims``)."""
    from bwsk.term import export

    records = list(export(term).records)
    value = _Program(records, prims).run(len(records) - 1, {})
    for arg in args:
        value = value(arg)
    return value
