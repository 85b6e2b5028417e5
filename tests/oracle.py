"""A pure-Python reference normalizer: the independent oracle for the native core.

It shares nothing with the core but the build/export record format and the rules as they
are written in DESIGN.md, which it reads as term text (lower-case names are pattern
variables). Strategy, as in the contract: normalize children first, then rewrite at the
root, first matching rule in the listed order; lambdas are removed by plain S/K/I bracket
abstraction, whose normal form the rules make equal to the core's optimized abstraction.

Terms are hash-consed ints in an :class:`Oracle` store so memoization is exact and cheap;
recursion runs on a worker thread with a large stack, so deep terms work too (slowly).
"""

from __future__ import annotations

import sys
import threading

from bwsk.errors import TermError
from bwsk.lang.parser import parse_records

RULES = (
    "I x -> x", "K x y -> x", "S f g x -> f x (g x)", "B f g x -> f (g x)",
    "C f x y -> f y x", "W f x -> f x x",
    "S K K -> I", "S (K p) (K q) -> K (p q)", "S (K p) I -> p", "S (K p) q -> B p q",
    "S p (K q) -> C p q", "B p I -> p", "B I p -> p", "W K -> I", "C (C p) -> p",
)
PROJECTION, PAIRING = "projection", "surjective pairing"
COMBINATORS = frozenset("SKIBCW")


