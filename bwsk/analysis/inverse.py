"""Recoverability: the native fixpoint over catalogue facts, and the inverse program it yields
(forward steps recompute values from known ones, inverse steps solve a node for an input)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bwsk import _core
from bwsk.catalogue import NO, Judgement, run_node
from bwsk.errors import BwskError
from bwsk.ir import Graph


@dataclass
class Recovery:
    known: set[str]  # values recovered, with ``known``; constants are known without saying
    steps: list[tuple[int, int]]  # (node index, input slot or -1 for a forward run)


Code = tuple[list[str], list[int], list[int], list[str], list[int]]


class Facts(list):
    """A graph's judgements, one per node, with each node's facts for the fixpoint coded once
    (``code``): an analysis recovers over the same nodes many times (the model, every block,
    every witness prefix). ``subset`` gives a block's judgements, sharing the codes."""

    def __init__(self, judgements, codes: dict[int, tuple[object, Code]] | None = None):
        super().__init__(judgements)
        self.codes = {} if codes is None else codes

    def subset(self, members: list[int]) -> Facts:
        return Facts([self[k] for k in members], self.codes)

    def code(self, graph: Graph, k: int) -> Code:
        """Node k's facts, filed under the node (held, so its id stays its own; a node has
        one judgement per analysis, and the judgements are final once the engine reads them)."""
        node = graph.nodes[k]
        hit = self.codes.get(id(node))
        if hit is None:
            hit = self.codes[id(node)] = (node, code(graph, node, self[k]))
        return hit[1]


def code(graph: Graph, node, j: Judgement) -> Code:
    """(variable inputs, how each is recovered, their slots, present outputs, whether the
    inverse needs each): constants are known from the start, so they are left out."""
    rec, needs = j.recover, (0,) if j.needs is None else j.needs
    slots = graph.variable_inputs(node)
    outs = [i for i, o in enumerate(node.outputs) if o]
    return (
        [node.inputs[i] for i in slots],
        [rec[i] if i < len(rec) else NO for i in slots],
        slots,
        [node.outputs[i] for i in outs],
        [int(i in needs) for i in outs],
    )


def recover(
    graph: Graph, judgements: list[Judgement], known: set[str], nodes: list[int] | None = None
) -> Recovery:
    """Every value recoverable from ``known`` (and the constants) using the given nodes."""
    chosen = range(len(graph.nodes)) if nodes is None else nodes
    coded = (judgements if isinstance(judgements, Facts) else Facts(judgements)).code
    ids: dict[str, int] = {}  # value ids in order of first use (setdefault: no call per use)
    in_off, in_ids, in_rec, out_off, out_ids, out_need, slots = [0], [], [], [0], [], [], []
    for k in chosen:
        names, recs, where, outs, needs = coded(graph, k)
        for x in names:
            in_ids.append(ids.setdefault(x, len(ids)))
        for o in outs:
            out_ids.append(ids.setdefault(o, len(ids)))
        in_rec += recs
        out_need += needs
        slots.append(where)
        in_off.append(len(in_ids))
        out_off.append(len(out_ids))
    start = [ids.setdefault(n, len(ids)) for n in known]
    values = graph.values  # a node computing a constant (hand-built graphs): known already
    start += [v for o, v in ids.items() if o in values and values[o].const is not None]
    flags, steps = _core.prove_recoverable(
        len(ids), in_off, in_ids, in_rec, out_off, out_ids, out_need, start
    )
    names = list(ids)
    order = list(chosen)
    return Recovery(
        {names[i] for i, f in enumerate(flags) if f} | set(known),
        [(order[k], -1 if s < 0 else slots[k][s]) for k, s in steps],
    )


class InverseProgram:
    """Outputs in, inputs out: ``program(*outputs)`` or ``program({name: array})``."""

    def __init__(
        self,
        graph: Graph,
        judgements: list[Judgement],
        steps: list[tuple[int, int]],
        known: list[str],
        wanted: list[str],
    ):
        self.graph, self.judgements, self.steps = graph, judgements, steps
        self.known, self.wanted = known, wanted

    def __call__(self, *args, **kwargs) -> dict[str, np.ndarray]:
        feeds = (
            dict(args[0])
            if len(args) == 1 and isinstance(args[0], dict)
            else dict(zip(self.known, args, strict=False))
        )
        feeds.update(kwargs)
        missing = [n for n in self.known if n not in feeds]
        if missing:
            raise BwskError(f"inverse program needs output {missing[0]!r}")
        env = {k: np.asarray(v) for k, v in feeds.items()}
        with np.errstate(all="ignore"):
            self._run(env)
        return {n: env[n] for n in self.wanted}

    def _run(self, env: dict) -> None:
        for k, slot in self.steps:
            node = self.graph.nodes[k]
            ins = [self._value(env, x) if x else None for x in node.inputs]
            if slot < 0:
                outs = run_node(self.graph, node, ins)
                env.update({o: v for o, v in zip(node.outputs, outs, strict=False) if o})
            else:
                outs = [env.get(o) if o else None for o in node.outputs]
                env[node.inputs[slot]] = np.asarray(self.judgements[k].invert(slot, ins, outs))

    def _value(self, env: dict, name: str):
        """A known value or a constant (looked up lazily: a block shares the model's values)."""
        if name in env:
            return env[name]
        return self.graph.values[name].const if self.graph.is_const(name) else None

    def describe(self) -> list[str]:
        """One line per step, for reports."""
        lines = []
        for k, slot in self.steps:
            node = self.graph.nodes[k]
            if slot < 0:
                lines.append(f"run {node.name} ({node.op}) forward")
            else:
                lines.append(f"solve {node.name} ({node.op}) for {node.inputs[slot]}")
        return lines
