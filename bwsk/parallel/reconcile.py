"""Where the engine reconciles partial sums: at the output of the module that made them.

The search may sum the partial outputs of several vocab-parallel modules before one
collective (GPT-2's token and position embeddings: one all-reduce of their sum). Torch's
parallel styles act per module, so ``bwsk.parallel.apply`` reconciles each embedding on its
own, and gathers (or moves onto the tokens) each hidden-split embedding's output on its own
rather than their sum. The report states what that engine issues, so its bytes equal the
measured bytes; each such point is marked not minimal, with the single fused collective a
fusing engine would issue in its place.
"""

from __future__ import annotations

from bwsk.ir import Graph, Node
from bwsk.parallel.problem import PARTIAL, value_bytes

RECONCILE = (1, 3)  # all_reduce, reduce_scatter: the forward collectives of a partial sum
TRANSPOSE = GATHER = 2  # all_gather: a reduce-scatter's backward, or a sharded output's gather
ALL_TO_ALL = 4  # a sharded output moved onto another dim (its backward: the reverse move)


def per_module(g: Graph, names: list[str], records: list, states: dict[str, int],
               plan: dict[str, str], itemsize: int | None) -> tuple[list, dict[int, dict]]:
    """(records as the engine issues them, {value id: the fused point by phase})."""
    styled = {m for m, choice in plan.items() if choice in ("colwise", "rowwise")}
    index = {n: i for i, n in enumerate(names)}
    node_index = {id(n): i for i, n in enumerate(g.nodes)}
    reconciled = {names[v] for v, _, phase, coll, _ in records
                  if phase == 0 and coll in RECONCILE and states[names[v]] == PARTIAL}
    sources = {}
    for name in reconciled:
        found = _sources(g, name, states, styled, reconciled - {name})
        if len(found) > 1:
            sources[index[name]] = found
    for v, _, phase, coll, _ in records:  # a sum of sharded module outputs, gathered once
        moved = phase == 0 and coll in (GATHER, ALL_TO_ALL)
        found = _gathered(g, names[v], states, styled) if moved else {}
        if len(found) > 1:
            sources[v] = found
    out, fused = [], {}
    for rec in records:
        value, _, phase, coll, nbytes = rec
        if value not in sources or not _moves(phase, coll):
            out.append(rec)
            continue
        point = {"where": _scope_of(g, names[value]), "bytes": nbytes, "count": 1}
        for s, consumer in sources[value].items():
            # -1: at its module (a gather or move of its output); else at the consumer
            at = -1 if coll in (GATHER, ALL_TO_ALL) else node_index[id(consumer)]
            out.append((index[s], at, phase, coll, value_bytes(g, s, itemsize)))
            fused.setdefault(index[s], {})[("fwd", "bwd")[phase]] = point
    return out, fused


def _moves(phase: int, coll: int) -> bool:
    """A forward reconcile or gather, or the all-gather transposing a reduce-scatter."""
    return (phase == 0 and coll in (*RECONCILE, GATHER, ALL_TO_ALL)) or (
        phase == 1 and coll in (TRANSPOSE, ALL_TO_ALL))


def _scope_of(g: Graph, name: str) -> str:
    node = g.producer.get(name)
    return "" if node is None else (node.scope or node.name)


def _sources(g: Graph, name: str, states: dict[str, int], styled: set[str],
             reconciled: set[str]) -> dict[str, Node]:
    """The module outputs whose partial sums make up ``name`` and are reconciled nowhere
    else (walking back through additions outside any sharded module), each with the node
    that consumes it on the way: where the engine's collective sits."""
    found: dict[str, Node] = {}
    via: dict[str, Node] = {}
    todo = [name]
    while todo:
        value = todo.pop()
        node = g.producer.get(value)
        parts = [] if node is None or node.scope in styled or value in reconciled else [
            x for x in node.inputs if x and states.get(x) == PARTIAL and x not in via]
        if not parts and value not in reconciled and value in via:
            found[value] = via[value]
        via.update(dict.fromkeys(parts, node))
        todo.extend(parts)
    return dict(sorted(found.items()))


def _gathered(g: Graph, name: str, states: dict[str, int], styled: set[str]) -> dict[str, Node]:
    """An addition whose operands are all outputs of sharded modules, sharded alike (GPT-2's
    token and position embeddings split along the hidden dim): the engine gathers each
    module's output, so each operand with the addition that consumes it."""
    node = g.producer.get(name)
    if node is None or node.op != "add":
        return {}
    parts = [x for x in node.inputs if x and not g.is_const(x)]
    if all(states.get(x) == states[name] and _scope_of(g, x) in styled for x in parts):
        return dict.fromkeys(sorted(parts), node)
    return {}
