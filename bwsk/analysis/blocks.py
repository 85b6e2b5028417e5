"""Block verdicts: each module scope (layer, attention, MLP, coupling, ...) is cut out as a
graph of its own inputs and judged like a model; structurally identical blocks are marked
``repeat_of`` the first, so a report can say "12 x block"."""

from __future__ import annotations

import re

import onnx

from bwsk.analysis.execute import StepRunner
from bwsk.analysis.result import BlockVerdict
from bwsk.catalogue import Judgement
from bwsk.catalogue.run import opset_of
from bwsk.ir import Graph

BLOCK_TRIES = 2  # lifted witness attempts per block, each run on the block alone
_KINDS = (
    ("coupling", "coupling"),
    ("attn", "attention"),
    ("attention", "attention"),
    ("mlp", "mlp"),
    ("ffn", "mlp"),
    ("feed_forward", "mlp"),
    ("dense", "mlp"),
    ("residual", "residual"),
)


def kind_of(scope: str, nodes: list) -> str:
    last = scope.rsplit(".", 1)[-1].lower()
    for key, kind in _KINDS:
        if key in last:
            return kind
    if re.fullmatch(r"\d+", last):
        return "layer"
    return "module"


def scopes(graph: Graph) -> dict[str, list[int]]:
    """Every scope prefix with the indices of the nodes under it (in order)."""
    out: dict[str, list[int]] = {}
    for k, node in enumerate(graph.nodes):
        parts = [p for p in node.scope.split(".") if p] if node.scope else []
        for depth in range(1, len(parts) + 1):
            out.setdefault(".".join(parts[:depth]), []).append(k)
    return out


def consumers(graph: Graph) -> dict[str, list[int]]:
    """Per value, the indices of the nodes reading it."""
    out: dict[str, list[int]] = {}
    for k, node in enumerate(graph.nodes):
        for x in node.inputs:
            if x:
                out.setdefault(x, []).append(k)
    return out


def subgraph(graph: Graph, members: list[int], name: str, readers: dict | None = None) -> Graph:
    """The block as a graph: inputs flow in from outside, outputs flow out (or are outputs).
    ``readers``: consumers(graph), passed in when cutting many blocks."""
    inside = set(members)
    produced = {o for k in members for o in graph.nodes[k].outputs if o}
    inputs, seen = [], set()
    for k in members:
        for x in graph.nodes[k].inputs:
            if x and x not in produced and not graph.is_const(x) and x not in seen:
                seen.add(x)
                inputs.append(x)
    readers = consumers(graph) if readers is None else readers
    outputs = [
        o
        for k in members
        for o in graph.nodes[k].outputs
        if o and (o in graph.outputs or any(c not in inside for c in readers.get(o, ())))
    ]
    sub = Graph(name, inputs, outputs, graph.values, [graph.nodes[k] for k in members])
    if isinstance(getattr(graph, "source", None), onnx.ModelProto):
        sub.opset = opset_of(graph)
    return sub


def signature(graph: Graph, members: list[int]) -> tuple:
    """Structure up to renaming: ops, attrs, shapes and wiring (weights excluded)."""
    local: dict[str, int] = {}

    def ref(name):
        if not name:
            return ""
        if graph.is_const(name):
            return ("c", graph.values[name].shape)
        return local.setdefault(name, len(local))

    rows = []
    for k in members:
        n = graph.nodes[k]
        rows.append(
            (
                n.op,
                repr(sorted((a, repr(v)) for a, v in n.attrs.items())),
                tuple(ref(x) for x in n.inputs),
                tuple(ref(o) for o in n.outputs),
            )
        )
    return tuple(rows)


def block_verdicts(graph: Graph, judgements: list[Judgement]) -> list[BlockVerdict]:
    from bwsk.analysis.engine import prove

    out: list[BlockVerdict] = []
    readers = consumers(graph)
    first: dict[tuple, tuple[str, str, str, list[str]]] = {}
    for name, members in scopes(graph).items():
        if len(members) < 2 or len(members) == len(graph.nodes):
            continue
        sub = subgraph(graph, members, name, readers)
        if not sub.inputs or not sub.outputs:
            continue
        sig = (signature(graph, members), tuple(judgements[k].verdict for k in members))
        nodes = [graph.nodes[k].name for k in members]
        kind = kind_of(name, nodes)
        if sig in first and first[sig][1] != "K":
            src, verdict, reason, conds = first[sig]
            out.append(BlockVerdict(name, kind, nodes, verdict, reason, conds, repeat_of=src))
            continue
        # wrappers spanning most of the model are not worth re-executing it for a witness
        wide = 2 * len(members) > len(graph.nodes)
        budget = [0 if wide else BLOCK_TRIES]
        result = prove(sub, [judgements[k] for k in members], StepRunner(sub), budget)
        repeat = first[sig][0] if sig in first else None
        first.setdefault(sig, (name, result.verdict, result.reason, result.conditions))
        out.append(
            BlockVerdict(
                name,
                kind,
                nodes,
                result.verdict,
                result.reason,
                result.conditions,
                repeat_of=repeat,
                witness=result.witness,
            )
        )
    return out
