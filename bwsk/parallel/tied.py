"""Tied weights: one parameter reached through several graph values gets one layout.

The traced graph names a tied parameter once (GPT-2's ``lm_head.weight`` is the token
table the embedding looks up) but a linear layer reads it through its transpose, a value of
its own (``lm_head.weight.T``), so the search may place the two differently: one parameter,
two layouts, which no engine can hold without a second copy and summed gradients. After
the search, a parameter whose values disagree is searched again with each layout the
values can share fixed, and the cheapest plan is kept.
"""

from __future__ import annotations

from bwsk.ir import Graph
from bwsk.parallel.problem import REPLICATED, parameter_of

Alias = tuple[int, bool]  # (value id, read through its transpose)


def aliases(g: Graph, names: list[str], params: set[str]) -> list[list[Alias]]:
    """Per parameter the graph reads through more than one value: those values."""
    groups: dict[str, list[Alias]] = {}
    for i, name in enumerate(names):
        if g.is_const(name):
            param = parameter_of(g, name, params)
            if param is not None:
                groups.setdefault(param, []).append((i, name != param))
    return [group for group in groups.values() if len(group) > 1]


def _dims(dims: list[list[int]], transposed: bool) -> list[list[int]]:
    """The value's classes in the parameter's own dim order."""
    return dims[::-1] if transposed else dims


def layout(dims: list[list[int]], transposed: bool, state: int) -> int | None:
    """The parameter dim a value in ``state`` is split on (None: whole)."""
    for d, classes in enumerate(_dims(dims, transposed)):
        if state >= 0 and state in classes:
            return d
    return None


def _choices(group: list[Alias], cls_dims: list, ok: list[set[int]]) -> list[dict[int, int]]:
    """Each layout every value of the group can take, as {value id: state}: split on one
    parameter dim (a class the value may be sharded on), or whole."""
    rank = min(len(cls_dims[v]) for v, _ in group)
    out = []
    for d in range(rank):
        fixed = {}
        for v, transposed in group:
            classes = _dims(cls_dims[v], transposed)[d]
            if len(classes) != 1 or classes[0] not in ok[v]:
                break
            fixed[v] = classes[0]
        else:
            out.append(fixed)
    return [*out, dict.fromkeys((v for v, _ in group), REPLICATED)]


def agree(problem: dict, names: list[str], g: Graph, cls_dims: dict, params: set[str],
          out: dict, search) -> dict:
    """``out`` if every tied parameter has one layout in it; else the cheapest search over
    the layouts its values can share (``search(problem)`` runs one), group by group."""
    per_value = [cls_dims.get(n, []) for n in names]
    off, data = problem["val_ok_off"], problem["val_ok"]
    ok = [set(data[off[i]:off[i + 1]]) for i in range(len(names))]
    for group in aliases(g, names, params):
        if len({layout(per_value[v], t, out["value_state"][v]) for v, t in group}) == 1:
            continue
        best = None
        for choice in _choices(group, per_value, ok):
            fixed = list(problem["val_fixed"])
            for v, state in choice.items():
                fixed[v] = state
            trial = {**problem, "val_fixed": fixed}
            try:
                found = search(trial)
            except ValueError:  # no feasible plan with this layout
                continue
            if best is None or found["cost"] < best[1]["cost"]:
                best = (trial, found)
        if best is None:
            raise ValueError(f"calm: no plan gives tied parameter {names[group[0][0]]} one layout")
        problem, out = best
    return out