class Oracle:
    """A hash-consed store of nodes ``(kind, a, b)`` and a memoizing normalizer over it."""

    def __init__(self, max_steps: int = 10_000_000):
        self.nodes: list[tuple] = []
        self.ids: dict[tuple, int] = {}
        self.nf_memo: dict[int, int] = {}
        self.fired: dict[str, int] = {}
        self.steps, self.max_steps = 0, max_steps
        self.rules = [self._compile(text) for text in RULES]

    # -- the store --------------------------------------------------------------------------
    def node(self, *key) -> int:
        found = self.ids.get(key)
        if found is None:
            if key[0] == "app" and self._is_full_tuple(key[1]):
                raise TermError("cannot apply a tuple")
            found = self.ids[key] = len(self.nodes)
            self.nodes.append(key)
        return found

    def spine(self, t: int) -> tuple[int, list[int]]:
        """The head of an application spine and its arguments, left to right."""
        args = []
        while self.nodes[t][0] == "app":
            args.append(self.nodes[t][2])
            t = self.nodes[t][1]
        return t, args[::-1]

    def _is_full_tuple(self, t: int) -> bool:
        head, args = self.spine(t)
        return self.nodes[head][0] == "tuple" and self.nodes[head][1] == len(args)

    def from_records(self, records) -> int:
        ids: list[int] = []
        for rec in records:
            if rec[0] == "app":
                ids.append(self.node("app", ids[rec[1]], ids[rec[2]]))
            elif rec[0] == "lam":
                ids.append(self.node("lam", rec[1], ids[rec[2]]))
            else:
                ids.append(self.node(*rec))
        return ids[-1]

    def to_records(self, t: int) -> list[tuple]:
        """Postfix records of ``t`` (children first, ``t`` last)."""
        order, index, stack = [], {}, [(t, False)]
        while stack:
            n, done = stack.pop()
            if n in index:
                continue
            kind, *rest = self.nodes[n]
            kids = [rest[0], rest[1]] if kind == "app" else [rest[1]] if kind == "lam" else []
            if done or not kids:
                index[n] = len(order)
                order.append(
                    ("app", index[rest[0]], index[rest[1]]) if kind == "app"
                    else ("lam", rest[0], index[rest[1]]) if kind == "lam" else self.nodes[n])
            else:
                stack.append((n, True))
                stack.extend((k, False) for k in reversed(kids) if k not in index)
        return order

    # -- rules ------------------------------------------------------------------------------
    def _compile(self, text: str) -> tuple[str, int, int]:
        lhs, rhs = (self.from_records(parse_records(side)) for side in text.split("->"))
        return text, lhs, rhs

    def _match(self, pat: int, t: int, binds: dict[str, int]) -> bool:
        kind = self.nodes[pat]
        if kind[0] == "prim":  # a pattern variable
            if kind[1] in binds:
                return binds[kind[1]] == t
            binds[kind[1]] = t
            return True
        if kind[0] == "app":
            return (self.nodes[t][0] == "app" and self._match(kind[1], self.nodes[t][1], binds)
                    and self._match(kind[2], self.nodes[t][2], binds))
        return pat == t

    def _instantiate(self, pat: int, binds: dict[str, int]) -> int:
        kind = self.nodes[pat]
        if kind[0] == "prim":
            return binds[kind[1]]
        if kind[0] == "app":
            return self.apply(self._instantiate(kind[1], binds), self._instantiate(kind[2], binds))
        return pat

    def _fire(self, rule: str) -> None:
        self.fired[rule] = self.fired.get(rule, 0) + 1
        self.steps += 1
        if self.steps > self.max_steps:
            raise TermError("oracle: too many rewrites (no normal form?)")

    # -- normalization ----------------------------------------------------------------------
    def apply(self, f: int, x: int) -> int:
        """The normal form of ``f x`` for normal ``f`` and ``x``: only the root can be a redex."""
        t = self.node("app", f, x)
        head, args = self.spine(t)
        kind = self.nodes[head]
        if kind[0] in COMBINATORS:
            for text, lhs, rhs in self.rules:
                binds: dict[str, int] = {}
                if self._match(lhs, t, binds):
                    self._fire(text)
                    return self._instantiate(rhs, binds)
        elif kind[0] == "proj" and len(args) == 1:
            return self._project(t, kind[1], kind[2], args[0])
        elif kind[0] == "tuple" and kind[1] == len(args) and args:
            return self._unpair(t, args)
        return t

    def _project(self, t: int, i: int, n: int, arg: int) -> int:
        head, items = self.spine(arg)
        if self.nodes[head][0] != "tuple" or self.nodes[head][1] != len(items):
            return t
        if len(items) != n:
            raise TermError(f"projection #{i}/{n} applied to a {len(items)}-tuple")
        self._fire(PROJECTION)
        return items[i]

    def _unpair(self, t: int, items: list[int]) -> int:
        n, sources = len(items), set()
        for i, item in enumerate(items):
            if self.nodes[item][0] != "app" or self.nodes[self.nodes[item][1]] != ("proj", i, n):
                return t
            sources.add(self.nodes[item][2])
        if len(sources) != 1:
            return t
        self._fire(PAIRING)
        return sources.pop()

    def nf(self, t: int) -> int:
        memo = self.nf_memo.get(t)
        if memo is not None:
            return memo
        kind = self.nodes[t]
        if kind[0] == "app":
            result = self.apply(self.nf(kind[1]), self.nf(kind[2]))
        elif kind[0] == "lam":
            result = self.nf(self.abstract(kind[1], self.nf(kind[2])))
        else:
            result = t
        self.nf_memo[t] = result
        return result

    def abstract(self, var: str, t: int) -> int:
        """Plain bracket abstraction [var] t: I, K t, or S [var]f [var]a."""
        x = self.node("prim", var, "")
        occurs: dict[int, bool] = {}
        memo: dict[int, int] = {}  # shared subterms are abstracted once

        def has(u: int) -> bool:
            if u not in occurs:
                kind = self.nodes[u]
                occurs[u] = u == x or (kind[0] == "app" and (has(kind[1]) or has(kind[2])))
            return occurs[u]

        def go(u: int) -> int:
            if u not in memo:
                if u == x:
                    memo[u] = self.node("I")
                elif not has(u):
                    memo[u] = self.node("app", self.node("K"), u)
                else:
                    _, f, a = self.nodes[u]
                    memo[u] = self.node("app", self.node("app", self.node("S"), go(f)), go(a))
            return memo[u]

        return go(t)


def run_deep(fn, *args):
    """Run ``fn`` on a thread with a 512 MiB stack and a high recursion limit."""
    result: list = []
    error: list[BaseException] = []

    def target():
        try:
            result.append(fn(*args))
        except BaseException as exc:  # re-raised on the caller's thread
            error.append(exc)

    old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(max(old_limit, 1_000_000))
    threading.stack_size(512 * 1024 * 1024)
    try:
        worker = threading.Thread(target=target)
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    if error:
        raise error[0]
    return result[0]


def normalize_records(records, max_steps: int = 10_000_000) -> tuple[list[tuple], dict[str, int]]:
    """The oracle's normal form of a record list, as records, and the rules it fired."""
    oracle = Oracle(max_steps)

    def go():
        return oracle.to_records(oracle.nf(oracle.from_records(records)))

    return run_deep(go), oracle.fired
