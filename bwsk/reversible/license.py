"""Licensing a reversible conversion: the block's coupling graph, proved S by the analysis.

A residual block is read as a chain of stages on one stream ``s``: each stage runs a
sublayer region R on the stream and merges the result back (``s = merge(s, R(s))``,
possibly followed by more ops on the stream). Its two-stream coupling alternates the
streams: stage k reads the stream stage k-1 wrote and updates the other one, so a pre-LN
block becomes ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``. The regions stay opaque: the proof
must hold for any F and G. Whatever the block does on the stream itself (a post-LN, a
gated merge) stays in the graph for the proof engine to judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bwsk.errors import BwskError, TrainingError
from bwsk.ir import Graph, Node, Value

OPAQUE = "opaque"


@dataclass
class _Region:
    name: str
    modules: frozenset[str]
    inp: str = ""
    out: str = ""
    anchor: int = -1  # index of the block node that produces ``out``


def _find_regions(block: Graph, regions: Sequence[tuple[str, Sequence[str]]]) -> list[_Region]:
    """Each region's single stream input and single output, from the nodes' module scopes."""
    found = []
    for name, modules in regions:
        r = _Region(name, frozenset(modules))
        idx = [k for k, n in enumerate(block.nodes) if n.scope.split(".")[0] in r.modules]
        inside = {o for k in idx for o in block.nodes[k].outputs if o}
        ins = {x for k in idx for x in block.nodes[k].inputs
               if x and x not in inside and not block.is_const(x)}
        outs = [o for o in inside if o in block.outputs or any(
            n.scope.split(".")[0] not in r.modules for n in block.consumers.get(o, []))]
        if not idx or len(ins) != 1 or len(outs) != 1:
            raise TrainingError(f"sublayer {name} ({', '.join(sorted(r.modules))}) must read "
                                f"one stream value and produce one; it reads {sorted(ins)} and "
                                f"produces {sorted(outs)}")
        r.inp, r.out = ins.pop(), outs[0]
        r.anchor = next(k for k in idx if r.out in block.nodes[k].outputs)
        found.append(r)
    return found


def coupling_graph(block: Graph, regions: Sequence[tuple[str, Sequence[str]]]) -> Graph:
    """The two-stream coupling of a residual ``block`` whose sublayers are ``regions``.

    ``regions`` lists (name, top-level module names), e.g. ``("F", ["ln_1", "attn"])``.
    Raises TrainingError when the block is not a chain of stages on one stream.
    """
    if len(block.inputs) != 1 or len(block.outputs) != 1:
        raise TrainingError(f"{block.name}: a residual block has one stream in and one out")
    found = _find_regions(block, regions)
    by_anchor = {r.anchor: r for r in found}
    member = {k for k, n in enumerate(block.nodes)
              if any(n.scope.split(".")[0] in r.modules for r in found)}
    w = _Writer(block)
    for k, node in enumerate(block.nodes):
        if k in by_anchor:
            w.region(by_anchor[k])
        elif k not in member:
            w.skeleton(node)
    if w.head != block.outputs[0] or w.stage < len(found) - 1:
        raise TrainingError(f"{block.name}: the block output is not the end of its stream")
    return Graph(f"{block.name}.coupling", ["x1", "x2"], list(w.cur), w.values, w.nodes)


class _Writer:
    """Emits the coupling graph while walking the block's stream in topological order."""

    def __init__(self, block: Graph):
        self.block, self.head = block, block.inputs[0]
        self.cur = ["x1", "x2"]  # current value of each stream
        self.u, self.stage = 0, -1  # stream updated by the current stage
        shape = block.values[self.head]
        self.values = {s: Value(s, shape.shape, shape.dtype) for s in self.cur}
        self.nodes: list[Node] = []
        self.renamed: dict[str, str] = {}  # block value -> coupling value (region outputs)

    def region(self, r: _Region) -> None:
        if r.inp != self.head:
            raise TrainingError(f"{self.block.name}: sublayer {r.name} reads {r.inp}, not the "
                                "residual stream")
        self.stage += 1
        self.u = self.stage % 2
        out = f"{r.name}.out"
        self.nodes.append(Node(r.name, OPAQUE, [self.cur[1 - self.u]], [out],
                               source_op=f"bwsk::{r.name}", scope=",".join(sorted(r.modules))))
        self.values[out] = self._like(r.out, out)
        self.renamed[r.out] = out

    def skeleton(self, node: Node) -> None:
        var = [x for x in node.inputs if x and not self.block.is_const(x)]
        if not var:
            self._copy(node, {})
            return
        stale = [x for x in var if x != self.head and x not in self.renamed]
        if self.stage < 0 or stale:
            what = f"uses {stale[0]} besides the stream" if stale else "acts before any sublayer"
            raise TrainingError(f"{self.block.name}: {node.op} ({node.scope or node.name}) {what}; "
                                "not a chain of residual stages")
        mapping = {self.head: self.cur[self.u], **self.renamed}
        out = self._copy(node, mapping)
        self.head, self.cur[self.u] = node.outputs[0], out

    def _copy(self, node: Node, mapping: dict[str, str]) -> str:
        outs = [f"{o}.s{self.u + 1}" if o else "" for o in node.outputs]
        for o, new in zip(node.outputs, outs, strict=True):
            if o:
                self.values[new] = self._like(o, new)
                self.renamed.pop(o, None)
        for x in node.inputs:
            if x and self.block.is_const(x):
                self.values[x] = self.block.values[x]
        inputs = [mapping.get(x, x) for x in node.inputs]
        self.nodes.append(Node(node.name, node.op, inputs, outs, dict(node.attrs),
                               node.source_op, node.scope))
        return outs[0]

    def _like(self, name: str, new: str) -> Value:
        v = self.block.values.get(name) or Value(name)
        return Value(new, v.shape, v.dtype)


@dataclass
class License:
    """The proof that a coupling is injective, and its inverse program in words."""

    block: str
    inverse_steps: list[str]

    def __str__(self) -> str:
        return f"{self.block}: S (inverse: {'; '.join(self.inverse_steps)})"


def license_coupling(graph: Graph) -> License:
    """Ask the proof engine for S; refuse with the op that blocks recovery otherwise."""
    from bwsk.analysis import analyze

    try:
        result = analyze(graph)
    except BwskError as exc:
        raise TrainingError(f"cannot license {graph.name}: analysis failed: {exc}") from exc
    if result.verdict == "S":
        return License(graph.name, list(result.extra.get("inverse_steps", [])))
    raise TrainingError(f"cannot convert {graph.name.removesuffix('.coupling')} to a reversible "
                        f"coupling: not proved injective ({result.verdict}); blocked by "
                        f"{'; '.join(_blockers(graph, result.conditions or [result.reason]))}")


def _blockers(graph: Graph, conditions: list[str]) -> list[str]:
    """Where recovery stopped, root cause first: recovery runs from the outputs backwards,
    so the most downstream op is the one that stopped it, and a merge (x + F(...)) only stops
    because something downstream of it did."""
    index = {n.name: k for k, n in enumerate(graph.nodes)}
    opaque_out = {o for n in graph.nodes if n.op == OPAQUE for o in n.outputs}
    ranked = []
    for cond in conditions:
        name, _, why = cond.partition(": ")
        if name not in index:
            ranked.append((2, 0, cond))
            continue
        node = graph.nodes[index[name]]
        merge = bool(opaque_out & set(node.inputs))
        ranked.append((int(merge), -index[name], f"{node.op} ({node.scope or name}): {why}"))
    return [text for *_, text in sorted(ranked)]
