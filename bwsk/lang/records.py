"""From the parser's intermediate records to the postfix records ``bwsk.term.build`` takes.

Intermediate records are the build records plus ``("var", binder)``, ``("lam", binder, i)``
and ``("fwd", slot)`` (a reference to a ``let`` binding built later). :func:`finalize`
orders them children-first, rejects cyclic ``let`` groups, and names the variables.

The core binds variables by name (``\\x. e`` abstracts the attribute-less prim ``x``), while the
surface language is lexically scoped: ``let y = x in \\x. y`` means ``K x``. A binder is renamed
(``x_1``) exactly when its body reaches another leaf of the same name, so capture-free text
keeps its names and parse(print(t)) == t.
"""

from __future__ import annotations

from lark import Token

from bwsk.errors import TermError
from bwsk.lang.grammar import position


class Slot:
    """One ``let`` binding: its name, where it was written, and its record once built."""

    __slots__ = ("name", "token", "value")

    def __init__(self, name: str, token: Token):
        self.name, self.token, self.value = name, token, None


def children(record: tuple) -> tuple:
    kind = record[0]
    if kind == "app":
        return record[1], record[2]
    if kind == "lam":
        return (record[2],)
    if kind == "fwd":
        return (record[1].value,)
    return ()


def _cycle_error(stack: list[int], start: int, records, text: str, source: str) -> TermError:
    at = [i for i, _ in stack].index(start)
    slots = [records[i][1] for i, _ in stack[at:] if records[i][0] == "fwd"]
    names = " -> ".join([slot.name for slot in slots] + [slots[0].name])
    line, column = position(text, slots[0].token.start_pos)
    return TermError(f"{source}:{line}:{column}: cyclic let: {names}")


def _postorder(records: list[tuple], roots, state: list[int], text: str,
               source: str) -> list[int]:
    """Iterative DFS; ``state`` is 0 unseen, 1 on the stack, 2 done. Returns the finish order."""
    order: list[int] = []
    for root in roots:
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, 0)]
        while stack:
            node, k = stack[-1]
            kids = children(records[node])
            if k < len(kids):
                stack[-1] = (node, k + 1)
                child = kids[k]
                if state[child] == 1:
                    raise _cycle_error(stack, child, records, text, source)
                if not state[child]:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                stack.pop()
                state[node] = 2
                order.append(node)
    return order


def _reachable(records: list[tuple], root: int) -> list[int]:
    """Records reachable from ``root`` when all children precede their parents."""
    live = bytearray(len(records))
    live[root] = 1
    for i in range(root, -1, -1):
        if live[i]:
            record = records[i]
            if record[0] == "app":
                live[record[1]] = live[record[2]] = 1
            elif record[0] == "lam":
                live[record[2]] = 1
    return [i for i in range(root + 1) if live[i]]


def _fresh(name: str, taken: set[str]) -> str:
    k = 1
    while f"{name}_{k}" in taken:
        k += 1
    taken.add(f"{name}_{k}")
    return f"{name}_{k}"


def _binder_names(out: list[tuple], binders: list[str]) -> list[str]:
    """Final variable names: the source name unless that would capture another leaf."""
    names = list(binders)
    free = {r[1] for r in out if r[0] == "prim" and r[2] == ""}
    counts: dict[str, int] = {}
    for name in binders:
        counts[name] = counts.get(name, 0) + 1
    risky = {n for n in counts if counts[n] > 1 or n in free}
    if not risky:
        return names
    taken = set(binders) | {r[1] for r in out if r[0] == "prim"}
    empty: frozenset = frozenset()
    leaves: list[frozenset] = []  # per record: risky-named leaves it reaches, free
    for record in out:
        kind = record[0]
        if kind == "var" and binders[record[1]] in risky:
            leaves.append(frozenset({("var", record[1])}))
        elif kind == "prim" and record[2] == "" and record[1] in risky:
            leaves.append(frozenset({("prim", record[1])}))
        elif kind == "app":
            a, b = leaves[record[1]], leaves[record[2]]
            leaves.append(a | b if a and b else a or b)
        elif kind == "lam":
            own = ("var", record[1])
            body = leaves[record[2]]
            name = binders[record[1]]
            if any(leaf != own and _leaf_name(leaf, binders) == name for leaf in body):
                names[record[1]] = _fresh(name, taken)
            leaves.append(body - {own} if own in body else body)
        else:
            leaves.append(empty)
    return names


def _leaf_name(leaf: tuple, binders: list[str]) -> str:
    return binders[leaf[1]] if leaf[0] == "var" else leaf[1]


def finalize(records: list[tuple], root: int, binders: list[str], text: str,
             source: str) -> list[tuple]:
    """Build records in postfix order, the term last; unused bindings are checked, not kept."""
    if any(record[0] == "fwd" for record in records):
        state = [0] * len(records)
        order = _postorder(records, [root], state, text, source)
        _postorder(records, range(len(records)), state, text, source)  # unused bindings too
    else:  # every reference points backwards: already ordered, and no cycle is possible
        order = _reachable(records, root)
    new_index: dict[int, int] = {}
    out: list[tuple] = []
    for old in order:
        record = records[old]
        kind = record[0]
        if kind == "fwd":
            new_index[old] = new_index[record[1].value]
            continue
        if kind == "app":
            record = ("app", new_index[record[1]], new_index[record[2]])
        elif kind == "lam":
            record = ("lam", record[1], new_index[record[2]])
        new_index[old] = len(out)
        out.append(record)
    names = _binder_names(out, binders)
    return [("prim", names[r[1]], "") if r[0] == "var"
            else ("lam", names[r[1]], r[2]) if r[0] == "lam" else r for r in out]
