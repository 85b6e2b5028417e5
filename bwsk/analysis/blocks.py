"""Block verdicts: each module scope (layer, attention, MLP, coupling, ...) is cut out as a
graph of its own inputs and judged like a model; structurally identical blocks are marked
``repeat_of`` the first, so a report can say "12 x block"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from bwsk.analysis.execute import StepRunner
from bwsk.analysis.inverse import Facts
from bwsk.analysis.result import Analysis, BlockVerdict
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
    if last.isdecimal():  # re's \d: the Unicode decimal digits
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
    """Per value, the indices of the nodes reading it; -1 reads every graph output."""
    out: dict[str, list[int]] = {o: [-1] for o in graph.outputs}
    for k, node in enumerate(graph.nodes):
        for x in node.inputs:
            if x:
                out.setdefault(x, []).append(k)
    return out


def _attr_key(value) -> Any:
    """An exact, hashable stand-in for an attribute (repr elides the middle of big arrays)."""
    if isinstance(value, np.ndarray):
        return (str(value.dtype), value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_attr_key(v) for v in value)
    return repr(value)


def node_keys(graph: Graph, judgements: list[Judgement]) -> list[tuple]:
    """Per node, its structure apart from wiring and weight values, with its recoverability
    facts (computed once per model: every enclosing scope reuses it): (op, attributes,
    facts) and per input "" (omitted), ("c", shape) (a constant) or None (a variable,
    numbered per block)."""
    return [
        (
            (
                n.op,
                tuple(sorted((a, _attr_key(v)) for a, v in n.attrs.items())),
                (j.verdict, tuple(j.recover), None if j.needs is None else tuple(j.needs)),
            ),
            tuple(
                "" if not x else ("c", graph.values[x].shape) if graph.is_const(x) else None
                for x in n.inputs
            ),
        )
        for n, j in zip(graph.nodes, judgements, strict=True)
    ]


@dataclass
class Cut:
    """A block's interface and its structure up to renaming (``signature``): two blocks with
    equal signatures compute the same function of their inputs up to weight values, and
    with equal recoverability facts per node they share every structural proof."""

    inputs: list[str]
    outputs: list[str]
    signature: tuple


def cut(graph: Graph, members: list[int], keys: list[tuple], readers: dict[str, list[int]]) -> Cut:
    """One pass over the members: inputs flow in from outside, outputs flow out (or are
    graph outputs); ``keys`` is node_keys(graph) and ``readers`` consumers(graph)."""
    inside, local = set(members), {}
    inputs, outputs, rows = [], [], []
    for k in members:
        node, (head, kinds) = graph.nodes[k], keys[k]
        ins = []
        for x, kind in zip(node.inputs, kinds, strict=True):
            if kind is None:
                if x not in local:  # topological order: not produced inside
                    local[x] = len(local)
                    inputs.append(x)
                ins.append(local[x])
            else:
                ins.append(kind)
        outs = []
        for o in node.outputs:
            if o:
                local[o] = len(local)
                if not inside.issuperset(readers.get(o, ())):
                    outputs.append(o)
                outs.append(local[o])
            else:
                outs.append("")
        rows.append((head, tuple(ins), tuple(outs)))
    return Cut(inputs, outputs, (tuple(rows), tuple(local[o] for o in outputs)))


def subgraph(graph: Graph, members: list[int], name: str, shape: Cut) -> Graph:
    """The block as a graph of its own inputs (values are shared with the model)."""
    sub = Graph(name, shape.inputs, shape.outputs, graph.values, [graph.nodes[k] for k in members])
    if isinstance(getattr(graph, "source", None), onnx.ModelProto):
        sub.opset = opset_of(graph)
    return sub


def _candidates(graph: Graph, residuals: dict[int, list[int]]):
    """(name, kind, members): every module scope, then every residual x -> x + f(x) (the
    add and its branch; named after the add, as a sublayer has no scope of its own)."""
    for name, members in scopes(graph).items():
        yield name, kind_of(name, members), members
    for k, members in residuals.items():
        node = graph.nodes[k]
        prefix = f"{node.scope}." if node.scope else ""
        yield f"{prefix}residual:{node.name}", "residual", sorted({*members, k})


def block_verdicts(graph: Graph, judgements: list[Judgement],
                   residuals: dict[int, list[int]] | None = None) -> list[BlockVerdict]:
    """Each block with two or more nodes that is not the whole model; a block structurally
    equal to an earlier S or gray one (same signature and per-node facts, see ``Cut``) takes
    its verdict as ``repeat_of``; a repeat of a K block replays its witness plan on its own
    weights (proved in full when that fails), each witness run on its own block."""
    out: list[BlockVerdict] = []
    judgements = judgements if isinstance(judgements, Facts) else Facts(judgements)
    readers, keys = consumers(graph), node_keys(graph, judgements)
    first: dict[tuple, tuple[str, Analysis]] = {}
    for name, kind, members in _candidates(graph, residuals or {}):
        if len(members) < 2 or len(members) == len(graph.nodes):
            continue
        shape = cut(graph, members, keys, readers)
        if not shape.inputs or not shape.outputs:
            continue
        nodes = [graph.nodes[k].name for k in members]
        src, seen = first.get(shape.signature, (None, None))
        if seen is not None and seen.verdict != "K":
            out.append(BlockVerdict(name, kind, nodes, seen.verdict, seen.reason,
                                    seen.conditions, repeat_of=src))
            continue
        result = _judge_block(graph, members, name, shape, judgements, seen)
        first.setdefault(shape.signature, (name, result))
        out.append(BlockVerdict(name, kind, nodes, result.verdict, result.reason,
                                result.conditions, repeat_of=src, witness=result.witness))
    return out


def _judge_block(graph, members, name, shape, judgements: Facts,
                 seen: Analysis | None) -> Analysis:
    """A block's own proof, or the replay of an equal K block's witness plan on this one."""
    from bwsk.analysis.engine import prove, replay_k

    sub = subgraph(graph, members, name, shape)
    facts = judgements.subset(members)
    plan = seen.extra.get("witness_plan") if seen is not None else None
    replayed = replay_k(sub, facts, plan) if plan is not None else None
    if replayed is not None:
        return replayed
    # wrappers spanning most of the model are not worth re-executing it for a witness
    wide = 2 * len(members) > len(graph.nodes)
    return prove(sub, facts, StepRunner(sub), [0 if wide else BLOCK_TRIES], False)
